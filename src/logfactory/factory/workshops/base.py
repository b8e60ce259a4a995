"""The workshop contract, and the one place that builds workshops from the configuration.

A workshop turns one :class:`Record` into :class:`DecodedParts` (UTC time, free-text message,
fields) or raises :class:`DecodeError` with a reason fit for the dead letter: a reason of format,
as text that was not UTF-8 is decoded (see :func:`record_text`). Nothing else may escape
``decode``: the property tests feed arbitrary bytes and text to every workshop.

Field conventions shared by all workshops: ``host`` is always present (the host the log names,
else the collecting host ``record.host``), ``program``/``pid`` where the format has them.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, Protocol

from logfactory.config import Config, WorkshopConfig
from logfactory.factory.model import DecodedParts
from logfactory.factory.workshops.timeparse import zone
from logfactory.record import Record

__all__ = ["Workshop", "build_workshops", "record_text", "workshop_zone"]


class Workshop(Protocol):
    """One log format. ``decode_message`` serves delegation: a syslog workshop hands the
    message of a configured program (with the syslog fields and time) to another workshop."""

    name: str

    def decode(self, record: Record) -> DecodedParts: ...

    def decode_message(
        self, message: str, fields: dict[str, Any], default_time_ns: int
    ) -> DecodedParts: ...


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
