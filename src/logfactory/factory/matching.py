"""The declarative matcher and templates shared by mappings, alerts and threshold rules.

A :class:`config.Match` is compiled once into a :class:`Matcher` whose ``match`` runs on every
record, so the checks are ordered cheapest first (set membership on the workshop and program, then
field conditions, then the message regex) and everything that can be precompiled is.

Templates (``reason``, ``body``, ``params`` in the config) are parsed once into a tree of small
renderers: per record only lookups and joins happen, never ``str.format`` parsing. A string that is
exactly ``"{name}"`` renders to the typed value itself (so ``cpus: "{cpus}"`` stays an int); any
other string is formatted with missing values rendered as ``""``. ``{a.b}`` looks up ``b`` inside
the mapping ``a`` (e.g. ``{params.cpus}``).
"""

from __future__ import annotations

import re
import re._constants as _sre_constants  # type: ignore[import-not-found]  # parsed patterns
import re._parser as _sre_parser  # type: ignore[import-not-found]
import string
from collections.abc import Callable, Mapping
from typing import Any

from logfactory import config
from logfactory.config.templates import template_names
from logfactory.event import format_time
from logfactory.factory.model import Decoded

__all__ = [
    "Matcher",
    "Template",
    "compile_match",
    "compile_template",
    "record_values",
    "render",
]

_FieldCheck = Callable[[str], bool]


def _names(value: str | list[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def _field_check(cond: str | config.FieldMatch) -> _FieldCheck:
    if isinstance(cond, str):
        return cond.__eq__
    checks: list[_FieldCheck] = []
    if cond.equals is not None:
        checks.append(cond.equals.__eq__)
    if cond.regex is not None:
        search = re.compile(cond.regex).search
        checks.append(lambda v: search(v) is not None)
    if cond.one_of:
        checks.append(frozenset(cond.one_of).__contains__)
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)


def _field_value(decoded: Decoded, name: str) -> Any:
    value = decoded.fields.get(name)
    if value is not None:
        return value
    # the few values every record has even when the workshop put no such field
    if name == "host":
        return decoded.record.host
    if name == "message":
        return decoded.message
    if name == "workshop":
        return decoded.workshop
    return None


def required_literal(pattern: str) -> str | None:
    """The longest run of plain characters every match of ``pattern`` must contain, if any.

    A substring test (``in``) is far cheaper than a regex search that fails, and most records
    fail most matchers, so matchers test this first. Only top-level literals qualify: those are
    mandatory whatever the groups and alternations inside do. Case-insensitive or verbose
    patterns get no prefilter.
    """
    try:
        parsed = _sre_parser.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE | re.LOCALE):
        return None
    best: list[str] = []
    run: list[str] = []
    for op, arg in parsed:
        if op is _LITERAL:
            run.append(chr(arg))
            continue
        if len(run) > len(best):
            best = run
        run = []
    if len(run) > len(best):
        best = run
    return "".join(best) if len(best) >= 3 else None


_LITERAL = _sre_constants.LITERAL


class Matcher:
    """A compiled :class:`config.Match`; ``match`` returns the captured groups or ``None``."""

    __slots__ = ("_fields", "_literal", "_named", "_programs", "_search", "_workshops")

    def __init__(self, m: config.Match) -> None:
        self._workshops = _names(m.workshop)
        self._programs = _names(m.program)
        self._fields: tuple[tuple[str, _FieldCheck], ...] = tuple(
            (name, _field_check(cond)) for name, cond in m.fields.items()
        )
        rx = re.compile(m.message) if m.message is not None else None
        self._search = rx.search if rx is not None else None
        self._named = bool(rx.groupindex) if rx is not None else False
        self._literal = required_literal(m.message) if m.message is not None else None

    def accepts(self, workshop: str, program: str | None) -> bool:
        """Whether records of this workshop and program can match at all: lets callers index
        matchers once per (workshop, program) instead of trying every one on every record."""
        if self._workshops is not None and workshop not in self._workshops:
            return False
        return self._programs is None or (program is not None and program in self._programs)

    def match(self, decoded: Decoded) -> dict[str, Any] | None:
        """Named groups of the message regex that took part (empty dict when none), or ``None``
        when any condition fails. A missing field never matches."""
        if self._workshops is not None and decoded.workshop not in self._workshops:
            return None
        if self._programs is not None:
            program = decoded.fields.get("program")
            if program is None or str(program) not in self._programs:
                return None
        for name, check in self._fields:
            value = _field_value(decoded, name)
            if value is None or not check(value if isinstance(value, str) else str(value)):
                return None
        if self._search is None:
            return {}
        if self._literal is not None and self._literal not in decoded.message:
            return None
        found = self._search(decoded.message)
        if found is None:
            return None
        if not self._named:
            return {}
        return {k: v for k, v in found.groupdict().items() if v is not None}


