from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from logfactory.collect.sources.framing import FrameDecoder


def feed_all(dec: FrameDecoder, *chunks: bytes) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out


def octet(msg: bytes) -> bytes:
    return b"%d %s" % (len(msg), msg)


def test_newline_framing_strips_cr_and_skips_empty() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"<13>one\r\n\n<13>two\n<13>thr") == [b"<13>one", b"<13>two"]
    assert dec.mode == "newline"
    assert dec.feed(b"ee\n") == [b"<13>three"]
    assert dec.close() is None


def test_nul_is_a_delimiter_too() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"<13>a\x00<13>b\n<13>c\x00") == [b"<13>a", b"<13>b", b"<13>c"]


def test_newline_tail_at_close_is_complete() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"<13>a\n<13>last") == [b"<13>a"]
    assert dec.close() == (b"<13>last", False)


def test_octet_counting_split_anywhere() -> None:
    msgs = [b"<13>1 - h app - - - hello", b"<14>1 - h app - - - with\nembedded newline", b"x"]
    stream = b"".join(octet(m) for m in msgs)
    for cut in range(len(stream) + 1):
        dec = FrameDecoder()
        assert feed_all(dec, stream[:cut], stream[cut:]) == msgs, cut
        assert dec.mode == "octet"
    dec = FrameDecoder()
    assert feed_all(dec, *(stream[i : i + 1] for i in range(len(stream)))) == msgs


def test_octet_count_including_trailing_newline_is_stripped() -> None:
    # rsyslog counts its trailing LF; some senders also put an LF between frames
    dec = FrameDecoder()
    got = dec.feed(b"10 <13>hello\n11 <13>hello\r\n\n9 <13>hello")
    assert got == [b"<13>hello", b"<13>hello", b"<13>hello"]


def test_octet_frame_cut_by_close_is_truncated() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"5 <13>a40 <13>only part") == [b"<13>a"]
    assert dec.close() == (b"<13>only part", True)


def test_octet_count_without_message_at_close_is_nothing() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"5 <13>a12") == [b"<13>a"]
    assert dec.close() is None


def test_an_octet_count_over_the_limit_breaks_the_stream() -> None:
    """Skipping the count would pass up to ~1 GB (nine digits) unseen, every frame in it lost
    without a count: the decoder gives up instead and its owner closes the connection."""
    reasons: list[str] = []
    dec = FrameDecoder(on_reject=reasons.append)  # 1 MiB: counts of up to nine digits are read
    assert dec.feed(b"5 <13>a") == [b"<13>a"]
    assert dec.broken is None
    out = dec.feed(b"5 <13>b999999999 <13>" + b"x" * 300)
    assert out == [b"<13>b"]  # what came before the count is delivered
    assert dec.rejected == 1
    assert reasons == ["octet count 999999999 exceeds max_frame_bytes=1048576; connection closed"]
    assert dec.broken == reasons[0]
    assert dec._buf == b""
    assert dec.feed(b"5 <13>c") == []  # nothing after it is framed
    assert dec.close() is None
    assert dec.rejected == 1


def test_a_count_just_over_the_limit_split_across_reads_breaks_it_too() -> None:
    dec = FrameDecoder(max_frame_bytes=1000)
    assert feed_all(dec, b"4 <1>a10", b"01 <13>", b"y" * 1001) == [b"<1>a"]
    assert dec.broken is not None
    assert dec.rejected == 1


def test_oversized_newline_frame_is_skipped_to_its_end() -> None:
    dec = FrameDecoder(max_frame_bytes=10)
    out = feed_all(dec, b"<1>ok\n<1>" + b"y" * 50, b"z" * 5000, b"end\n<1>fine\n")
    assert out == [b"<1>ok", b"<1>fine"]
    assert dec.rejected == 1
    assert dec._buf == b""
    # an oversized line inside one read is rejected as well
    assert dec.feed(b"<1>" + b"q" * 20 + b"\n<1>x\n") == [b"<1>x"]
    assert dec.rejected == 2


