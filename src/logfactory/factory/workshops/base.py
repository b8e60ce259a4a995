"""The workshop contract and what the workshops share (the registry that builds them from the
configuration is the package, :mod:`logfactory.factory.workshops`).

A workshop turns one :class:`Record` into :class:`DecodedParts` (UTC time, free-text message,
fields) or raises :class:`DecodeError` with a reason fit for the dead letter: a reason of format,
as text that was not UTF-8 is decoded (see :func:`record_text`). Nothing else may escape
``decode``: the property tests feed arbitrary bytes and text to every workshop.

Field conventions shared by all workshops: ``host`` is always present (the host the log names,
else the collecting host ``record.host``), ``program``/``pid`` where the format has them.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, Protocol, runtime_checkable

from logfactory.config import Config, WorkshopConfig
from logfactory.factory.model import DecodedParts
from logfactory.factory.workshops.timeparse import zone
from logfactory.record import Record

__all__ = ["Delegating", "Workshop", "WorkshopFactory", "record_text", "workshop_zone"]


class Workshop(Protocol):
    """One log format. ``decode_message`` serves delegation: a syslog workshop hands the
    message of a configured program (with the syslog fields and time) to another workshop."""

    name: str

    def decode(self, record: Record) -> DecodedParts: ...

    def decode_message(
        self, message: str, fields: dict[str, Any], default_time_ns: int
    ) -> DecodedParts: ...


class WorkshopFactory(Protocol):
    """How the registry builds every format's workshop: its name in ``workshops:``, its
    configuration and the zone of times without one (:func:`workshop_zone`)."""

    def __call__(self, name: str, ws: WorkshopConfig, tz: tzinfo, /) -> Workshop: ...


@runtime_checkable
class Delegating(Protocol):
    """A workshop that hands some programs' messages to others (``delegate:``; syslog)."""

    def set_delegates(self, delegates: dict[str, Workshop]) -> None: ...


def record_text(record: Record) -> str:
    """The record's text without its line terminator.

    Bytes that were not UTF-8 arrive as replacement characters (U+FFFD, ``make_record``) with
    the exact bytes in ``record.raw``, and are decoded like any other text: refusing them would
    let whoever controls one logged field (a user name, a URL) blind every rule with a single
    invalid byte. The worker flags such records (``invalid_utf8``) and keeps their bytes.
    """
    line = record.line
    if line.endswith(("\n", "\r")):
        line = line.rstrip("\r\n")
    return line


def workshop_zone(ws: WorkshopConfig, config: Config) -> tzinfo:
    """The zone for naive and year-less times: the workshop's own, else the node's."""
    return zone(ws.timezone or config.node.timezone)
