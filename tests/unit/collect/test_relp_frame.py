"""RELP framing as a pure state machine: frames in any split, and every way a stream breaks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logfactory.collect.sources.relp_frame import (
    MAX_TXNR,
    Frame,
    RelpDecoder,
    open_answer,
    parse_offers,
    rsp,
)


def frame(txnr: int, command: str, data: bytes = b"") -> bytes:
    if not data:
        return b"%d %s 0\n" % (txnr, command.encode())
    return b"%d %s %d %s\n" % (txnr, command.encode(), len(data), data)


STREAM = [
    (1, "open", b"relp_version=0\nrelp_software=librelp,1.11.0,-\ncommands=syslog"),
    (2, "syslog", b"<13>Nov 22 00:15:51 web01 app: one"),
    (0, "hint", b""),  # a hint: not numbered
    (3, "syslog", b"with\nnewlines and 12 digits 34 inside\n"),
    (4, "close", b""),
]


@settings(deadline=None)  # the default 200 ms per example flakes on a loaded machine
@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_frames_come_out_whole_however_the_stream_is_cut(cuts: list[int]) -> None:
    data = b"".join(frame(*f) for f in STREAM)
    decoder = RelpDecoder(1024)
    out: list[Frame] = []
    pos = 0
    for size in cuts:
        out += decoder.feed(data[pos : pos + size])
        pos += size
    out += decoder.feed(data[pos:])
    assert out == [Frame(*f) for f in STREAM]
    assert decoder.error is None
    assert decoder.pending() == 0


def test_txnr_wraps_after_999999999() -> None:
    decoder = RelpDecoder(1024)
    decoder.expect = MAX_TXNR
    got = decoder.feed(frame(MAX_TXNR, "syslog", b"a") + frame(1, "syslog", b"b"))
    assert [f.txnr for f in got] == [MAX_TXNR, 1]
    assert decoder.error is None


@pytest.mark.parametrize(
    ("stream", "good", "reason"),
    [
        (frame(2, "syslog", b"x"), 0, "TXNR 2 where 1 was due"),
        (frame(1, "syslog", b"a") + frame(1, "syslog", b"b"), 1, "TXNR 1 where 2 was due"),
        (b"x syslog 1 a\n", 0, "not a RELP header"),
        (b"1234567890 syslog 1 a\n", 0, "not a RELP header"),  # TXNR of 10 digits
        (b"1 sys-log 1 a\n", 0, "not a RELP header"),
        (b"1 syslog 3 abcdef\n", 0, "DATALEN does not match"),
        (b"1 syslog 3 ab\n2 syslog 1 c\n", 0, "DATALEN does not match"),
        (b"1 syslog 0 \n", 0, "DATALEN 0 must be followed by LF"),
        (b"1 syslog 3\nabc\n", 0, "DATALEN 0 must be followed by LF"),
        (b"1 syslog 2000 ", 0, "DATALEN 2000 of a 'syslog' frame exceeds the limit of 1024"),
        (b"1 open 999999999 ", 0, "exceeds the limit of 65536"),
        (b"GET / HTTP/1.1\r\n\r\n", 0, "not a RELP header"),
    ],
)
def test_a_broken_stream_keeps_the_frames_before_it_and_reads_nothing_after(
    stream: bytes, good: int, reason: str
) -> None:
    decoder = RelpDecoder(1024)
    got = decoder.feed(stream)
    assert len(got) == good
    assert decoder.error is not None
    assert reason in str(decoder.error)
    assert decoder.feed(frame(good + 1, "syslog", b"after")) == []
    assert decoder.pending() == 0  # nothing of a refused frame is held


def test_a_large_frame_is_refused_from_its_header_before_its_data_arrives() -> None:
    decoder = RelpDecoder(100)
    assert decoder.feed(b"1 syslog 101 ") == []
    assert decoder.error is not None
    ok = RelpDecoder(100)
    assert ok.feed(b"1 syslog 100 " + b"x" * 50) == []
    # waiting, within the limit
    assert ok.error is None
    assert ok.pending() == 63


def test_responses_and_offers() -> None:
    assert rsp(7, b"200 OK") == b"7 rsp 6 200 OK\n"
    assert rsp(8, b"") == b"8 rsp 0\n"
    assert parse_offers(b"relp_version=0\ncommands=syslog,eventlog\n") == {
        "relp_version": ["0"],
        "commands": ["syslog", "eventlog"],
    }
    text, ok = open_answer(b"relp_version=0\nrelp_software=x\ncommands=syslog", "logfactory")
    assert ok
    assert text == b"200 OK\nrelp_version=0\nrelp_software=logfactory\ncommands=syslog"
    assert open_answer(b"commands=syslog", "x") == (b"500 the open offers no relp_version", False)
    text, ok = open_answer(b"relp_version=0\ncommands=eventlog", "x")
    assert not ok
    assert text.startswith(b"500 ")
