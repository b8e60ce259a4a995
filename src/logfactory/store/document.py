"""StoredDoc: the one shape the store keeps, whichever engine, for a log and for an event.

A parsed log (``logs.parsed``) and an event (``events.<TYPE>``) become the same columns, so one
query finds both and the console shows them in one list: ``kind`` tells them apart. Columns that
a kind does not have are empty strings (never absent), so every engine can index them alike.

Ids are the pipeline's own, deterministic ones, which is what makes storing idempotent: a log's
id is the position of its raw record (``logs.raw/3/1187``, the factory's ``position``), an
event's is its ``header.id``. A replay of the bus produces the same ids and the store keeps one
copy of each.

Severity has two vocabularies, and both are kept as they are meant: events carry the rule's
(``info``, ``low``, ``medium``, ``high``, ``critical``); logs carry the syslog level, written
the long way (``emerg``, ``alert``, ``crit``, ``error``, ``warning``, ``notice``, ``info``,
``debug``), so ``severity:error`` finds what syslog calls ``err``. :data:`SEVERITY_ALIASES`
maps the other spellings people and formats use; the query parser applies it too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "COLUMNS",
    "FIELD_PREFIX",
    "KEYWORD_COLUMNS",
    "SEVERITY_ALIASES",
    "SHOWN_ONLY",
    "TIME_COLUMNS",
    "Kind",
    "StoredDoc",
    "doc_to_json",
    "from_event",
    "from_parsed",
    "normal_severity",
    "not_searchable",
    "parse_time",
]

Kind = Literal["log", "event"]

FIELD_PREFIX: Final = "fields."
"""A decoded field's column name in the query tree: ``fields.user``, ``fields.job.id``."""

TIME_COLUMNS: Final = frozenset({"time", "received"})
"""Columns holding UTC nanoseconds: ranges and relative times (``-15m``) apply to them."""

KEYWORD_COLUMNS: Final = frozenset(
    {"id", "kind", "host", "source", "workshop", "type", "subtype", "severity", "pattern",
     "status", "origin"}
)  # fmt: skip
"""Columns matched whole (exact value, or a prefix with ``*``), never split into words."""

COLUMNS: Final = KEYWORD_COLUMNS | TIME_COLUMNS | {"message"}
"""Every column a query may name; any other name is a decoded field (``fields.NAME``)."""

SHOWN_ONLY: Final = frozenset({"origin"})
"""Columns kept with every record and shown, but never searched: a query naming one is
refused (:func:`not_searchable`). ``origin`` is unique to each record, and indexing it cost the
embedded store 5 bytes a record (3 % of it) for a search nobody needs: ``id`` finds a record."""


def not_searchable(column: str) -> str:
    """Why a query may not name ``column`` (one of :data:`SHOWN_ONLY`)."""
    return (
        f"{column} (where the store read a record) is shown with each record but cannot be "
        "searched: search by id"
    )


SEVERITY_ALIASES: Final[dict[str, str]] = {
    "err": "error",
    "warn": "warning",
    "emergency": "emerg",
    "panic": "emerg",
    "fatal": "crit",
    "information": "info",
    "informational": "info",
    "trace": "debug",
}
"""Other spellings of a syslog level -> the one the store keeps (``err`` -> ``error``)."""

_LEVEL_KEYS = ("level", "severity", "loglevel", "log_level")


