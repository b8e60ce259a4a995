"""What a search hands back: the whole StoredDoc, kept as one compressed blob per document.

Why a blob: every column is indexed (or fast) for queries, but none is *stored* column by
column. tantivy's docstore compresses its blocks with lz4, which gains little on short log
lines; one msgpack of the StoredDoc, compressed with **zstd and a dictionary trained on the
day's own documents**, costs about 40 % of it (measured on 200,000 bench documents: the
docstore went from 117 to 69 bytes a document). Only the searches' hits are ever decoded, so
reading pays one small decompression a hit.

The msgpack is an array (:class:`_Packed`: no field names), with ``time`` as whole seconds and
nanoseconds and ``received`` as its distance from ``time``: nanosecond times are nearly random
in their low bytes, and split so they cost 7 bytes a document less after compression (73.9 ->
66.8 bytes on bench documents). The blob's first byte says how the rest is written:

- :data:`PLAIN` (0): the msgpack itself (a day's first documents, before it has a dictionary);
- :data:`DAY_DICT` (1): zstd of the msgpack with the day's dictionary, ``DAY/zstd.dict``.

A day's dictionary is trained once, from the first :data:`TRAIN_DOCS` documents added to the
day (:class:`DayPacker`), and written to the day's folder (owner-only, atomically) *before*
any blob that needs it is added, so a committed blob never names a dictionary that is not on
disk. Readers (other processes) load it once per day when they first meet a blob that needs it
(:class:`DayUnpacker`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec
import zstandard

from logfactory.errors import StoreUnavailable
from logfactory.store.document import Kind, StoredDoc

__all__ = [
    "DAY_DICT",
    "DICT_FILE",
    "PLAIN",
    "TRAIN_DOCS",
    "DayPacker",
    "DayUnpacker",
]

PLAIN: Final = 0
DAY_DICT: Final = 1
DICT_FILE: Final = "zstd.dict"
TRAIN_DOCS: Final = 5_000
"""Documents a day's dictionary is trained from (a day with fewer stays plain)."""
# 128 KiB at level 5: measured on 200,000 bench records, 65.5 B a record against 68.6 for
# 64 KiB at level 3, for 1 µs more a record (about 3 % of a record's write); the store's disk
# target (2x the raw lines) is the tighter one
DICT_BYTES: Final = 131_072
LEVEL: Final = 5

_PLAIN_BYTE: Final = bytes([PLAIN])
_DICT_BYTE: Final = bytes([DAY_DICT])
_SECOND: Final = 1_000_000_000


class _Packed(msgspec.Struct, array_like=True, gc=False):
    """A StoredDoc as the blob holds it (see the module docstring)."""

    seconds: int
    nanos: int
    delay: int  # received - time
    id: str
    kind: Kind
    host: str
    source: str
    message: str
    workshop: str
    type: str
    subtype: str
    severity: str
    pattern: str
    status: str
    fields: dict[str, Any]
    origin: str


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Packed)


def _encode(doc: StoredDoc) -> bytes:
    seconds, nanos = divmod(doc.time, _SECOND)
    return _encoder.encode(
        _Packed(seconds, nanos, doc.received - doc.time, doc.id, doc.kind, doc.host, doc.source,
                doc.message, doc.workshop, doc.type, doc.subtype, doc.severity, doc.pattern,
                doc.status, doc.fields, doc.origin)
    )  # fmt: skip


def _decode(data: bytes) -> StoredDoc:
    got = _decoder.decode(data)
    time = got.seconds * _SECOND + got.nanos
    return StoredDoc(
        id=got.id,
        kind=got.kind,
        time=time,
        received=time + got.delay,
        host=got.host,
        source=got.source,
        message=got.message,
        workshop=got.workshop,
        type=got.type,
        subtype=got.subtype,
        severity=got.severity,
        pattern=got.pattern,
        status=got.status,
        fields=got.fields,
        origin=got.origin,
    )


def _write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path`` atomically, readable by the owner only."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class DayPacker:
    """The writer's side for one day: StoredDocs -> blobs, training the day's dictionary."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._samples: list[bytes | bytearray | memoryview] | None = []
        self._compress: Callable[[bytes], bytes] | None = None
        try:
            data = (folder / DICT_FILE).read_bytes()
        except FileNotFoundError:
            return
        self._use(zstandard.ZstdCompressionDict(data))

    def _use(self, dictionary: zstandard.ZstdCompressionDict) -> None:
        self._samples = None
        self._compress = zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary).compress

    def pack(self, doc: StoredDoc) -> bytes:
        raw = _encode(doc)
        if self._compress is not None:
            return _DICT_BYTE + self._compress(raw)
        samples = self._samples
        if samples is not None:
            samples.append(raw)
            if len(samples) >= TRAIN_DOCS:
                self._train(samples)
        return _PLAIN_BYTE + raw

    def _train(self, samples: list[bytes | bytearray | memoryview]) -> None:
        try:
            dictionary = zstandard.train_dictionary(DICT_BYTES, samples, level=LEVEL)
        except zstandard.ZstdError:
            self._samples = None  # data too uniform or too small to learn from: stays plain
            return
        try:
            _write_private(self.folder / DICT_FILE, dictionary.as_bytes())
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot write the compression dictionary of {self.folder}: {exc}"
            ) from exc
        self._use(dictionary)


class DayUnpacker:
    """The reader's side for one day: blobs -> StoredDocs, the dictionary loaded once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._decompress: Callable[[bytes], bytes] | None = None

    def unpack(self, blob: bytes) -> StoredDoc:
        if not blob:
            raise StoreUnavailable(f"a document in {self.folder} has no stored record")
        flag, body = blob[0], blob[1:]
        if flag == PLAIN:
            return _decode(body)
        if flag != DAY_DICT:
            raise StoreUnavailable(f"a document in {self.folder} is of an unknown kind ({flag})")
        if self._decompress is None:
            self._decompress = self._load()
        return _decode(self._decompress(body))

    def _load(self) -> Callable[[bytes], bytes]:
        try:
            data = (self.folder / DICT_FILE).read_bytes()
        except OSError as exc:
            raise StoreUnavailable(
                f"the store's day {self.folder.name} lost its compression dictionary: {exc}"
            ) from exc
        dictionary = zstandard.ZstdCompressionDict(data)
        return zstandard.ZstdDecompressor(dict_data=dictionary).decompress
