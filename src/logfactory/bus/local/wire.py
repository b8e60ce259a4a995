"""The wire protocol between an :class:`~logfactory.bus.local.writer.OffloadProducer` and its
writer process (:mod:`logfactory.bus.local.writer_process`); described in
:mod:`logfactory.bus.local.writer`.

Why a module of its own: both sides need it, and neither side may import the other (the child
imports the bus, which imports the parent side).
"""

from __future__ import annotations

import os
import struct

__all__ = ["ACK", "FAILED", "HEADER", "LEN", "write_all"]

#: parent -> child frame header: payload length, message count
HEADER = struct.Struct("<II")
#: child -> parent: messages durably appended so far, or FAILED then LEN + UTF-8 text
ACK = struct.Struct("<q")
LEN = struct.Struct("<I")
FAILED = -1


def write_all(fd: int, data: bytes | bytearray) -> None:
    with memoryview(data) as view:
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])
