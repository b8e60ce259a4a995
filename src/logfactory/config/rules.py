"""What the factory does with decoded records: ``mappings``, ``alerts`` and threshold ``rules``.

Rule kinds that later issues add follow the sources' pattern: a struct per kind, beside its
own checks, selected by a ``kind`` tag when there is more than one.
"""

from __future__ import annotations

from typing import Any, Literal

from logfactory.config.base import Problems, Section
from logfactory.config.units import Duration
from logfactory.config.workshops import regex_problems

__all__ = [
    "AlertRule",
    "FieldMatch",
    "Mapping",
    "Match",
    "Severity",
    "ThresholdRule",
    "plural",
]

Severity = Literal["info", "low", "medium", "high", "critical"]


def plural(name: str) -> str:
    """The body key of a rule's ``collect`` name: ``addr`` -> ``addrs``, ``hosts`` stays."""
    return name if name.endswith("s") else name + "s"


class FieldMatch(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A condition on one field (``when.fields.NAME``); a plain string means ``equals``.

    Attributes:
        equals: the field's value is this
        regex: the field's value matches this regular expression
        one_of: the field's value is one of these
    """

    equals: str | None = None
    regex: str | None = None
    one_of: list[str] = []


class Match(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``when``: which decoded records a mapping, alert or rule applies to; all given
    conditions must hold.

    Attributes:
        workshop: the record's workshop (a name or a list)
        program: the record's program (a name or a list)
        message: a regex the message must match; its named groups become fields
        fields: field name -> a value, or a condition (equals, regex, one_of)
    """

    workshop: str | list[str] | None = None
    program: str | list[str] | None = None
    message: str | None = None
    fields: dict[str, str | FieldMatch] = {}

    @property
    def workshops(self) -> list[str]:
        """The workshops named (empty: any)."""
        return [self.workshop] if isinstance(self.workshop, str) else self.workshop or []

    def problems(self) -> Problems:
        yield from regex_problems(("message",), self.message)
        for key, cond in self.fields.items():
            if not isinstance(cond, str):
                yield from regex_problems(("fields", key, "regex"), cond.regex)


def _when(when: Match) -> Problems:
    for path, what in when.problems():
        yield (("when", *path), what)


class Mapping(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``mappings[]``: a declarative classification: decoded records that match become events
    of ``type``.

    Attributes:
        name: the mapping's name
        when: the records it applies to
        type: the event type
        subtype: the event's subtype (a template)
        severity: the event's severity
        body: the event's body; values are templates ("{user}")
        params: the event's params: a dict of templates, or one template of a JSON object
    """

    name: str
    when: Match
    type: str
    subtype: str | None = None
    severity: Severity = "info"
    body: dict[str, Any] = {}
    params: dict[str, Any] | str | None = None

    def problems(self) -> Problems:
        return _when(self.when)


class AlertRule(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``alerts[]``: an alert template (Pa): a message matching it is an ALERT with this reason.

    Attributes:
        name: the alert's name
        when: the records it applies to
        subtype: the ALERT's subtype
        reason: why it is an alert (a template)
        severity: the ALERT's severity
        body: the ALERT's body; values are templates
    """

    name: str
    when: Match
    subtype: str
    reason: str
    severity: Severity = "high"
    body: dict[str, Any] = {}

    def problems(self) -> Problems:
        return _when(self.when)


class ThresholdRule(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``rules[]``: ``threshold`` matching records with the same ``key`` within ``window``
    make one event.

    Attributes:
        name: the rule's name (part of its events' ids)
        when: the records it counts
        key: the field (or named group of when.message) records are counted by
        threshold: records within window that make an event
        subtype: the event's subtype
        reason: the event's reason (a template; also sees key, count, window, evidence)
        window: the sliding window of event time
        suppress: after an event, the same key makes no other for this long
        type: the event type
        severity: the event's severity
        collect: fields whose values the event lists (as <name>s)
        max_evidence: records quoted in the event at most
    """

    name: str
    when: Match
    key: str
    threshold: int
    subtype: str
    reason: str
    window: Duration = Duration("60s")
    suppress: Duration = Duration("5m")
    type: str = "ALERT"
    severity: Severity = "high"
    collect: list[str] = []
    max_evidence: int = 20

    def problems(self) -> Problems:
        yield from _when(self.when)
        if self.threshold < 1:
            yield (("threshold",), "threshold must be at least 1")
