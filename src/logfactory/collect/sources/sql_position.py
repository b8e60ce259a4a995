"""Where the SQL source got to: the tracking value, persisted across restarts.

``<data_dir>/collect/<name>.sql.json`` holds ``{"version": 1, "tracking_column", "last"}``, the
value typed (:func:`encode_value`) so that a datetime, Decimal or bytes position comes back as
the same type the driver compares with. It is written only with a position the bus holds
durably (the source's ``commit``), to a temp file that is fsynced and renamed over the old one,
and the directory fsynced: a crash leaves the old or the new position, never a mix. A file for
another tracking column, or one that cannot be read, is ignored with a log line: re-reading
beats skipping.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["UNSET", "PositionFile", "decode_value", "encode_value"]

# logged as the SQL source, under the logger name it had before this module was split off
log = logging.getLogger("logfactory.collect.sources.sql")

UNSET: Any = object()  # no position yet (distinct from a tracked NULL)


def encode_value(value: Any) -> dict[str, Any]:
    """A tracked value as JSON that :func:`decode_value` turns back into the same type."""
    if isinstance(value, bool | int | float | str) or value is None:
        return {"t": type(value).__name__, "v": value}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return {"t": type(value).__name__, "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {"t": "decimal", "v": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"t": "bytes", "v": base64.b64encode(bytes(value)).decode()}
    return {"t": "str", "v": str(value)}


_DECODE: dict[str, Any] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "decimal": Decimal,
    "bytes": base64.b64decode,
}


def decode_value(doc: dict[str, Any]) -> Any:
    """Inverse of :func:`encode_value`; raises ValueError/KeyError/TypeError if damaged."""
    kind, value = doc["t"], doc["v"]
    if kind in _DECODE:
        return _DECODE[kind](value)
    if kind not in ("bool", "int", "float", "str", "NoneType"):
        raise ValueError(f"unknown value type {kind!r}")
    return value


class PositionFile:
    """The position file at ``path`` of the SQL source ``source`` tracking ``tracking_column``.
    Thread-safe writes; an unchanged position is not written again."""

    def __init__(self, path: Path, tracking_column: str, source: str) -> None:
        self.path = path
        self.tracking_column = tracking_column
        self.source = source
        self._written: bytes | None = None
        self._write_lock = threading.Lock()

    def load(self) -> Any:
        """The saved position, or :data:`UNSET` when there is none to be used."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return UNSET
        try:
            doc = json.loads(raw)
            if doc["tracking_column"] != self.tracking_column:
                log.warning(
                    "sql source %r: saved position is for column %r, not %r; starting over",
                    self.source, doc["tracking_column"], self.tracking_column,
                )  # fmt: skip
                return UNSET
            position = decode_value(doc["last"])
            self._written = raw
        except (ValueError, KeyError, TypeError) as exc:
            # re-reading beats skipping: a damaged file starts from the initial value
            log.error("sql source %r: ignoring unreadable %s (%s)", self.source, self.path,
                      exc)  # fmt: skip
            return UNSET
        return position

    def write(self, value: Any) -> None:
        """Persist ``value`` atomically (temp file, fsync, rename, directory fsync)."""
        doc = {"version": 1, "tracking_column": self.tracking_column, "last": encode_value(value)}
        data = json.dumps(doc).encode()
        with self._write_lock:
            if data == self._written:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._written = data
