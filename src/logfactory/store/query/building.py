"""lark's parse tree -> the typed query tree: names resolved, values checked, And/Or flattened.

Rules (docs/search.md says them for users):

- A field name in :data:`~logfactory.store.document.COLUMNS` is that column; any other is a
  decoded field ``fields.NAME`` (``fields.NAME`` may also be written out, which is how a decoded
  field named like a column, ``fields.host``, is reached).
- ``message:`` is free text. Free text must hold a letter or digit: the message is indexed by
  its words only, so ``->`` alone could never match and is refused rather than finding nothing.
- Keyword columns and decoded fields: a value is a :class:`~.tree.Term`, ``val*`` a
  :class:`~.tree.Prefix`, ``*`` an :class:`~.tree.Exists`; quoted values are literal (a ``*``
  inside quotes is a star). ``severity`` values pass through
  :func:`~logfactory.store.document.normal_severity` (``ERR`` -> ``error``).
- Ranges and comparisons: on ``time``/``received`` the bounds are time expressions (UTC ns),
  on decoded fields numbers (an int fitting 64 bits, or a finite float); on a keyword column or
  ``message`` they are refused. A plain value on a time column is refused too (times are
  matched by ranges). An open side (``*``, or the far side of ``>=``) is ``None`` with its
  ``include_*`` flag True, so each range has one canonical tree.

The limits are checked on lark's tree before anything recursive runs, so the deepest query that
passes them is shallow enough for the recursion here and in the engines' compilers.
"""

from __future__ import annotations

import re
from typing import Final

from lark import Token, Tree

from logfactory.errors import QueryError
from logfactory.store.document import (
    COLUMNS,
    FIELD_PREFIX,
    KEYWORD_COLUMNS,
    SHOWN_ONLY,
    TIME_COLUMNS,
    normal_severity,
    not_searchable,
)
from logfactory.store.query.timerange import parse_time_bound
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

__all__ = ["MAX_CLAUSES", "MAX_DEPTH", "build", "check_limits", "column_name", "unquote"]

MAX_DEPTH: Final = 32
MAX_CLAUSES: Final = 256

_CLAUSES: Final = frozenset({"text", "phrase", "field"})
_NESTING: Final = frozenset({"group", "negation"})
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_INTEGER = re.compile(r"[-+]?\d+")
_ESCAPE = re.compile(r"\\([\"\\])")
_INT64 = (-(2**63), 2**63 - 1)
_EXAMPLES: Final = {
    "host": "cn0",
    "source": "ssh",
    "severity": "warn",
    "type": "auth",
    "id": "logs",
}


def _fail(where: int, message: str) -> QueryError:
    return QueryError(f"column {where}: {message}", where)


def _column(item: Tree[Token] | Token) -> int:
    if isinstance(item, Token):
        return (item.start_pos or 0) + 1
    return (item.meta.start_pos if not item.meta.empty else 0) + 1


def check_limits(tree: Tree[Token]) -> None:
    """Refuse a tree nested deeper than :data:`MAX_DEPTH` or with more than
    :data:`MAX_CLAUSES` clauses, walking it without recursion."""
    clauses = 0
    stack: list[tuple[Tree[Token], int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in _NESTING:
            depth += 1
            if depth > MAX_DEPTH:
                raise _fail(
                    _column(node),
                    f"the query nests parentheses and NOTs {MAX_DEPTH + 1} deep here;"
                    f" at most {MAX_DEPTH}",
                )
        if node.data in _CLAUSES:
            clauses += 1
            if clauses > MAX_CLAUSES:
                raise _fail(
                    _column(node),
                    f"the query has more than {MAX_CLAUSES} clauses; at most {MAX_CLAUSES}:"
                    " split it, or use a prefix (host:cn0*) instead of many values",
                )
            continue
        # reversed, so clauses are counted left to right and the column is the 257th's
        stack.extend((child, depth) for child in reversed(node.children) if isinstance(child, Tree))


def unquote(token: str) -> str:
    """A QUOTED token's text: the quotes off, ``\\"`` and ``\\\\`` unescaped."""
    return _ESCAPE.sub(r"\1", token[1:-1])


def column_name(name: str, where: int) -> str:
    """A field name as written -> the tree's column (``user`` -> ``fields.user``)."""
    if name.startswith(FIELD_PREFIX):
        if len(name) == len(FIELD_PREFIX):
            raise _fail(where, "write the decoded field's name after 'fields.' (fields.user)")
        return name
    if name in SHOWN_ONLY:
        raise _fail(where, not_searchable(name))
    return name if name in COLUMNS else FIELD_PREFIX + name


def build(tree: Tree[Token], now_ns: int) -> Node:
    """The typed tree of a parse tree that :func:`check_limits` accepted."""
    if not tree.children:
        return MatchAll()
    child = tree.children[0]
    return _node(child, now_ns) if isinstance(child, Tree) else MatchAll()


def _trees(tree: Tree[Token]) -> list[Tree[Token]]:
    return [child for child in tree.children if isinstance(child, Tree)]


def _token(tree: Tree[Token], index: int) -> Token:
    item = tree.children[index]
    if not isinstance(item, Token):  # pragma: no cover - the grammar puts tokens here
        raise TypeError(f"expected a token in {tree.data}")
    return item


def _node(tree: Tree[Token], now_ns: int) -> Node:
    kind = tree.data
    if kind == "or_expr":
        return _or([_node(child, now_ns) for child in _trees(tree)])
    if kind == "and_expr":
        return _and([_node(child, now_ns) for child in _trees(tree)])
    if kind == "negation":
        return Not(_node(_trees(tree)[0], now_ns))
    if kind == "group":
        return _node(_trees(tree)[0], now_ns)
    if kind == "text":
        token = _token(tree, 0)
        return _free_text(str(token), _column(token))
    if kind == "phrase":
        token = _token(tree, 0)
        return _words(Phrase(unquote(str(token))), _column(token))
    return _field(tree, now_ns)


def _and(children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, And) else (child,))
    kept: list[Node] = [child for child in flat if not isinstance(child, MatchAll)] or [MatchAll()]
    return kept[0] if len(kept) == 1 else And(tuple(kept))


def _or(children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, Or) else (child,))
    if any(isinstance(child, MatchAll) for child in flat):
        return MatchAll()
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def _words(node: Word | Phrase | Prefix, where: int) -> Node:
    if not any(char.isalnum() for char in node.text):
        raise _fail(
            where,
            f"{node.text!r} has no letter or digit: the message is searched by its words"
            " (letters and digits), so it could match nothing",
        )
    return node


