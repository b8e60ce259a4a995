"""The configuration reference, made from the config types: every key, its type, its default
and what it does (the ``Attributes:`` section of its struct's docstring).

Run ``python -m logfactory.config.reference > docs/configuration-reference.md`` (``make
reference``) after changing a config struct; a unit test fails while the committed page differs
from what this prints. A field without a line under ``Attributes:`` (or a line naming no field)
is an error here, so the reference cannot silently fall behind the types.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal

import msgspec

from logfactory.config.model import LOADER_KEYS, Config
from logfactory.config.node import (
    BusConfig,
    CollectorConfig,
    HttpConfig,
    NodeConfig,
    RetentionConfig,
    ShipConfig,
)
from logfactory.config.rules import AlertRule, FieldMatch, Mapping, Match, ThresholdRule
from logfactory.config.snmp import SnmpV3User
from logfactory.config.sources import SourceBase, SourceConfig
from logfactory.config.store import OpenSearchConfig, StoreConfig, StoreRetention
from logfactory.config.units import Duration, Size
from logfactory.config.workshops import (
    EventTypeConfig,
    FactoryConfig,
    MultilineConfig,
    WorkshopConfig,
)

__all__ = ["COMMAND", "field_docs", "reference"]

COMMAND = "python -m logfactory.config.reference > docs/configuration-reference.md"

# (heading, struct) in the order a reader meets them in a file
_SOURCES = [
    (f"sources[] with type: {t.__struct_config__.tag}", t) for t in typing.get_args(SourceConfig)
]
SECTIONS: list[tuple[str, type[msgspec.Struct]]] = [
    ("top level", Config),
    ("node", NodeConfig),
    ("bus", BusConfig),
    ("bus.retention", RetentionConfig),
    ("bus.http", ShipConfig),
    ("http", HttpConfig),
    ("collector", CollectorConfig),
    ("sources[] (every type)", SourceBase),
    *_SOURCES,
    ("sources[].v3_users[]", SnmpV3User),
    ("workshops.NAME", WorkshopConfig),
    ("workshops.NAME.multiline", MultilineConfig),
    ("factory", FactoryConfig),
    ("event_types[]", EventTypeConfig),
    ("mappings[]", Mapping),
    ("when (of mappings, alerts, rules)", Match),
    ("when.fields.NAME", FieldMatch),
    ("alerts[]", AlertRule),
    ("rules[]", ThresholdRule),
    ("store", StoreConfig),
    ("store.retention", StoreRetention),
    ("store.opensearch", OpenSearchConfig),
]


def _slug(heading: str) -> str:
    """The anchor MkDocs gives a heading (Python-Markdown's toc ``slugify``)."""
    text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


_ANCHORS = {cls: (h, _slug(h)) for h, cls in SECTIONS}
_ENTRY = re.compile(r"^(\w+): (.*)$")


def _own_fields(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields a section lists: a source type lists its own, not those of every source."""
    names = tuple(f for f in cls.__struct_fields__ if cls is not Config or f not in LOADER_KEYS)
    if cls is not SourceBase and issubclass(cls, SourceBase):
        names = tuple(f for f in names if f not in SourceBase.__struct_fields__)
    return names


def _docstring(cls: type) -> tuple[str, dict[str, str]]:
    """(the text before ``Attributes:``, field -> its line) of a struct's docstring."""
    text = inspect.cleandoc(cls.__doc__ or "")
    intro, _, attributes = text.partition("\nAttributes:\n")
    docs: dict[str, str] = {}
    last = None
    for line in attributes.splitlines():
        m = _ENTRY.match(line.strip()) if line.startswith("    ") and line[4] != " " else None
        if m:
            last = m.group(1)
            docs[last] = m.group(2)
        elif last is not None and line.strip():
            docs[last] += " " + line.strip()
    intro = re.sub(r":\w+:`", "`", intro.replace("``", "`"))  # no reST roles in Markdown
    return " ".join(intro.split()), docs


def field_docs(cls: type[msgspec.Struct]) -> dict[str, str]:
    """Each field's doc; ValueError for a field without one or a doc naming no field."""
    _, docs = _docstring(cls)
    fields = set(_own_fields(cls))
    if cls is not SourceBase and issubclass(cls, SourceBase):
        docs = {k: v for k, v in docs.items() if k not in SourceBase.__struct_fields__}
    missing = sorted(fields - set(docs))
    extra = sorted(set(docs) - fields)
    if missing or extra:
        raise ValueError(
            f"{cls.__name__}'s docstring: Attributes: lacks {missing}, names no field {extra}"
        )
    return docs


def _type(tp: Any) -> str:
    """A type as a reader of YAML knows it."""
    if tp is Duration:
        return "duration"
    if tp is Size:
        return "size"
    simple = {str: "text", int: "integer", float: "number", bool: "true/false", Any: "any"}
    if tp in simple:
        return simple[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        if tp == SourceConfig:
            return f"[source](#{_ANCHORS[SourceBase][1]})"
        return " or ".join(_type(a) for a in args if a is not type(None))
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is tuple:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"map of text to {_type(args[1])}"
    if isinstance(tp, type) and tp in _ANCHORS:
        heading, anchor = _ANCHORS[tp]
        return f"[{heading}](#{anchor})"
    return getattr(tp, "__name__", str(tp))


def _default(field: msgspec.structs.FieldInfo) -> str:
    if field.default is msgspec.NODEFAULT and field.default_factory is msgspec.NODEFAULT:
        return "required"
    value = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
    if isinstance(value, msgspec.Struct):
        return "see its section"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Duration | Size):
        return f"`{value.text}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value else '`""`'
    if isinstance(value, list | dict):
        return (
            f"`{msgspec.json.encode(value).decode()}`"
            if value
            else ("`[]`" if isinstance(value, list) else "`{}`")
        )
    return f"`{value}`"


def _cell(text: str) -> str:
    """Table-cell text: outside code spans a pipe would end the cell and ``<x>`` be HTML."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _section(heading: str, cls: type[msgspec.Struct]) -> Iterator[str]:
    intro, _ = _docstring(cls)
    docs = field_docs(cls)
    info = {f.name: f for f in msgspec.structs.fields(cls)}
    yield f"## {heading}"
    yield ""
    if intro:
        yield intro
        yield ""
    yield "| key | type | default | what |"
    yield "|---|---|---|---|"
    for name in _own_fields(cls):
        field = info[name]
        cells = (f"`{name}`", _type(field.type), _default(field), docs[name])
        yield "| " + " | ".join(_cell(c) for c in cells) + " |"
    yield ""


def reference() -> str:
    """The whole page, as committed in docs/configuration-reference.md."""
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from src/logfactory/config/ by `{COMMAND}`",
        "     (`make reference`); edit the structs' docstrings there, not this page.",
        "     A test fails while this page is stale. -->",
        "",
        "Every key of the configuration file, with its type and default, made from the types",
        "that load it (see [Configuration](configuration.md) for how the file fits together).",
        "A key not listed for its section is an error, as is a key of another source type.",
        "",
        "A **duration** is a number of seconds or text with a unit: `250ms`, `60s`, `5m`, `2h`,",
        "`7d`. A **size** is a number of bytes or text with a unit: `512KiB`, `16MiB`, `1GiB`",
        "(powers of 1024), `1KB`, `1MB`, `1GB` (powers of 1000). Both are read once, when the",
        "file is loaded.",
        "",
    ]
    for heading, cls in SECTIONS:
        lines += _section(heading, cls)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(reference(), end="")
