"""What flows between the factory's stages inside one worker.

``Record`` enters (from ``logs.raw``), ``Event`` leaves (to ``events.<TYPE>``); in between the
stages hand each other a :class:`Decoded` record and :class:`Draft` events. Keeping these two
small and explicit is what lets each stage be tested alone.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from logfactory.errors import DecodeError
from logfactory.record import Record

__all__ = ["DecodeError", "Decoded", "DecodedParts", "Draft", "Position"]


class Position(msgspec.Struct, frozen=True):
    """Where a record was read: the basis of deterministic event ids."""

    topic: str
    partition: int
    offset: int


class DecodedParts(NamedTuple):
    """What a workshop returns. ``workshop`` is the one that finally decoded the message: a
    syslog workshop that delegates ``slurmctld`` lines to the slurm workshop returns ``slurm``."""

    workshop: str
    time_ns: int
    message: str
    fields: dict[str, Any]


class Decoded(msgspec.Struct):
    """A record after its workshop: time normalised to UTC, fields as key/value, free text kept.

    Field conventions every workshop keeps, so mappings and rules can rely on them:
    ``host`` (the originating host, from the log header when it names one), ``program`` and
    ``pid`` (when the format has them); any others are per format and documented in the workshop.
    """

    record: Record
    position: Position
    workshop: str
    time_ns: int
    message: str
    fields: dict[str, Any]
    # filled by the filter stage
    pattern: str | None = None
    template: str | None = None
    pattern_status: str | None = None


class Draft(msgspec.Struct):
    """An event before packaging: the package stage adds id, times, host, source and schema."""

    type: str
    subtype: str | None = None
    severity: str = "info"
    reason: str | None = None
    body: dict[str, Any] = {}
    params: dict[str, Any] | None = None
    pattern: str | None = None
    # composite events carry their own deterministic id and time; others derive them
    id: str | None = None
    time_ns: int | None = None
    host: str | None = None
