"""The ``{name}`` placeholders of a template, as the factory renders them.

The factory (:class:`logfactory.factory.matching.Template`) takes a template's names from here,
so the configuration's warnings and the renderer never disagree on what a template asks for.
"""

from __future__ import annotations

import string
from typing import Any

__all__ = ["template_names"]

_FORMATTER = string.Formatter()


def _names(template: Any, out: set[str]) -> None:
    if isinstance(template, str):
        try:
            parsed = list(_FORMATTER.parse(template))
        except ValueError:  # an unbalanced brace: the text is meant literally
            return
        out.update(name.split(".", 1)[0] for _, name, _, _ in parsed if name is not None)
    elif isinstance(template, dict):
        for value in template.values():
            _names(value, out)
    elif isinstance(template, list | tuple):
        for value in template:
            _names(value, out)


def template_names(template: Any) -> frozenset[str]:
    """The top-level value names a template (text, or dicts and lists of text) refers to:
    ``"{user.name} from {addr}"`` -> ``{"user", "addr"}``."""
    out: set[str] = set()
    _names(template, out)
    return frozenset(out)