def test_garbage_count_is_rejected_and_resyncs_on_newline() -> None:
    reasons: list[str] = []
    dec = FrameDecoder(on_reject=reasons.append)
    out = dec.feed(b"5 <13>a12ab junk here\n5 <13>b")
    assert out == [b"<13>a", b"<13>b"]
    assert dec.rejected == 1
    assert "bad octet count" in reasons[0]


def test_absurd_count_is_rejected() -> None:
    dec = FrameDecoder(max_frame_bytes=1000)
    out = dec.feed(b"5 <13>a99999999999999999999 <13>x\n4 <1>b")
    assert out == [b"<13>a", b"<1>b"]
    assert dec.rejected == 1


def test_a_first_line_of_many_digits_is_a_raw_line() -> None:
    dec = FrameDecoder(max_frame_bytes=1000)
    assert dec.feed(b"99999999999999999999 <13>x\n") == [b"99999999999999999999 <13>x"]
    assert dec.mode == "newline"


def test_zero_count_is_rejected() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"0 <1>oops\n4 <1>a") == [b"<1>a"]
    assert dec.rejected == 1


def test_sender_switching_to_newline_framing_loses_nothing() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"5 <13>a<13>plain line\n<13>next\n") == [
        b"<13>a",
        b"<13>plain line",
        b"<13>next",
    ]
    assert dec.mode == "newline"
    assert dec.rejected == 0


def test_digit_first_line_in_newline_mode_is_a_line() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"<13>a\n2024-01-01 started\n") == [b"<13>a", b"2024-01-01 started"]


@settings(deadline=None)  # the default 200 ms per example flakes on a loaded machine
@given(
    st.lists(st.binary(min_size=1, max_size=40), max_size=8),
    st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_octet_stream_roundtrip_any_split(msgs: list[bytes], cuts: list[int]) -> None:
    msgs = [b"<13>" + m for m in msgs]  # octet counting frames syslog messages (RFC 6587)
    expected = [m[:-1] if m.endswith(b"\n") else m for m in msgs]
    expected = [m[:-1] if m.endswith(b"\r") and msgs[i].endswith(b"\r\n") else m
                for i, m in enumerate(expected)]  # fmt: skip
    expected = [m for m in expected if m]
    stream = b"".join(octet(m) for m in msgs)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    dec = FrameDecoder(max_frame_bytes=64)
    assert feed_all(dec, *chunks) == expected
    assert dec.rejected == 0


@settings(deadline=None)  # the default 200 ms per example flakes on a loaded machine
@given(st.lists(st.binary(max_size=200), max_size=10), st.integers(1, 64))
def test_any_bytes_never_crash_and_stay_bounded(chunks: list[bytes], limit: int) -> None:
    dec = FrameDecoder(max_frame_bytes=limit)
    for chunk in chunks:
        for frame in dec.feed(chunk):
            assert 0 < len(frame) <= limit
        # + 1: a frame of exactly ``limit`` bytes followed by "\r" waits for a possible "\n"
        assert len(dec._buf) <= max(limit + 1, len(str(limit)) + 2)
    rest = dec.close()
    assert rest is None or len(rest[0]) <= limit


def test_raw_lines_starting_with_digits_are_newline_framed() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"2026-11-22 00:10:42|login01|usr1\n1763770242123 epoch stamped\n") == [
        b"2026-11-22 00:10:42|login01|usr1",
        b"1763770242123 epoch stamped",
    ]
    assert dec.mode == "newline"
    assert dec.rejected == 0


def test_detection_waits_for_the_deciding_bytes() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"1") == []
    assert dec.feed(b"5") == []
    assert dec.feed(b" ") == []
    assert dec.mode is None
    assert dec.feed(b"<13>hello wor") == []
    assert dec.mode == "octet"
    assert dec.feed(b"ld!") == [b"<13>hello world"]
