"""The filter stage: what a decoded record means, decided against the two libraries.

Order (DESIGN.md §2), for every record:

1. observe the message in the pattern library (sets ``decoded.pattern/template/pattern_status``),
   for mined workshops only (:func:`mined_workshops`): the records of the others carry no
   pattern id, and their events none either;
2. the configured alert templates (Pa, ``config.alerts``): the first that matches makes an ALERT;
3. otherwise a template people marked ``alert`` in the library makes a ``PATTERN_ALERT`` ALERT;
4. every mapping (``config.mappings``) that matches makes an event of its type;
5. if none of 2-4 fired and the template was just seen for the first time, a NEW_PATTERN event
   (when enabled for the workshop) whose id derives from the pattern id, so a replay announces it
   as the same event;
6. anything else (known normal, or known and not yet reviewed) is not distributed: the record
   still goes to ``logs.parsed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logfactory.config import AlertRule, Config, Mapping
from logfactory.event import composite_event_id, format_time
from logfactory.factory.matching import Matcher, Template, record_values
from logfactory.factory.model import Decoded, Draft
from logfactory.factory.patterns.library import Observation, PatternLibrary
from logfactory.factory.workshops import FREE_TEXT_FORMATS

__all__ = ["FilterStage", "FilterStats", "mined_workshops"]


def mined_workshops(config: Config) -> frozenset[str]:
    """The workshops whose messages the pattern library mines (``WorkshopConfig.mine``).

    Unset ``mine``: free-text formats are mined, structured ones are not, except a workshop
    named in ``factory.pattern_workshops`` (configs written before ``mine`` existed listed
    the workshops they wanted announced there, and keep getting those announcements).
    ``patterns learn`` uses this too, so history is mined exactly as live records are.
    """
    listed = frozenset(config.factory.pattern_workshops or ())
    return frozenset(
        name
        for name, ws in config.workshops.items()
        if (ws.mine if ws.mine is not None else ws.format in FREE_TEXT_FORMATS or name in listed)
    )


@dataclass
class FilterStats:
    """Outcomes since start: ``alerts`` (config Pa), ``pattern_alerts`` (library status),
    ``mapped`` (records with at least one mapping), ``new`` (NEW_PATTERN events), ``normal``
    (records that produced nothing), ``records`` (all)."""

    records: int = 0
    alerts: int = 0
    pattern_alerts: int = 0
    mapped: int = 0
    new: int = 0
    normal: int = 0


class _Alert:
    __slots__ = ("body", "default_body", "matcher", "reason", "rule", "with_time")

    def __init__(self, rule: AlertRule) -> None:
        self.rule = rule
        self.matcher = Matcher(rule.when)
        self.reason = Template(rule.reason)
        self.body = Template(rule.body) if rule.body else None
        self.default_body = not rule.body
        names = self.reason.names | (self.body.names if self.body else frozenset())
        self.with_time = "time" in names


class _Mapping:
    __slots__ = ("body", "body_given", "mapping", "matcher", "params", "subtype", "with_time")

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping
        self.matcher = Matcher(mapping.when)
        self.body = Template(mapping.body)
        self.body_given = bool(mapping.body)
        self.params = Template(mapping.params) if mapping.params is not None else None
        self.subtype = Template(mapping.subtype) if mapping.subtype is not None else None
        names = self.body.names
        for t in (self.params, self.subtype):
            if t is not None:
                names = names | t.names
        self.with_time = "time" in names


class FilterStage:
    """See the module docstring. ``apply`` never raises on odd records (missing fields render
    as None/""); it returns the drafts for the package stage."""

    def __init__(self, config: Config, library: PatternLibrary) -> None:
        self.library = library
        self.stats = FilterStats()
        self._alerts = tuple(_Alert(a) for a in config.alerts)
        self._mappings = tuple(_Mapping(m) for m in config.mappings)
        self._new_patterns = config.factory.new_patterns
        self._mined = mined_workshops(config)
        workshops = config.factory.pattern_workshops
        self._new_workshops = frozenset(workshops) if workshops is not None else None
        self._candidates: dict[
            tuple[str, str | None], tuple[tuple[_Alert, ...], tuple[_Mapping, ...]]
        ] = {}

    def _candidates_for(self, decoded: Decoded) -> tuple[tuple[_Alert, ...], tuple[_Mapping, ...]]:
        """The alerts and mappings that can match this workshop and program, in config order."""
        program = decoded.fields.get("program")
        key = (decoded.workshop, None if program is None else str(program))
        found = self._candidates.get(key)
        if found is None:
            found = (
                tuple(a for a in self._alerts if a.matcher.accepts(*key)),
                tuple(m for m in self._mappings if m.matcher.accepts(*key)),
            )
            if len(self._candidates) < 65_536:  # bounded: programs are not unlimited in practice
                self._candidates[key] = found
        return found

    def observe(self, decoded: Decoded) -> Observation | None:
        """Step 1: the record's template, learned into the library (None: not mined)."""
        if decoded.workshop not in self._mined:
            return None
        obs = self.library.observe(decoded.workshop, decoded.message, decoded.time_ns)
        decoded.pattern = obs.pattern_id
        decoded.template = obs.template
        decoded.pattern_status = obs.status
        return obs

    def apply(self, decoded: Decoded) -> list[Draft]:
        stats = self.stats
        stats.records += 1
        obs = self.observe(decoded)
        drafts: list[Draft] = []
        alerts, mappings = self._candidates_for(decoded)
        for alert in alerts:
            captured = alert.matcher.match(decoded)
            if captured is not None:
                drafts.append(self._alert(alert, decoded, captured))
                stats.alerts += 1
                break
        else:
            if obs is not None and obs.status == "alert":
                drafts.append(self._pattern_alert(decoded, obs.reason, obs.severity))
                stats.pattern_alerts += 1
        mapped = False
        for mapping in mappings:
            captured = mapping.matcher.match(decoded)
            if captured is not None:
                drafts.append(self._mapped(mapping, decoded, captured))
                mapped = True
        if mapped:
            stats.mapped += 1
        if drafts:
            return drafts
        if obs is not None and obs.is_new and self._announces(decoded.workshop):
            stats.new += 1
            return [self._new_pattern(decoded)]
        stats.normal += 1
        return drafts

    def _announces(self, workshop: str) -> bool:
        return self._new_patterns and (
            self._new_workshops is None or workshop in self._new_workshops
        )

    # -- drafts --------------------------------------------------------------------------------
    def _alert(self, alert: _Alert, decoded: Decoded, captured: dict[str, Any]) -> Draft:
        values = record_values(decoded, captured, alert.with_time)
        if alert.body is not None:
            body = alert.body.render(values)
        else:
            body = {
                "message": decoded.message,
                "program": decoded.fields.get("program"),
                **captured,
            }
        rule = alert.rule
        return Draft(
            type="ALERT",
            subtype=rule.subtype,
            severity=rule.severity,
            reason=str(alert.reason.render(values)),
            body=body if isinstance(body, dict) else {"value": body},
            pattern=decoded.pattern,
        )

    def _pattern_alert(self, decoded: Decoded, reason: str | None, severity: str | None) -> Draft:
        return Draft(
            type="ALERT",
            subtype="PATTERN_ALERT",
            severity=severity or "high",
            reason=reason or f"message matches alert pattern {decoded.template}",
            body={
                "message": decoded.message,
                "program": decoded.fields.get("program"),
                "template": decoded.template,
            },
            pattern=decoded.pattern,
        )

    def _mapped(self, mapping: _Mapping, decoded: Decoded, captured: dict[str, Any]) -> Draft:
        values = record_values(decoded, captured, mapping.with_time)
        if mapping.body_given:
            body = mapping.body.render(values)
        else:  # no body configured: the message and what the regex captured
            body = {"message": decoded.message, **captured}
        params: Any = mapping.params.render(values) if mapping.params is not None else None
        subtype = mapping.subtype.render(values) if mapping.subtype is not None else None
        m = mapping.mapping
        return Draft(
            type=m.type,
            subtype=None if subtype is None else str(subtype),
            severity=m.severity,
            body=body if isinstance(body, dict) else {"value": body},
            params=params if isinstance(params, dict) and params else None,
            pattern=decoded.pattern,
        )

    def _new_pattern(self, decoded: Decoded) -> Draft:
        pid = decoded.pattern or ""
        return Draft(
            type="NEW_PATTERN",
            severity="info",
            body={
                "template": decoded.template,
                "example": decoded.message,
                "workshop": decoded.workshop,
                "first_seen": format_time(decoded.time_ns),
                "pattern": pid,
            },
            pattern=pid,
            id=composite_event_id("new-pattern", pid, 0),
        )
