"""Decompressing an HTTP ingest body costs work linear in its size, and bounded.

A body of many tiny empty compressed members once cost time quadratic in its size (each member
was handed the whole rest of the body: 4 MiB of empty gzip members took 24 s, 16 MiB minutes).
Linearity is checked by counting the bytes handed to the decoders, not by a clock; the member
cap and the CPU budget turn such a body into a 400 that names the reason.
"""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lz4.frame  # type: ignore[import-untyped]  # lz4 ships no type information
import pytest
import zstandard
from tests.helpers.clients import make_client, raw_records

from logfactory.api.ingest_body import MAX_MEMBERS, BadBody, decompress
from logfactory.bus.local import LocalBus
from logfactory.config import Config

EMPTY_MEMBER: dict[str, bytes] = {
    "gzip": gzip.compress(b"", mtime=0),  # 20 bytes
    "zstd": zstandard.ZstdCompressor().compress(b""),  # 9 bytes
    "lz4": lz4.frame.compress(b""),  # 11 bytes
}
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "lz4": lz4.frame.compress,
}


def worst_body(encoding: str, size: int) -> bytes:
    """``size`` bytes of empty members back to back: the most members a body can hold."""
    member = EMPTY_MEMBER[encoding]
    return member * (size // len(member))


class _Counted:
    """A decoder object whose inputs are counted (every other attribute is the decoder's)."""

    def __init__(self, inner: Any, fed: list[int]) -> None:
        self._inner, self._fed = inner, fed

    def decompress(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        self._fed.append(len(data))
        return self._inner.decompress(data, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _count_decoder_input(monkeypatch: pytest.MonkeyPatch, encoding: str) -> list[int]:
    """Patch the decoders of ``encoding`` so that every input they are handed is counted."""
    fed: list[int] = []
    if encoding == "gzip":
        real_obj = zlib.decompressobj
        monkeypatch.setattr(zlib, "decompressobj", lambda *a, **k: _Counted(real_obj(*a, **k), fed))
    elif encoding == "zstd":
        real_dctx = zstandard.ZstdDecompressor

        class CountingDctx:
            def __init__(self) -> None:
                self._d = real_dctx()

            def stream_reader(self, *args: Any, **kwargs: Any) -> Any:
                return self._d.stream_reader(*args, **kwargs)

            def decompressobj(self) -> _Counted:
                return _Counted(self._d.decompressobj(), fed)

        monkeypatch.setattr(zstandard, "ZstdDecompressor", CountingDctx)
    else:  # LZ4FrameDecompressor.decompress calls the module's decompress_chunk too
        real_chunk = lz4.frame.decompress_chunk

        def chunk(context: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
            fed.append(len(data))
            return real_chunk(context, data, *args, **kwargs)

        monkeypatch.setattr(lz4.frame, "decompress_chunk", chunk)
    return fed


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_decoders_are_handed_each_member_not_the_rest_of_the_body(
    monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    body = worst_body(encoding, 64 << 10)
    members = len(body) // len(EMPTY_MEMBER[encoding])
    assert members < MAX_MEMBERS  # under the cap: every member is decoded
    fed = _count_decoder_input(monkeypatch, encoding)
    assert decompress(body, encoding, 1 << 20) == b""  # type: ignore[arg-type]
    assert len(fed) >= members
    # linear: a member is fed a few times its own size at most (64 bytes for a 9-byte frame);
    # handing each member the rest of the body fed ~members/2 bodies (hundreds of MB here)
    assert sum(fed) <= 10 * len(body)


@pytest.mark.timeout(120)  # the quadratic loop took minutes on this body; now milliseconds
@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_a_16mib_body_of_empty_members_is_refused_by_its_member_count(encoding: str) -> None:
    body = worst_body(encoding, 16 << 20)
    with pytest.raises(BadBody, match=f"more than {MAX_MEMBERS} members"):
        decompress(body, encoding, 16 << 20)  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_the_member_cap_and_the_cpu_budget_can_be_set(encoding: str) -> None:
    body = worst_body(encoding, 200 * len(EMPTY_MEMBER[encoding]))  # 200 members
    assert decompress(body, encoding, 1 << 20, max_members=200) == b""  # type: ignore[arg-type]
    with pytest.raises(BadBody, match="more than 199 members"):
        decompress(body, encoding, 1 << 20, max_members=199)  # type: ignore[arg-type]
    with pytest.raises(BadBody, match=r"more than 0 s of CPU"):
        decompress(body, encoding, 1 << 20, cpu_budget=0.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_members_of_every_size_still_decompress_whole(encoding: str) -> None:
    """Members fed in growing slices: small, empty and multi-MiB ones all arrive whole."""
    rng = random.Random(13)
    parts = [b"", b"x", rng.randbytes(3 << 20), b"line\n" * 70_000, b"", rng.randbytes(100)]
    body = b"".join(COMPRESS[encoding](p) for p in parts)
    assert decompress(body, encoding, 8 << 20) == b"".join(parts)  # type: ignore[arg-type]
    with pytest.raises(BadBody, match="truncated"):
        decompress(body[:-50], encoding, 8 << 20)  # type: ignore[arg-type]


def test_gzip_zero_padding_after_the_last_member_is_accepted() -> None:
    body = gzip.compress(b"a\n") + gzip.compress(b"b\n") + b"\0" * 512
    assert decompress(body, "gzip", 1 << 20) == b"a\nb\n"
    with pytest.raises(BadBody, match="does not decompress"):
        decompress(body + b"x", "gzip", 1 << 20)


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_over_http_too_many_members_is_400_with_the_reason(
    tmp_path: Path, local_bus: LocalBus, encoding: str
) -> None:
    c, ctx = make_client(tmp_path, local_bus, Config())
    body = COMPRESS[encoding](b"first line\n") + worst_body(encoding, 1 << 20)
    with c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": encoding})
        assert r.status_code == 400
        assert f"more than {MAX_MEMBERS} members" in r.json()["error"]
        # the next client is served as usual
        ok = c.post("/api/v1/ingest", content=COMPRESS[encoding](b"next\n"),
                    headers={"Content-Encoding": encoding})  # fmt: skip
        assert ok.status_code == 200
        assert ok.json()["accepted"] == 1
    ctx.producer.close()
    assert ctx.registry.snapshot()["counters"]["source:http"]["refused"] == 1
    assert [rec.line for _k, rec in raw_records(local_bus)] == ["next"]
