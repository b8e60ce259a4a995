"""The query language -> the typed tree (:mod:`.tree`), with errors a person can act on.

The grammar below is parsed by lark (LALR, contextual lexer): the lexer only looks for the tokens
the parser can take at each point, which is what lets a value after ``host:`` hold ``:`` and
``-`` (``time:>=2026-12-06T10:00:00Z``, ``port:-1``) while the same characters start a field or
a negation in free text. The syntax, in short (docs/search.md is the reference):

- ``word``, ``"a phrase"`` (``\\"`` and ``\\\\`` escape inside quotes), ``prefix*``, ``*``;
- ``field:value``, ``field:"quoted value"``, ``field:val*``, ``field:*``, ``field:>=10``
  (``> >= < <=``), ``field:[10 TO 20]`` (``[ ]`` inclusive, ``{ }`` exclusive, ``*`` open);
- ``AND``, ``OR``, ``NOT`` (upper case), ``-clause``, parentheses; adjacent clauses are ANDed;
  NOT binds tighter than AND, AND tighter than OR.

What the tree holds (:mod:`.building` makes it): nested And/Or flattened; ``*`` inside an And
dropped, an Or holding ``*`` is ``*``; ``NOT x`` is a bare :class:`~.tree.Not` wherever it
stands and means "everything but x" (engines add the "everything"). Limits: a query of at most
:data:`MAX_TEXT` characters, :data:`MAX_DEPTH` levels of parentheses and NOTs, :data:`MAX_CLAUSES`
clauses. Every error is a :class:`~logfactory.errors.QueryError` whose message begins
``column N:`` (1-based, counted over the whole text) and whose ``column`` is N.
"""

from __future__ import annotations

from typing import Final

from lark import Lark
from lark.exceptions import UnexpectedInput

from logfactory.errors import QueryError
from logfactory.store.query.building import MAX_CLAUSES, MAX_DEPTH, build, check_limits
from logfactory.store.query.syntax_errors import explain
from logfactory.store.query.timerange import parse_time_bound
from logfactory.store.query.tree import Node, Query

__all__ = ["GRAMMAR", "MAX_CLAUSES", "MAX_DEPTH", "MAX_TEXT", "parse_query", "parse_where"]

MAX_TEXT: Final = 4096

GRAMMAR: Final = r"""
start: _expr?

_expr: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: unary (_AND? unary)*
?unary: _NOT unary -> negation
      | _MINUS unary -> negation
      | _LPAR _expr _RPAR -> group
      | TEXT -> text
      | QUOTED -> phrase
      | FIELD fvalue -> field

fvalue: VALUE -> value
      | QUOTED -> quoted
      | CMP BOUND -> compare
      | LBOUND BOUND _TO BOUND RBOUND -> range

_LPAR: "("
_RPAR: ")"
_AND: "AND"
_OR: "OR"
_NOT: "NOT"
_TO: "TO"
_MINUS: /-(?=[^\s])/
FIELD: /[A-Za-z_][A-Za-z0-9_.\-]*:/
TEXT: /(?![A-Za-z_][A-Za-z0-9_.\-]*:)(?!(?:AND|OR|NOT)(?![^\s()"]))[^\s()"\-][^\s()"]*/
QUOTED: /"(?:[^"\\]|\\[\s\S])*"/
VALUE: /[^\s()"\[\]{}<>=][^\s()"]*/
CMP: />=|<=|>|</
BOUND: /[^\s()"\[\]{}]+/
LBOUND: /[\[{]/
RBOUND: /[\]}]/

%ignore /\s+/
"""

_LARK: Final = Lark(GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True)


def parse_where(text: str, *, now_ns: int) -> Node:
    """The tree of ``text`` alone (no window); ``now_ns`` anchors relative times in it."""
    if len(text) > MAX_TEXT:
        raise QueryError(
            f"column {MAX_TEXT + 1}: the query is {len(text):,} characters long;"
            f" at most {MAX_TEXT:,}",
            MAX_TEXT + 1,
        )
    try:
        tree = _LARK.parse(text)
    except UnexpectedInput as error:
        raise explain(error, text) from None
    check_limits(tree)
    return build(tree, now_ns)


def parse_query(
    text: str, *, now_ns: int, since: str | None = None, until: str | None = None
) -> Query:
    """A whole query: ``text`` parsed, ``since``/``until`` (time expressions,
    :func:`~.timerange.parse_time_bound`) as the window's inclusive start and exclusive end.

    Raises :class:`QueryError`: for the text, with its column; for ``since``/``until``, with
    the message naming which one and no column."""
    where = parse_where(text, now_ns=now_ns)
    start = _bound("since", since, now_ns)
    end = _bound("until", until, now_ns)
    if start is not None and end is not None and start >= end:
        raise QueryError(f"since ({since}) is not before until ({until}): the window is empty")
    return Query(where=where, start=start, end=end, text=text)


def _bound(name: str, text: str | None, now_ns: int) -> int | None:
    if text is None:
        return None
    try:
        return parse_time_bound(text, now_ns)
    except QueryError as error:
        raise QueryError(f"{name}: {error}") from None
