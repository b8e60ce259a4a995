"""Several messages in one row of the embedded bus: how they are grouped, packed and read back.

Why: an SQLite row costs about 3 us to insert whatever it holds (b-tree step, record header,
parameter binding), so a collector appending one 200-byte log line per row spends most of its
bus time on row overhead, and writes every byte twice (WAL, then checkpoint). Kafka answers the
same problem with record batches; this is ours. Consecutive messages of one partition,
appended in one transaction, share a row: its ``rid`` is the first message's offset, its ``n``
the number of messages, and its value the LZ4 block of a msgpack array of ``[key, value]``
pairs. Log lines compress about 3-4x in such a batch, which shrinks the database and the bytes
SQLite writes in the same proportion.

Rules every reader and writer relies on:

* a row with ``n == 1`` is one plain message (``key``, ``value`` as produced): rows written by
  earlier versions are all of this kind, and a lone message is never packed;
* a row with ``n > 1`` holds offsets ``rid .. rid + n - 1``; its ``key`` column is NULL and
  its ``size`` the total bytes of its values as produced (``heads.bytes`` and size retention
  count message bytes, so they mean the same whether or not rows are packed);
* compacted topics never get packed rows (compaction keeps the newest row per key column);
* a partition's low watermark is its first row's offset: retention deletes whole rows, and
  trims a packed row it cuts through into a new row at the first offset it keeps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import lz4.block  # type: ignore[import-untyped]
import msgspec

from logfactory.bus.base import BusError
from logfactory.bus.local.db import Entry

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_MESSAGES", "groups", "pack", "unpack"]

# Measured with 200-byte log records: 16-32 messages a row run at ~1.3-1.6 us a message, 8 at
# 2.8, 1 at 6-8; past ~16 KB raw a row spills into SQLite overflow pages and slows down again.
MAX_BATCH_MESSAGES = 32
MAX_BATCH_BYTES = 16_384

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[tuple[bytes | None, bytes]]).decode


def groups(entries: Sequence[Entry]) -> Iterator[Sequence[Entry]]:
    """Consecutive runs of ``entries`` to store one row each: at most ``MAX_BATCH_MESSAGES``
    messages and, unless a single message is bigger on its own, ``MAX_BATCH_BYTES`` of values."""
    step = MAX_BATCH_MESSAGES
    for start in range(0, len(entries), step):
        run = entries[start : start + step]
        if sum(len(e[2]) for e in run) <= MAX_BATCH_BYTES:
            yield run
            continue
        # big values: split this run by size (the rare path, so a plain loop)
        first, size = 0, 0
        for i, entry in enumerate(run):
            length = len(entry[2])
            if i > first and size + length > MAX_BATCH_BYTES:
                yield run[first:i]
                first, size = i, 0
            size += length
        yield run[first:]


def pack(pairs: Sequence[tuple[bytes | None, bytes]]) -> bytes:
    """One row's value for several ``(key, value)`` messages (layout: the module docstring)."""
    return bytes(lz4.block.compress(_encode(pairs), store_size=True))


def unpack(value: bytes, n: int, where: str) -> list[tuple[bytes | None, bytes]]:
    """The ``(key, value)`` pairs of a packed row; a damaged row is a :class:`BusError` naming
    ``where`` (topic, partition and offset), never a crash deeper down."""
    try:
        pairs = _decode(lz4.block.decompress(value))
    except (lz4.block.LZ4BlockError, msgspec.DecodeError, ValueError) as exc:
        raise BusError(f"{where}: damaged message batch ({exc})") from exc
    if len(pairs) != n:
        raise BusError(f"{where}: message batch holds {len(pairs)} message(s), its row says {n}")
    return pairs
