"""The workshop registry: one workshop class per log format, and the one place that builds them.

``WORKSHOPS`` maps a ``format:`` of ``workshops.NAME`` to the class that decodes it; every class
is built the same way, ``cls(name, ws, tz)`` (:class:`~.base.WorkshopFactory`). The formats a
configuration may name are plain data in the config package
(:data:`logfactory.config.WORKSHOP_FORMATS`), which imports nothing of the factory; a test holds
the two to the same set. A new format is a module here, a row in ``WORKSHOPS`` and its name in
the config's ``WorkshopFormat``.
"""

from __future__ import annotations

from logfactory.config import Config
from logfactory.factory.workshops.base import (
    Delegating,
    Workshop,
    WorkshopFactory,
    workshop_zone,
)
from logfactory.factory.workshops.json_lines import JsonWorkshop
from logfactory.factory.workshops.kv import KvWorkshop
from logfactory.factory.workshops.slurm import SlurmWorkshop
from logfactory.factory.workshops.syslog import SyslogWorkshop

__all__ = ["FREE_TEXT_FORMATS", "WORKSHOPS", "Workshop", "WorkshopFactory", "build_workshops"]

WORKSHOPS: dict[str, WorkshopFactory] = {
    "syslog": SyslogWorkshop,
    "kv": KvWorkshop,
    "slurm": SlurmWorkshop,
    "json": JsonWorkshop,
}

# formats whose messages are free text: the pattern library mines them unless a workshop says
# ``mine: false`` (structured formats vary by field values; mappings classify them instead)
FREE_TEXT_FORMATS = frozenset({"syslog"})


def build_workshops(config: Config) -> dict[str, Workshop]:
    """One workshop per ``config.workshops`` entry, with delegation (``delegate:``) wired to the
    target workshop objects (the config check has already verified every target exists)."""
    out: dict[str, Workshop] = {
        name: WORKSHOPS[ws.format](name, ws, workshop_zone(ws, config))
        for name, ws in config.workshops.items()
    }
    for name, ws in config.workshops.items():
        built = out[name]
        if isinstance(built, Delegating):
            built.set_delegates({program: out[target] for program, target in ws.delegate.items()})
    return out
