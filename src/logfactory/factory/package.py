"""Package: build envelopes and the parsed/dead-letter documents, and say where each goes.

Nothing here writes to the bus: the worker collects the outputs of a batch and writes them with
the input offsets in one transaction, which is what makes delivery exactly once.

A record whose bytes were not UTF-8 is decoded from its replacement-character text like any other
(see ``workshops.base.record_text``); what comes of it says so: its fields and the body of each of
its events carry ``invalid_utf8: true``, and its ``logs.parsed`` document the original bytes
(``original_b64``), as a dead letter would.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import msgspec

from logfactory.event import Event, Header, encode_event, format_time, position_event_id
from logfactory.factory.model import Decoded, Draft, Position
from logfactory.record import Record
from logfactory.topics import DEADLETTER, PARSED

__all__ = ["INVALID_UTF8", "Outputs", "Packager", "ParsedRecord"]

INVALID_UTF8 = "invalid_utf8"
"""The field (and event body key) that flags output decoded from bytes that were not UTF-8."""


class ParsedRecord(msgspec.Struct, omit_defaults=True):
    """What ``logs.parsed`` carries for the log centre: every decoded record, distributed or not."""

    time: str
    received: str
    source: str
    host: str
    workshop: str
    message: str
    fields: dict[str, Any]
    pattern: str | None = None
    status: str | None = None
    position: str | None = None
    original_b64: str | None = None  # the bytes, when they were not UTF-8 (fields say so too)


class DeadLetter(msgspec.Struct, omit_defaults=True):
    """Anything the factory could not turn into output, with why and the bytes as they came."""

    reason: str
    stage: str
    position: str
    received: str | None = None
    source: str | None = None
    host: str | None = None
    line: str | None = None
    original_b64: str | None = None


@dataclass
class Outputs:
    """A batch's outputs in production order: (topic, key, value)."""

    messages: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    events_by_type: dict[str, int] = field(default_factory=dict)
    deadletters: int = 0

    def add(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.messages.append((topic, key, value))


_json = msgspec.json.Encoder()


def _pos(position: Position) -> str:
    return f"{position.topic}/{position.partition}/{position.offset}"


class Packager:
    """Turns drafts into envelopes with deterministic ids and routes them to their topics."""

    def __init__(self, topics_by_type: dict[str, str]) -> None:
        self._topics = topics_by_type

    def event(
        self,
        draft: Draft,
        decoded: Decoded,
        index: int,
        time_text: str | None = None,
        received_text: str | None = None,
    ) -> Event:
        position = decoded.position
        record = decoded.record
        host = draft.host or decoded.fields.get("host") or record.host
        if draft.time_ns is not None or time_text is None:
            time_text = format_time(draft.time_ns if draft.time_ns is not None else decoded.time_ns)
        return Event(
            header=Header(
                id=draft.id
                or position_event_id(position.topic, position.partition, position.offset, index),
                time=time_text,
                type=draft.type,
                subtype=draft.subtype,
                severity=draft.severity,
                source=record.source,
                host=str(host),
                received=received_text or format_time(record.received),
                pattern=draft.pattern,
                reason=draft.reason,
            ),
            body=draft.body if record.raw is None else {**draft.body, INVALID_UTF8: True},
            params=draft.params or None,
        )

    def add_record(self, out: Outputs, decoded: Decoded, drafts: list[Draft]) -> None:
        """The record for ``logs.parsed`` and its events for ``events.<TYPE>``.

        Together because they share the formatted times: formatting is a visible share of the
        per-record cost at tens of thousands of records a second.
        """
        record = decoded.record
        time_text = format_time(decoded.time_ns)
        received_text = format_time(record.received)
        host = str(decoded.fields.get("host") or record.host)
        position = decoded.position
        doc = ParsedRecord(
            time=time_text,
            received=received_text,
            source=record.source,
            host=host,
            workshop=decoded.workshop,
            message=decoded.message,
            fields=decoded.fields,
            pattern=decoded.pattern,
            status=decoded.pattern_status,
            position=f"{position.topic}/{position.partition}/{position.offset}",
        )
        raw = record.raw
        if raw is not None:
            doc.original_b64 = base64.b64encode(raw).decode("ascii")
        try:
            value = _json.encode(doc)
        except (TypeError, ValueError, OverflowError):
            # a workshop produced a value JSON cannot carry; keep the record, stringify fields
            doc.fields = {k: str(v) for k, v in decoded.fields.items()}
            value = _json.encode(doc)
        messages = out.messages
        messages.append((PARSED, host.encode(), value))
        for index, draft in enumerate(drafts):
            topic = self._topics.get(draft.type)
            if topic is None:
                self.add_deadletter(
                    out,
                    f"event type {draft.type!r} is not configured; add it under event_types",
                    "package",
                    position,
                    record,
                )
                continue
            event = self.event(draft, decoded, index, time_text, received_text)
            messages.append((topic, event.header.id.encode(), encode_event(event)))
            out.events_by_type[draft.type] = out.events_by_type.get(draft.type, 0) + 1

    @staticmethod
    def add_deadletter(
        out: Outputs,
        reason: str,
        stage: str,
        position: Position,
        record: Record | None = None,
        original: bytes | None = None,
    ) -> None:
        if record is not None:
            # the line is the exact text unless the bytes were not UTF-8: then keep the bytes
            raw = record.raw
            letter = DeadLetter(
                reason=reason,
                stage=stage,
                position=_pos(position),
                received=format_time(record.received),
                source=record.source,
                host=record.host,
                line=record.line,
                original_b64=base64.b64encode(raw).decode("ascii") if raw is not None else None,
            )
        else:
            letter = DeadLetter(
                reason=reason,
                stage=stage,
                position=_pos(position),
                original_b64=base64.b64encode(original or b"").decode("ascii"),
            )
        out.add(DEADLETTER, None, _json.encode(letter))
        out.deadletters += 1
