"""The embedded bus's writer process: appends what an :class:`OffloadProducer` sends it.

Why a module of its own: this is all the child process (``python -m
logfactory.bus.local.writer_process``) runs, so it imports only what writing needs, and the
wire protocol it shares with :mod:`logfactory.bus.local.writer` (the parent side, where the
protocol and the guarantees are described) is defined here, once.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import msgspec

from logfactory.bus.base import BusError
from logfactory.bus.local.append import Appender
from logfactory.bus.local.bus import LocalBus
from logfactory.bus.local.db import Db, Entry
from logfactory.bus.local.wire import ACK, FAILED, HEADER, LEN, write_all

__all__ = ["WriterBus", "main"]

# One transaction groups the frames already waiting, up to about this many messages: past a few
# thousand, bigger transactions are no faster, and small ones keep acknowledgements frequent, so
# a collector throttling on pending() (agent.BACKLOG_HIGH/LOW) resumes long before the child
# runs dry.
_TXN_MESSAGES = 8192
_READ_BYTES = 1 << 20


class _Frames:
    """Frames from the parent: everything complete and already waiting, without blocking on
    more once there is something to write."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.eof = False
        self._decode = msgspec.msgpack.Decoder(list[tuple[str, bytes | None, bytes]]).decode

    def batch(self) -> list[Entry] | None:
        """The next messages to write; ``None`` at end of input (a torn last frame is dropped:
        the parent died while sending it, so none of it was promised durable)."""
        out: list[Entry] = []
        while True:
            self._parse(out)
            if out and (self.eof or len(out) >= _TXN_MESSAGES or not self._readable()):
                return out
            if self.eof:
                if self.buf:
                    dropped = len(self.buf)
                    print(f"local bus writer: input ended in a frame, {dropped} bytes dropped")
                return None
            data = os.read(self.fd, _READ_BYTES)
            if data:
                self.buf += data
            else:
                self.eof = True

    def _readable(self) -> bool:
        return bool(select.select([self.fd], [], [], 0)[0])

    def _parse(self, out: list[Entry]) -> None:
        pos, buf = 0, self.buf
        while len(buf) - pos >= HEADER.size and len(out) < _TXN_MESSAGES:
            size, count = HEADER.unpack_from(buf, pos)
            end = pos + HEADER.size + size
            if end > len(buf):
                break
            with memoryview(buf) as view:
                entries = self._decode(view[pos + HEADER.size : end])
            if len(entries) != count:
                raise BusError(f"corrupt frame: {len(entries)} message(s), header says {count}")
            out += entries
            pos = end
        if pos:
            del buf[:pos]


class WriterBus(Protocol):
    """What the writer needs of the bus it appends to."""

    @property
    def path(self) -> Path: ...

    @property
    def appender(self) -> Appender: ...

    def close(self) -> None: ...


class _Writer:
    """Appends batches in write transactions, retrying a busy database like LocalProducer,
    through the bus's own append path."""

    def __init__(self, bus: WriterBus, fsync: bool) -> None:
        self.bus = bus
        self.db = Db(bus.path, fsync)

    def write(self, batch: Sequence[Entry]) -> None:
        self.bus.appender.append_retrying(self.db, batch)

    def close(self) -> None:
        self.db.close()
        self.bus.close()


class _Acks:
    """The channel back to the parent. Once the parent is gone, acks are dropped: the child
    still writes what it received."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def send(self, data: bytes) -> None:
        if self.fd is None:
            return
        try:
            write_all(self.fd, data)
        except OSError:
            self.fd = None

    def fail(self, text: str) -> None:
        raw = text.encode("utf-8", "replace")[:8000]
        self.send(ACK.pack(FAILED) + LEN.pack(len(raw)) + raw)


def _serve(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m logfactory.bus.local.writer_process")
    parser.add_argument("directory", help="the local bus directory (bus.sqlite3 inside)")
    parser.add_argument("--fsync", action="store_true", help="the bus's fsync setting")
    opts = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):  # we stop when our input ends, not before
        signal.signal(sig, signal.SIG_IGN)
    acks = _Acks(os.dup(1))
    os.dup2(2, 1)  # a stray print must never corrupt the protocol
    writer: _Writer | None = None
    try:
        writer = _Writer(LocalBus(opts.directory, fsync=opts.fsync), opts.fsync)
        acks.send(ACK.pack(0))
        frames = _Frames(0)
        written = 0
        while (batch := frames.batch()) is not None:
            writer.write(batch)
            written += len(batch)
            acks.send(ACK.pack(written))
    except BaseException as exc:
        acks.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if writer is not None:
            writer.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return _serve(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
