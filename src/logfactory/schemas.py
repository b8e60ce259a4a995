"""JSON Schemas (draft 2020-12) of the event envelope, one per event type.

The built-in types' schemas are shipped as package data (``logfactory/schemas/<TYPE>.json``):
they are the published contract, and the files are what ``logfactory schema TYPE`` prints. A
site type from ``event_types:`` gets a schema generated from the same envelope with its
``required`` body fields; a site may also list a built-in type there to require more body fields.

:func:`validate` is a small checker for exactly the keywords these schemas use (``type``,
``const``, ``enum``, ``required``, ``properties``, ``additionalProperties``, ``pattern``,
``minLength``, ``minimum``), so the runtime needs no JSON Schema library; the tests check that it
agrees with the ``jsonschema`` package on valid and invalid envelopes.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from importlib import resources
from typing import Any

from logfactory.config import Config, EventTypeConfig
from logfactory.event import BUILTIN_TYPES

__all__ = ["known_types", "schema_for", "validate"]


@cache
def _builtin(event_type: str) -> dict[str, Any]:
    text = (
        resources.files("logfactory").joinpath("schemas").joinpath(f"{event_type}.json").read_text()
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def _site_type(event_type: str, config: Config | None) -> EventTypeConfig | None:
    if config is None:
        return None
    for declared in config.event_types:
        if declared.name == event_type:
            return declared
    return None


def known_types(config: Config | None = None) -> list[str]:
    """Built-in types in their canonical order, then the site's types in config order."""
    names = list(BUILTIN_TYPES)
    if config is not None:
        names += [t.name for t in config.event_types if t.name not in names]
    return names


def schema_for(event_type: str, config: Config | None = None) -> dict[str, Any]:
    """The schema of ``event_type``'s envelope (a fresh copy the caller may change).

    Raises :class:`ValueError` for a type that is neither built in nor in ``config.event_types``.
    """
    site = _site_type(event_type, config)
    if event_type in BUILTIN_TYPES:
        schema = copy.deepcopy(_builtin(event_type))
    elif site is not None:
        schema = copy.deepcopy(_builtin("USER_OP"))  # the envelope; the body is replaced below
        schema["$id"] = f"urn:logfactory:event:{event_type}"
        schema["title"] = f"{event_type} event envelope"
        schema["description"] = site.description or f"Site-defined event type {event_type}."
        schema["properties"]["header"]["properties"]["type"] = {"const": event_type}
        body = schema["properties"]["body"]
        body["properties"] = {}
        body["required"] = []
    else:
        raise ValueError(
            f"unknown event type {event_type!r}; known: {', '.join(known_types(config))}"
        )
    if site is not None and site.required:
        body = schema["properties"]["body"]
        body["required"] = list(dict.fromkeys([*body["required"], *site.required]))
    if schema["properties"]["body"]["required"] and "body" not in schema["required"]:
        schema["required"].append("body")
    return schema


def validate(envelope: Any, config: Config | None = None) -> list[str]:
    """Problems that make ``envelope`` break its type's schema; an empty list means valid.

    The type is read from ``header.type``; an envelope without a known type gets one error.
    """
    header = envelope.get("header") if isinstance(envelope, dict) else None
    event_type = header.get("type") if isinstance(header, dict) else None
    if not isinstance(event_type, str):
        return ["header.type: missing; every envelope names its type"]
    try:
        schema = _cached_schema(event_type, config)
    except ValueError as exc:
        return [f"header.type: {exc}"]
    errors: list[str] = []
    _check(envelope, schema, "", errors)
    return errors


def _cached_schema(event_type: str, config: Config | None) -> dict[str, Any]:
    if config is None or not config.event_types:
        return _plain_schema(event_type)
    return schema_for(event_type, config)


@cache
def _plain_schema(event_type: str) -> dict[str, Any]:
    return schema_for(event_type)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list, tuple),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is(value: Any, json_type: str) -> bool:
    if isinstance(value, bool) and json_type in ("integer", "number"):
        return False  # JSON Schema keeps true/false apart from numbers; Python does not
    if json_type == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES[json_type])


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _check(value: Any, schema: dict[str, Any], where: str, errors: list[str]) -> None:
    at = where or "envelope"
    if "const" in schema and value != schema["const"]:
        errors.append(f"{at}: must be {schema['const']!r}, not {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{at}: {value!r} is not one of {schema['enum']}")
    wanted = schema.get("type")
    if wanted is not None:
        types = [wanted] if isinstance(wanted, str) else wanted
        if not any(_is(value, t) for t in types):
            errors.append(f"{at}: expected {' or '.join(types)}, got {type(value).__name__}")
            return
    if isinstance(value, str):
        _check_string(value, schema, at, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        minimum = schema.get("minimum")
        if minimum is not None and value < minimum:
            errors.append(f"{at}: {value!r} is below the minimum {minimum}")
    elif isinstance(value, dict):
        _check_object(value, schema, where, errors)


def _check_string(value: str, schema: dict[str, Any], at: str, errors: list[str]) -> None:
    if len(value) < schema.get("minLength", 0):
        errors.append(f"{at}: must not be empty")
    pattern = schema.get("pattern")
    if pattern is not None and _regex(pattern).search(value) is None:
        errors.append(f"{at}: {value!r} does not match {pattern}")


def _check_object(
    value: dict[str, Any], schema: dict[str, Any], where: str, errors: list[str]
) -> None:
    prefix = f"{where}." if where else ""
    for name in schema.get("required", ()):
        if name not in value:
            errors.append(f"{prefix}{name}: required but missing")
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        sub = properties.get(name)
        if sub is not None:
            _check(item, sub, f"{prefix}{name}", errors)
        elif extra is False:
            errors.append(f"{prefix}{name}: not allowed here")
        elif isinstance(extra, dict):
            _check(item, extra, f"{prefix}{name}", errors)
