"""Warnings for field names that no record can carry where the config uses them.

A template's ``{usr}`` for ``{user}``, or a rule ``key`` naming a field the workshop does not
have, is not an error a node can refuse to start on: the template renders empty and the rule
never counts, silently. So these are warnings: ``logfactory check`` prints them, and the loader
keeps them in ``Config.warnings`` for whatever starts a node to print.

Conservative on purpose: a name is only reported where every record that can reach the place
has a known set of fields. syslog records have the fields the syslog workshop sets
(:data:`SYSLOG_FIELDS`), kv records their declared columns and ``host``; slurm and json records
carry whatever keys their lines hold, so a place that records of such a workshop can reach is
never warned about. A record decoded by a workshop that a syslog workshop delegates to also
has the syslog fields. Named groups of ``when.message`` are known too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from logfactory.config.model import Config
from logfactory.config.rules import Match, ThresholdRule, plural
from logfactory.config.templates import template_names

__all__ = ["RECORD_VALUES", "SYSLOG_FIELDS", "field_warnings"]

Path = tuple[str | int, ...]
Note = tuple[Path, str]

# what the syslog workshop (factory/workshops/syslog.py) can put into a record's fields
SYSLOG_FIELDS = frozenset({"host", "program", "pid", "facility", "level", "msgid", "sd", "uptime"})
# what templates see for every record besides its fields (factory.matching.record_values)
RECORD_VALUES = frozenset({"message", "workshop", "host", "program", "pattern", "template", "time"})
# what a threshold rule's reason sees besides those (factory/process/rules.py, ``_draft``)
_RULE_VALUES = frozenset(
    {"key", "count", "window", "window_s", "first_seen", "last_seen", "evidence"}
)
# what a ``when.fields`` condition finds on every record (factory.matching._field_value)
_CONDITION_VALUES = frozenset({"host", "message", "workshop"})


def _workshop_fields(config: Config) -> dict[str, frozenset[str] | None]:
    """The fields each workshop's records can have; None: whatever the line holds."""
    delegated = {
        target
        for ws in config.workshops.values()
        if ws.format == "syslog"
        for target in ws.delegate.values()
    }
    out: dict[str, frozenset[str] | None] = {}
    for name, ws in config.workshops.items():
        if ws.format == "syslog":
            out[name] = SYSLOG_FIELDS
        elif ws.format == "kv":
            own = frozenset(ws.fields) | {"host"}
            out[name] = own | SYSLOG_FIELDS if name in delegated else own
        else:
            out[name] = None
    return out


class _Place:
    """What the records a ``when`` matches can carry: their fields and the regex's groups."""

    def __init__(self, when: Match, fields_of: dict[str, frozenset[str] | None]) -> None:
        names = [when.workshop] if isinstance(when.workshop, str) else when.workshop
        self.workshops = list(fields_of) if names is None else names
        known = [fields_of.get(name) for name in self.workshops]
        self.fields: frozenset[str] | None = None
        if known and None not in known:
            self.fields = frozenset(n for f in known if f is not None for n in f)
        try:
            pattern = re.compile(when.message) if when.message is not None else None
        except re.error:
            pattern = None  # reported as an error by config.checks
        self.groups = frozenset(pattern.groupindex) if pattern is not None else frozenset()

    def have(self) -> str:
        """``workshop sce gives addr, host, ...; when.message captures user``."""
        which = ", ".join(self.workshops)
        text = f"workshop {which} gives {', '.join(sorted(self.fields or ()))}"
        if self.groups:
            text += f"; when.message captures {', '.join(sorted(self.groups))}"
        return text


def _template_names(template: Any, path: Path) -> Iterator[tuple[Path, str]]:
    """(path of the string, top-level name) for every ``{name}`` in a template."""
    if isinstance(template, str):
        for name in sorted(template_names(template)):
            if name and not name.isdigit():
                yield path, name
    elif isinstance(template, dict):
        for key, value in template.items():
            yield from _template_names(value, (*path, key))
    elif isinstance(template, list):
        for i, value in enumerate(template):
            yield from _template_names(value, (*path, i))


def _templates(
    place: _Place, templates: Sequence[tuple[Path, Any]], extra: frozenset[str], out: list[Note]
) -> None:
    if place.fields is None:
        return
    known = place.fields | place.groups | RECORD_VALUES | extra
    for path, template in templates:
        for where, name in _template_names(template, path):
            if name not in known:
                out.append(
                    (
                        where,
                        f"{{{name}}} renders empty: no record this matches has {name!r} "
                        f"({place.have()}); check its spelling",
                    )
                )


def _conditions(place: _Place, when: Match, path: Path, out: list[Note]) -> None:
    if place.fields is None:
        return
    for name in when.fields:
        if name not in place.fields | _CONDITION_VALUES:
            out.append(
                (
                    (*path, "fields", name),
                    f"no record of workshop {', '.join(place.workshops)} has a field {name!r} "
                    f"(they have {', '.join(sorted(place.fields))}), so this never matches; "
                    "check its spelling",
                )
            )


def field_warnings(config: Config) -> list[Note]:
    """(key path, what) for every field name used where no record can carry it."""
    fields_of = _workshop_fields(config)
    out: list[Note] = []
    if not fields_of:
        return out  # nothing is decoded at all: there is no field to speak of
    for i, m in enumerate(config.mappings):
        place = _Place(m.when, fields_of)
        _conditions(place, m.when, ("mappings", i, "when"), out)
        templates = [(("mappings", i, k), getattr(m, k)) for k in ("subtype", "body", "params")]
        _templates(place, templates, frozenset(), out)
    for i, a in enumerate(config.alerts):
        place = _Place(a.when, fields_of)
        _conditions(place, a.when, ("alerts", i, "when"), out)
        templates = [(("alerts", i, k), getattr(a, k)) for k in ("reason", "body")]
        _templates(place, templates, frozenset(), out)
    for i, r in enumerate(config.rules):
        place = _Place(r.when, fields_of)
        _conditions(place, r.when, ("rules", i, "when"), out)
        _rule_names(place, i, r, out)
        extra = _RULE_VALUES | {r.key} | {plural(n) for n in r.collect}
        _templates(place, [(("rules", i, "reason"), r.reason)], extra, out)
    return out


def _rule_names(place: _Place, i: int, rule: ThresholdRule, out: list[Note]) -> None:
    """A rule's ``key`` and ``collect`` are looked up in the fields, the groups and the host."""
    if place.fields is None:
        return
    have = place.fields | place.groups | {"host"}
    names: list[tuple[Path, str, str]] = [(("rules", i, "key"), rule.key, "the rule never counts")]
    names += [
        (("rules", i, "collect", j), n, f"{plural(n)} stays empty")
        for j, n in enumerate(rule.collect)
    ]
    for where, name, effect in names:
        if name not in have:
            out.append(
                (
                    where,
                    f"no record this matches has {name!r} ({place.have()}), so {effect}; "
                    f"check its spelling or capture it with (?P<{name}>...) in when.message",
                )
            )
