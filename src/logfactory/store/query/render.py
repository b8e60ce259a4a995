"""A query tree -> its canonical text, which parses back to the same tree.

The CLI and the console show a query normalised (``host:cn01 AND severity:error`` for
``host:cn01 severity:ERR``), and the round-trip test relies on :func:`to_text` inverting the
parser: ``parse_where(to_text(t)) == t`` for every tree the parser makes (flat And/Or, no ``*``
inside them, open range sides with their ``include_*`` True, severity values normalised).

Writing: AND and OR explicit, parentheses only where precedence needs them (an Or inside an
And, an And or Or under a NOT); NOT written ``NOT``; decoded fields by their short name unless
it is a column's (``fields.host``); a value quoted only when it would not read back bare; time
bounds as RFC 3339 with nine fraction digits; ranges with one open side as comparisons.
"""

from __future__ import annotations

import re
from typing import Final

from logfactory.store.document import COLUMNS, FIELD_PREFIX, TIME_COLUMNS
from logfactory.store.query.timerange import format_time
from logfactory.store.query.tree import (
    And,
    Exists,
    MatchAll,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Range,
    RangeValue,
    Term,
    Word,
)

__all__ = ["to_text"]

_KEYWORDS: Final = frozenset({"AND", "OR", "NOT"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
# what the grammar's TEXT and VALUE tokens take whole (see parser.GRAMMAR)
_BARE_TEXT = re.compile(r"(?![A-Za-z_][A-Za-z0-9_.\-]*:)[^\s()\"\-*][^\s()\"*]*")
_BARE_VALUE = re.compile(r"[^\s()\"\[\]{}<>=*][^\s()\"*]*")


def to_text(node: Node) -> str:
    """The canonical query text of ``node``."""
    if isinstance(node, Or):
        return " OR ".join(_operand(child, Or) for child in node.children)
    if isinstance(node, And):
        return " AND ".join(_operand(child, And) for child in node.children)
    if isinstance(node, Not):
        return "NOT " + _operand(node.child, Not)
    return _leaf(node)


def _operand(node: Node, parent: type[Node]) -> str:
    text = to_text(node)
    # under NOT any And/Or needs them; AND binds tighter than OR, so only an Or in an And
    needs = isinstance(node, And | Or) if parent is Not else parent is And and isinstance(node, Or)
    return f"({text})" if needs else text


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _name(field: str) -> str:
    if field.startswith(FIELD_PREFIX):
        short = field[len(FIELD_PREFIX) :]
        if short not in COLUMNS and not short.startswith(FIELD_PREFIX) and _NAME.fullmatch(short):
            return short
    return field


def _leaf(node: Node) -> str:
    if isinstance(node, MatchAll):
        return "*"
    if isinstance(node, Word | Prefix) and node.field == "message":
        star = "*" if isinstance(node, Prefix) else ""
        if _BARE_TEXT.fullmatch(node.text) and node.text not in _KEYWORDS:
            return node.text + star
        return f"message:{_value(node.text)}{star}"
    if isinstance(node, Phrase) and node.field == "message":
        return _quote(node.text)
    if isinstance(node, Word | Phrase):
        return f"{_name(node.field)}:{_quote(node.text)}"
    if isinstance(node, Term):
        return f"{_name(node.field)}:{_value(node.value)}"
    if isinstance(node, Prefix):
        return f"{_name(node.field)}:{node.text}*"
    if isinstance(node, Exists):
        return f"{_name(node.field)}:*"
    if isinstance(node, Range):
        return f"{_name(node.field)}:{_range(node)}"
    raise TypeError(f"not a query node: {node!r}")  # pragma: no cover


def _value(text: str) -> str:
    return text if _BARE_VALUE.fullmatch(text) else _quote(text)


def _bound(node: Range, value: RangeValue | None) -> str:
    if value is None:
        return "*"
    if node.field in TIME_COLUMNS:
        return format_time(int(value))
    return repr(value)


def _range(node: Range) -> str:
    lower, upper = _bound(node, node.lower), _bound(node, node.upper)
    if node.upper is None and node.lower is not None:
        return (">=" if node.include_lower else ">") + lower
    if node.lower is None and node.upper is not None:
        return ("<=" if node.include_upper else "<") + upper
    opening = "[" if node.include_lower else "{"
    closing = "]" if node.include_upper else "}"
    return f"{opening}{lower} TO {upper}{closing}"