def _star(value: str, where: int, example: str) -> None:
    if "*" in value.rstrip("*") or value.endswith("**"):
        raise _fail(
            where,
            f"a '*' may only end a value ({example}): a text inside a word is not indexed",
        )


def _free_text(text: str, where: int) -> Node:
    if text == "*":
        return MatchAll()
    _star(text, where, "pass*")
    if text.endswith("*"):
        return _words(Prefix(text[:-1]), where)
    return _words(Word(text), where)


def _field(tree: Tree[Token], now_ns: int) -> Node:
    name_token = _token(tree, 0)
    name = str(name_token)[:-1]
    column = column_name(name, _column(name_token))
    value = _trees(tree)[0]
    where = _column(value)
    if value.data in ("compare", "range"):
        return _range(column, name, value, now_ns)
    text = str(_token(value, 0))
    if value.data == "quoted":
        literal = unquote(text)
        if column == "message":
            return _words(Phrase(literal), where)
        _no_plain_time(column, name, where)
        return Term(column, _normal(column, literal))
    if text == "*":
        return Exists(column)
    if column == "message":
        return _free_text(text, where)
    _no_plain_time(column, name, where)
    _star(text, where, f"{name}:{text.replace('*', '')}*")
    if text.endswith("*"):
        prefix = text[:-1]
        return Prefix(prefix.lower() if column == "severity" else prefix, column)
    return Term(column, _normal(column, text))


def _normal(column: str, value: str) -> str:
    return normal_severity(value) if column == "severity" else value


def _no_plain_time(column: str, name: str, where: int) -> None:
    if column in TIME_COLUMNS:
        raise _fail(
            where,
            f"{name} is matched by a range: {name}:>=-1h or {name}:[2026-12-06 TO 2026-12-07]",
        )


def _range(column: str, name: str, value: Tree[Token], now_ns: int) -> Node:
    where = _column(value)
    if column in KEYWORD_COLUMNS or column == "message":
        how = (
            "search its words" if column == "message" else f"{name}:{_EXAMPLES.get(column, 'abc')}*"
        )
        kind = "text" if column == "message" else "matched whole or by prefix"
        raise _fail(where, f"ranges apply to numbers and times; {name} is {kind}: {how}")
    tokens = [item for item in value.children if isinstance(item, Token)]
    if value.data == "compare":
        op, bound = tokens
        if str(bound) == "*":
            raise _fail(_column(bound), f"expected a number or a time after '{op}', not '*'")
        number = _bound(column, name, bound, now_ns)
        if op.startswith(">"):
            return Range(column, lower=number, include_lower=op == ">=")
        return Range(column, upper=number, include_upper=op == "<=")
    opening, low, high, closing = tokens
    lower = None if str(low) == "*" else _bound(column, name, low, now_ns)
    upper = None if str(high) == "*" else _bound(column, name, high, now_ns)
    if lower is None and upper is None:
        return Exists(column)
    if lower is not None and upper is not None and lower > upper:
        raise _fail(where, f"the range [{low} TO {high}] is reversed: write the lower bound first")
    return Range(
        column,
        lower=lower,
        upper=upper,
        include_lower=lower is None or str(opening) == "[",
        include_upper=upper is None or str(closing) == "]",
    )


def _bound(column: str, name: str, token: Token, now_ns: int) -> RangeValue:
    text = str(token)
    where = _column(token)
    if column in TIME_COLUMNS:
        try:
            return parse_time_bound(text, now_ns)
        except QueryError as error:
            raise _fail(where, str(error)) from None
    if _INTEGER.fullmatch(text):
        number: RangeValue = int(text)
        if not _INT64[0] <= number <= _INT64[1]:
            raise _fail(where, f"the number {text} is larger than a field can hold (64 bits)")
        return number
    if _NUMBER.fullmatch(text):
        number = float(text)
        if number not in (float("inf"), float("-inf")):
            return number
        raise _fail(where, f"the number {text} is larger than a field can hold")
    raise _fail(where, f"expected a number for {name}, not {text!r}: ranges on fields are numeric")
