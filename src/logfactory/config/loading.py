"""Reading the file: YAML with the line of every key, msgspec's errors told in the file's terms.

Every error names the file, the line and what was expected, because a config mistake found at
3 a.m. must be fixable from the message alone: ``FILE:LINE: key.path: what; the fix``.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from logfactory.config.base import PathKey, bare_port, key_path
from logfactory.config.checks import check_config
from logfactory.config.fields import field_warnings
from logfactory.config.model import LOADER_KEYS, Config
from logfactory.config.units import dec_hook
from logfactory.errors import ConfigError

__all__ = ["load_config", "parse_config"]

REFERENCE = "docs/configuration-reference.md"


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping key and sequence item."""


def _construct_with_lines(
    loader: _LineLoader, node: yaml.Node, path: PathKey, lines: dict[PathKey, int]
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, str | int):
                lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = _construct_with_lines(loader, value_node, (*path, key), lines)
            else:
                out[key] = loader.construct_object(value_node, deep=True)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct_with_lines(loader, item, (*path, i), lines)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


# msgspec's error paths: `.name`, `[3]`, and `[...]` for a dict key that it does not name
_PATH_PART = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]|\[(\.\.\.)\]")


def _parse_msgspec_path(text: str) -> list[str | int | None]:
    """``$.workshops[...].format`` -> ``["workshops", None, "format"]`` (None: unnamed key)."""
    return [
        name if name else int(index) if index else None
        for name, index, _ in _PATH_PART.findall(text)
    ]


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _tag_field(tp: Any) -> str | None:
    """The tag key of a tagged union of structs (``type`` for sources), else None."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    fields = {m.__struct_config__.tag_field for m in typing.get_args(tp) if _is_struct(m)}
    return next(iter(fields)) if len(fields) == 1 else None


def _tags(tp: Any) -> list[str]:
    return [str(m.__struct_config__.tag) for m in typing.get_args(tp) if _is_struct(m)]


def _member(tp: Any, value: Any) -> Any:
    """The member of a union type that ``value`` was checked against (the struct its tag
    names, struct or dict for a mapping, list for a sequence); ``tp`` itself when it is no
    union or no member fits."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return tp
    tag = _tag_field(tp)
    if tag is not None:
        chosen = value.get(tag) if isinstance(value, dict) else None
        members = typing.get_args(tp)
        return next((m for m in members if m.__struct_config__.tag == chosen), tp)
    for member in typing.get_args(tp):
        origin = typing.get_origin(member) or member
        if isinstance(value, list) and origin is list:
            return member
        if isinstance(value, dict) and (origin is dict or _is_struct(origin)):
            return member
    return tp