def compile_match(m: config.Match) -> Matcher:
    return Matcher(m)


# -- templates -----------------------------------------------------------------------------
_Renderer = Callable[[Mapping[str, Any]], Any]
_FORMATTER = string.Formatter()


def _getter(name: str) -> Callable[[Mapping[str, Any]], Any]:
    if "." not in name:
        return lambda values: values.get(name)
    path = name.split(".")

    def get(values: Mapping[str, Any]) -> Any:
        if name in values:
            return values[name]
        value: Any = values
        for part in path:
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    return get


def _piece(name: str, conversion: str | None, spec: str) -> Callable[[Mapping[str, Any]], str]:
    get = _getter(name)
    if conversion is None and not spec:

        def plain(values: Mapping[str, Any]) -> str:
            value = get(values)
            return "" if value is None else value if isinstance(value, str) else str(value)

        return plain

    def formatted(values: Mapping[str, Any]) -> str:
        value = get(values)
        if value is None:
            return ""
        if conversion == "r":
            value = repr(value)
        elif conversion in ("s", "a"):
            value = str(value) if conversion == "s" else ascii(value)
        try:
            return format(value, spec)
        except (ValueError, TypeError):
            return str(value)

    return formatted


def _compile_str(text: str) -> _Renderer:
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError:  # an unbalanced brace: the text is meant literally
        return lambda values: text
    fields = [(lit, name, spec, conv) for lit, name, spec, conv in parsed if name is not None]
    if not fields:
        constant = "".join(lit for lit, _, _, _ in parsed)
        return lambda values: constant
    only = parsed[0]
    if len(parsed) == 1 and not only[0] and only[1] and not only[2] and only[3] is None:
        return _getter(only[1])  # exactly "{name}": keep the typed value
    parts: list[str | Callable[[Mapping[str, Any]], str]] = []
    for lit, maybe, spec, conv in parsed:
        if lit:
            parts.append(lit)
        if maybe is not None:
            parts.append(_piece(maybe, conv, spec or ""))
    frozen = tuple(parts)
    return lambda values: "".join(p if isinstance(p, str) else p(values) for p in frozen)


def _compile(template: Any) -> _Renderer:
    if isinstance(template, str):
        return _compile_str(template)
    if isinstance(template, dict):
        items = tuple((k, _compile(v)) for k, v in template.items())
        return lambda values: {k: f(values) for k, f in items}
    if isinstance(template, list | tuple):
        elems = tuple(_compile(v) for v in template)
        return lambda values: [f(values) for f in elems]
    return lambda values: template


class Template:
    """A template parsed once. ``names`` are the top-level value names it refers to, so the caller
    can skip computing expensive values (``time``) nobody asks for."""

    __slots__ = ("names", "render")

    def __init__(self, template: Any) -> None:
        self.render: _Renderer = _compile(template)
        # the configuration's warnings read a template's names the same way
        self.names: frozenset[str] = template_names(template)


def compile_template(template: Any) -> Template:
    return Template(template)


_STR_CACHE: dict[str, Template] = {}


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """Render once (convenience, not for hot paths of non-string templates: compile those)."""
    if isinstance(template, str):
        compiled = _STR_CACHE.get(template)
        if compiled is None:
            if len(_STR_CACHE) > 4096:
                _STR_CACHE.clear()
            compiled = _STR_CACHE[template] = Template(template)
        return compiled.render(values)
    return Template(template).render(values)


def record_values(
    decoded: Decoded, captured: Mapping[str, Any] | None = None, with_time: bool = True
) -> dict[str, Any]:
    """The values templates see for a record: ``message``, ``workshop``, ``host``, ``program``,
    ``pattern``, ``template``, ``time`` (RFC 3339), then every field, then the captured groups
    (later ones win)."""
    values: dict[str, Any] = {
        "message": decoded.message,
        "workshop": decoded.workshop,
        "host": decoded.record.host,
        "program": None,
        "pattern": decoded.pattern,
        "template": decoded.template,
    }
    if with_time:
        values["time"] = format_time(decoded.time_ns)
    values.update(decoded.fields)
    if captured:
        values.update(captured)
    return values
