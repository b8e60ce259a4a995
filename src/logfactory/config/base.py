"""What every config section shares: the strict, frozen base struct and the shape of a problem.

A section's own cross-field checks are a ``problems()`` method beside its fields, yielding
``(key path relative to the section, what is wrong)``; :mod:`logfactory.config.checks` puts
the section's place in front and the loader turns the first into ``FILE:LINE: key: what``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import msgspec

__all__ = ["PathKey", "Problem", "Problems", "Section", "bare_port", "key_path"]

PathKey = tuple[str | int, ...]
Problem = tuple[PathKey, str]
Problems = Iterator[Problem]

_PLAIN_KEY = re.compile(r"[A-Za-z_][\w\-]*")


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A config section: immutable, every key named (an unknown key is an error)."""


def key_path(path: PathKey) -> str:
    """``("sources", 1, "listen")`` -> ``sources[1].listen``: names joined by dots, list items
    by index, dict keys that are not plain names quoted (``bus.kafka["bootstrap.servers"]``),
    so that every error names its key the way the file spells it."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out or "top level"


def bare_port(port: object) -> str:
    """The error for ``listen: 5514``: a port alone does not say which interface to take."""
    return (
        f"{port} is a port without a host; write it as HOST:PORT, e.g. 127.0.0.1:{port} "
        f"(this machine only) or 0.0.0.0:{port} (every interface)"
    )
