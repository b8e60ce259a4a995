"""The workshop contract, and the one place that builds workshops from the configuration.

A workshop turns one :class:`Record` into :class:`DecodedParts` (UTC time, free-text message,
fields) or raises :class:`DecodeError` with a reason fit for the dead letter. Nothing else may
escape ``decode``: the property tests feed arbitrary bytes and text to every workshop.

Field conventions shared by all workshops: ``host`` is always present (the host the log names,
else the collecting host ``record.host``), ``program``/``pid`` where the format has them.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, Protocol

from logfactory.config import Config, WorkshopConfig
from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops.timeparse import zone
from logfactory.record import Record

__all__ = ["Workshop", "build_workshops", "check_raw", "workshop_zone"]


class Workshop(Protocol):
    """One log format. ``decode_message`` serves delegation: a syslog workshop hands the
    message of a configured program (with the syslog fields and time) to another workshop."""

    name: str

    def decode(self, record: Record) -> DecodedParts: ...

    def decode_message(
        self, message: str, fields: dict[str, Any], default_time_ns: int
    ) -> DecodedParts: ...


def check_raw(record: Record) -> None:
    """Refuse a record whose bytes were not UTF-8 (``raw`` set by ``make_record``): decoding the
    replacement-character text would produce events from text nobody sent."""
    raw = record.raw
    if raw is not None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"invalid UTF-8 at byte {exc.start}") from None
        raise DecodeError("invalid UTF-8 at byte 0")  # raw is only set for invalid bytes


def record_text(record: Record) -> str:
    """The record's text without its line terminator, refusing bytes that were not UTF-8."""
    if record.raw is not None:
        check_raw(record)
    line = record.line
    if line.endswith(("\n", "\r")):
        line = line.rstrip("\r\n")
    return line


def workshop_zone(ws: WorkshopConfig, config: Config) -> tzinfo:
    """The zone for naive and year-less times: the workshop's own, else the node's."""
    return zone(ws.timezone or config.node.timezone)


def build_workshops(config: Config) -> dict[str, Workshop]:
    """One workshop per ``config.workshops`` entry, with syslog delegation wired to the target
    workshop objects (the config check has already verified every target exists)."""
    # imported here: the format modules import this module's helpers
    from logfactory.factory.workshops.json_lines import JsonWorkshop
    from logfactory.factory.workshops.kv import KvWorkshop
    from logfactory.factory.workshops.slurm import SlurmWorkshop
    from logfactory.factory.workshops.syslog import SyslogWorkshop

    out: dict[str, Workshop] = {}
    syslogs: list[tuple[SyslogWorkshop, WorkshopConfig]] = []
    for name, ws in config.workshops.items():
        tz = workshop_zone(ws, config)
        if ws.format == "syslog":
            syslog = SyslogWorkshop(name, tz)
            syslogs.append((syslog, ws))
            out[name] = syslog
        elif ws.format == "kv":
            out[name] = KvWorkshop(name, ws, tz)
        elif ws.format == "slurm":
            out[name] = SlurmWorkshop(name, tz)
        else:
            out[name] = JsonWorkshop(name, ws, tz)
    for syslog, ws in syslogs:
        syslog.set_delegates({program: out[target] for program, target in ws.delegate.items()})
    return out
