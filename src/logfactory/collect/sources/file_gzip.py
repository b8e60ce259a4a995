"""Reading a rotated ``*.gz`` for the file source (``read_gzip: true``).

A ``.gz`` is read once, whole, streamed through zlib (every gzip member in turn; zero padding
after the last one is ignored), ``chunk_size`` compressed bytes per ``pread``, and at most
``chunk_size`` decompressed bytes per call. The file source remembers it by identity with
``done`` in the positions so it is never read again. Offsets of its lines count decompressed
bytes. A ``.gz`` that :mod:`.file_lineage` recognised as the compressed copy of a file we
followed is decompressed from the start but its lines are emitted only from ``Tail.skip_to``
on; if the bytes before that point turn out not to match the mark's window, it is read whole.
"""

from __future__ import annotations

import logging
import os
import zlib
from typing import Any

from logfactory.collect.sources.file_lineage import FP_LEN, WINDOW
from logfactory.collect.sources.file_tail import Tail

__all__ = ["decompressor", "gunzip_head", "read_gz"]

# logged as the file source, under the logger name it had before this module was split off
log = logging.getLogger("logfactory.collect.sources.file")


def decompressor() -> Any:
    """A zlib stream for one gzip member (``Tail.gz``)."""
    return zlib.decompressobj(wbits=31)


def read_gz(t: Tail, size: int, now: float, chunk_size: int, source: str) -> bytes | None:
    """The next decompressed bytes of a .gz (b"" while it has no more yet, None if it is
    corrupt), minus what lies before ``skip_to``. ``size`` is the compressed file's size,
    ``source`` the file source's name for the log."""
    out = bytearray()
    want = chunk_size
    try:
        while len(out) < want:
            d = t.gz
            if d.unconsumed_tail:
                src = d.unconsumed_tail
            elif d.eof:
                src = d.unused_data
                if not src.strip(b"\0"):
                    if t.zpos >= size:
                        break
                    src = _pread_gz(t, size, chunk_size)
                t.gz = d = zlib.decompressobj(wbits=31)  # the next member
            elif t.zpos < size:
                src = _pread_gz(t, size, chunk_size)
            else:
                break
            out += d.decompress(src, want - len(out))
    except (zlib.error, OSError) as exc:
        log.warning("file source %r: %s is not readable gzip after %d bytes (%s); "
                    "leaving it", source, t.path, t.pos + len(out), exc)  # fmt: skip
        return None
    if out:
        t.grew_at = now
    data = bytes(out)
    start = t.pos
    t.pos += len(data)
    if start >= t.skip_to:
        return data
    cut = min(len(data), t.skip_to - start)
    t.skipped = (t.skipped + data[:cut])[-WINDOW:]
    if t.pos >= t.skip_to and t.expect is not None:
        mark, t.expect = t.expect, None
        if not mark.matches_window(t.skipped[len(t.skipped) - mark.win_len :]):
            log.info("file source %r: %s is not a copy of what we read; reading it all",
                     source, t.path)  # fmt: skip
            t.gz = zlib.decompressobj(wbits=31)
            t.pos = t.zpos = t.skip_to = t.base = t.emitted = 0
            return b""
    return data[cut:]


def _pread_gz(t: Tail, size: int, chunk_size: int) -> bytes:
    data = os.pread(t.fd, min(chunk_size, size - t.zpos), t.zpos)
    t.zpos += len(data)
    return data


def gunzip_head(fd: int) -> bytes:
    """The first decompressed bytes of a .gz (b"" when there are none yet)."""
    try:
        return zlib.decompressobj(wbits=31).decompress(os.pread(fd, 1 << 16, 0), FP_LEN)
    except (zlib.error, OSError):
        return b""