class StoredDoc(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One stored log or event. Times are UTC nanoseconds since the epoch.

    ``message`` is the searchable text: a log's free-text message; for an event, its reason
    and its body as ``key=value`` words, so free text finds an event by what it is about.
    ``fields`` are a log's decoded fields, or an event's body with its params (the body wins
    a name both use). ``origin`` is where the store read it (``logs.parsed/1/42``)."""

    id: str
    kind: Kind
    time: int
    received: int
    host: str
    source: str
    message: str
    workshop: str = ""
    type: str = ""
    subtype: str = ""
    severity: str = ""
    pattern: str = ""
    status: str = ""
    fields: dict[str, Any] = {}
    origin: str = ""


def normal_severity(value: object) -> str:
    """The store's spelling of a level: lower case, aliases resolved (``ERR`` -> ``error``)."""
    if not isinstance(value, str):
        return ""
    text = value.strip().lower()
    return SEVERITY_ALIASES.get(text, text)


_FRACTION = re.compile(r"\.(\d+)")
_SECONDS: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> UTC seconds: records share seconds
_SECONDS_MAX = 4096


def _whole_seconds(text: str) -> int:
    """UTC seconds of an RFC 3339 time without a fraction."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def parse_time(text: str) -> int:
    """RFC 3339 text (as envelopes write it, ``...T22:38:28.123456Z``) -> UTC nanoseconds.

    Keeps every digit of the fraction (datetime stops at microseconds). The common shape
    (``Z``, a fraction or none) is read with the seconds looked up in a small cache: a store
    reads thousands of records a second that share their second."""
    if len(text) >= 20 and text[-1] == "Z" and text[10] == "T" and text[19] in ".Z":
        head = text[:19]
        seconds = _SECONDS.get(head)
        if seconds is None:
            seconds = _whole_seconds(head + "Z")
            if len(_SECONDS) >= _SECONDS_MAX:
                _SECONDS.clear()
            _SECONDS[head] = seconds
        digits = text[20:-1]
        if not digits:
            return seconds * 1_000_000_000
        if digits.isdigit() and digits.isascii():
            return seconds * 1_000_000_000 + int((digits + "000000000")[:9])
    match = _FRACTION.search(text)
    digits = ""
    if match:
        digits = match.group(1)
        text = text[: match.start()] + text[match.end() :]
    whole = _whole_seconds(text) * 1_000_000_000
    return whole + int((digits + "000000000")[:9]) if digits else whole


class _Parsed(msgspec.Struct):
    time: str
    received: str
    source: str
    host: str
    workshop: str
    message: str
    fields: dict[str, Any] = {}
    pattern: str | None = None
    status: str | None = None
    position: str | None = None


class _Header(msgspec.Struct):
    id: str
    time: str
    type: str
    subtype: str | None = None
    severity: str | None = None
    source: str | None = None
    host: str | None = None
    received: str | None = None
    pattern: str | None = None
    reason: str | None = None


class _Event(msgspec.Struct):
    header: _Header
    body: dict[str, Any] = {}
    params: dict[str, Any] | None = None


_parsed = msgspec.json.Decoder(_Parsed)
_event = msgspec.json.Decoder(_Event)


def from_parsed(value: bytes, origin: str) -> StoredDoc:
    """A ``logs.parsed`` record as stored; ``origin`` is its bus position (``topic/p/offset``),
    also its id when the record names no raw position. Raises ``msgspec.DecodeError`` or
    ``ValueError`` for a value that is not a parsed record (the role dead-letters it)."""
    rec = _parsed.decode(value)
    fields = rec.fields
    level = ""
    for key in _LEVEL_KEYS:
        if key in fields:
            level = normal_severity(fields[key])
            break
    return StoredDoc(
        id=rec.position or origin,
        kind="log",
        time=parse_time(rec.time),
        received=parse_time(rec.received),
        host=rec.host,
        source=rec.source,
        message=rec.message,
        workshop=rec.workshop,
        severity=level,
        pattern=rec.pattern or "",
        status=rec.status or "",
        fields=fields,
        origin=origin,
    )


_json_text = msgspec.json.Encoder()


def _word_value(value: Any) -> str:
    """A body value as its words: text as it is, a list or mapping as compact JSON (never
    Python's repr, whose quotes and brackets are not what anyone searches for or reads)."""
    if isinstance(value, str):
        return value
    try:
        return _json_text.encode(value).decode()
    except (TypeError, ValueError, OverflowError):
        return str(value)


def _words(reason: str | None, body: dict[str, Any]) -> str:
    parts = [reason] if reason else []
    parts.extend(f"{key}={_word_value(val)}" for key, val in body.items() if val is not None)
    return " ".join(parts)


def from_event(value: bytes, origin: str) -> StoredDoc:
    """An event envelope as stored (see :class:`StoredDoc` for ``message`` and ``fields``)."""
    event = _event.decode(value)
    head = event.header
    fields = {**(event.params or {}), **event.body}
    time = parse_time(head.time)
    return StoredDoc(
        id=head.id,
        kind="event",
        time=time,
        received=parse_time(head.received) if head.received else time,
        host=head.host or "",
        source=head.source or "",
        message=_words(head.reason, event.body),
        type=head.type,
        subtype=head.subtype or "",
        severity=normal_severity(head.severity or "info"),
        pattern=head.pattern or "",
        fields=fields,
        origin=origin,
    )


def _rfc3339(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // 1000:06d}Z"


def doc_to_json(doc: StoredDoc, chosen: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A stored doc as the API and the CLI show it: times as RFC 3339 (microseconds, ``Z``),
    empty columns left out; ``chosen`` keeps only those columns (``id`` always)."""
    out: dict[str, Any] = {}
    for name in doc.__struct_fields__:
        value = getattr(doc, name)
        if value in ("", {}) or (chosen is not None and name != "id" and name not in chosen):
            continue
        out[name] = _rfc3339(value) if name in TIME_COLUMNS else value
    return out
