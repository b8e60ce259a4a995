"""JSON-lines workshop: one JSON object per line, as structured loggers write them.

The message is ``message_field`` (a non-string value is kept as its JSON text), or the compact
JSON of the whole object when the field is absent. The time is the first present of ``time``,
``timestamp``, ``@timestamp``, ``ts`` that parses (ISO 8601 text, or epoch seconds / ms / us /
ns told apart by magnitude); otherwise the receive time. Every other top-level key becomes a field
as is, the time key included; ``host`` defaults to the record's host.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

import msgspec

from logfactory.config import WorkshopConfig
from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops.timeparse import parse_epoch, parse_iso
from logfactory.record import Record

__all__ = ["TIME_KEYS", "JsonWorkshop"]

TIME_KEYS: tuple[str, ...] = ("time", "timestamp", "@timestamp", "ts")

_decode_json = msgspec.json.Decoder().decode
_encode_json = msgspec.json.Encoder().encode


class JsonWorkshop:
    """Decodes JSON objects; see the module docstring for message, time and fields."""

    def __init__(self, name: str, ws: WorkshopConfig, tz: tzinfo) -> None:
        self.name = name
        self._tz = tz
        self._message_field = ws.message_field

    def decode(self, record: Record) -> DecodedParts:
        # bytes that were not UTF-8 are U+FFFD in record.line: inside a JSON string they parse
        # (the worker flags the record and keeps the bytes); elsewhere the JSON is invalid anyway
        parts = self._parts(self._load(record.line), record.received)
        parts.fields.setdefault("host", record.host)
        return parts

    def decode_message(
        self, message: str, fields: dict[str, Any], default_time_ns: int
    ) -> DecodedParts:
        parts = self._parts(self._load(message), default_time_ns)
        merged = dict(fields)
        merged.update(parts.fields)
        return parts._replace(fields=merged)

    @staticmethod
    def _load(text: str) -> dict[str, Any]:
        try:
            obj = _decode_json(text)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise DecodeError(f"not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise DecodeError("not a JSON object")
        return obj

    def _parts(self, obj: dict[str, Any], default_ns: int) -> DecodedParts:
        time_ns = default_ns
        for key in TIME_KEYS:
            value = obj.get(key)
            if value is None:
                continue
            parsed: int | None = None
            if isinstance(value, str):
                parsed = parse_iso(value, self._tz)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                parsed = parse_epoch(value)
            if parsed is not None:
                time_ns = parsed
                break
        if self._message_field in obj:
            value = obj.pop(self._message_field)
            message = value if isinstance(value, str) else _encode_json(value).decode()
        else:
            message = _encode_json(obj).decode()
        return DecodedParts(self.name, time_ns, message, obj)