def _converts(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(value, tp, dec_hook=dec_hook)
    except msgspec.ValidationError:
        return False
    return True


def _resolve(parts: list[str | int | None], data: Any) -> tuple[PathKey, Any, Any]:
    """Walk msgspec's error path through the data and the types: the path with every unnamed
    dict key found (the first entry whose value does not convert: msgspec stops at the first
    error), the type expected at its end and the value given there."""
    tp: Any = Config
    value: Any = data
    path: list[str | int] = []
    for part in parts:
        if isinstance(part, str) and part == _tag_field(tp):  # an unknown source type
            path.append(part)
            value = value.get(part) if isinstance(value, dict) else None
            tp = Literal[tuple(_tags(tp))]
            continue
        tp = _member(tp, value)
        args = typing.get_args(tp)
        if part is None:
            item = args[1] if typing.get_origin(tp) is dict and len(args) == 2 else Any
            items = value.items() if isinstance(value, dict) else ()
            key = next((k for k, v in items if not _converts(v, item)), None)
            if key is None:
                break
            path.append(key)
            value, tp = value[key], item
        elif isinstance(part, int):
            path.append(part)
            value = value[part] if isinstance(value, list) and part < len(value) else None
            tp = args[0] if typing.get_origin(tp) is list and args else Any
        else:
            path.append(part)
            value = value.get(part) if isinstance(value, dict) else None
            fields = msgspec.structs.fields(tp) if _is_struct(tp) else ()
            tp = next((f.type for f in fields if f.name == part), Any)
    return tuple(path), _member(tp, value), value


def _schema_error(message: str, data: Any, lines: dict[PathKey, int], name: str) -> str:
    """msgspec's message, rephrased: the real key path (dict keys named), the valid values of
    an enum, HOST:PORT for a bare port."""
    what, sep, at = message.rpartition(" - at `")
    if not sep:
        return f"{name}:1: top level: {message}"
    if at.startswith("key` in `"):  # a dict key of the wrong type, e.g. a workshop named 1
        path, _, value = _resolve(_parse_msgspec_path(at.split("`")[2]), data)
        keys = value if isinstance(value, dict) else {}
        key = next((k for k in keys if not isinstance(k, str)), None)
        line = _line_for((*path, key) if isinstance(key, int) else path, lines)
        what = (
            f"the name {key!r} is not text (YAML reads unquoted numbers and yes/no/on/off as "
            "values): write it in quotes"
        )
        return f"{name}:{line}: {key_path(path)}: {what}"
    path, tp, value = _resolve(_parse_msgspec_path(at.rstrip("`")), data)
    if what.startswith("Object contains unknown field"):
        field = what.split("`")[1] if "`" in what else "?"
        what = _unknown_key(field, path, tp)
        path = (*path, field)
    elif what.startswith("Object missing required field `type`") and _tag_field(tp):
        what = f"give its 'type': one of {', '.join(_tags(tp))}"
    elif what.startswith(("Invalid enum value", "Invalid value")) and (
        typing.get_origin(tp) is Literal
    ):
        choices = ", ".join(str(v) for v in typing.get_args(tp))
        what = f"{value!r} is not valid; expected one of {choices}"
    elif path and path[-1] in ("listen", "tls_listen") and type(value) is int:
        what = bare_port(value)
    return _where(name, path, what, lines)


def _unknown_key(field: str, path: PathKey, tp: Any) -> str:
    """What a struct at ``path`` takes instead of ``field``; a source says its type's keys."""
    if not _is_struct(tp):
        return f"unknown key {field!r}; check its spelling against {REFERENCE}"
    keys = ", ".join(f for f in tp.__struct_fields__ if tp is not Config or f not in LOADER_KEYS)
    tag = tp.__struct_config__.tag
    if isinstance(tag, str):
        return f"unknown key {field!r}: a {tag} source takes only {keys} (see {REFERENCE})"
    where = key_path(path) if path else "the top level"
    return f"unknown key {field!r}; check its spelling: {where} takes {keys} (see {REFERENCE})"


def _where(name: str, path: PathKey, what: str, lines: dict[PathKey, int]) -> str:
    """``FILE:LINE: key.path: what`` - the one shape of every config error and warning."""
    return f"{name}:{_line_for(path, lines)}: {key_path(path)}: {what}"


def _line_for(path: PathKey, lines: dict[PathKey, int]) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def load_config(path: str | Path) -> Config:
    """Read, validate and cross-check a configuration file, or raise :class:`ConfigError`.

    What looks wrong without stopping a node (a template field no record carries) is in the
    returned config's ``warnings``, each phrased like an error."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the configuration file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: the configuration file is not UTF-8 text") from exc
    return parse_config(text, str(file))


def parse_config(text: str, name: str = "<config>") -> Config:
    """:func:`load_config` of text; ``name`` stands for the file in messages."""
    lines: dict[PathKey, int] = {}
    try:
        loader = _LineLoader(text)
        try:
            node = loader.get_single_node()
            data = {} if node is None else _construct_with_lines(loader, node, (), lines)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(f"{name}:{line}: not valid YAML: {exc.problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{name}:1: expected a mapping of sections (node:, bus:, sources:, ...)")
    for reserved in LOADER_KEYS:
        if reserved in data:
            raise ConfigError(_where(name, (reserved,), _unknown_key(reserved, (), Config), lines))
    data["path"] = name
    try:
        config = msgspec.convert(data, Config, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(_schema_error(str(exc), data, lines, name)) from exc
    problems = check_config(config)
    if problems:
        raise ConfigError(_where(name, *problems[0], lines))
    warnings = tuple(_where(name, path, what, lines) for path, what in field_warnings(config))
    return msgspec.structs.replace(config, warnings=warnings) if warnings else config
