"""The query tree -> tantivy query objects, built programmatically from the tree's values.

No user text is ever parsed as tantivy query syntax: words become term, phrase and regex
queries (a prefix's text escaped by :func:`.text.regex_literal`); keyword columns and decoded
fields become term queries of the value as written. The semantics are those of
:mod:`logfactory.store.query.tree`:

- ``message``: a value is cut into words as the index cut the message (:func:`.text.words`); one
  word is a term, several are a phrase at the same relative places (a dropped long word keeps
  its gap). A prefix is a regex on the last word (``pass*``) or a regex phrase (``/var/lo*``);
  a value ending in punctuation (``10.3.17.*``) keeps all its words whole.
- keyword columns: term (empty value: the column is empty), prefix as a regex on the whole
  value, exists as "has a value".
- decoded fields ``fields.NAME``: the text term, OR the number it spells (``port:22`` finds 22
  stored as a number and ``"22"`` as text), OR the boolean; prefix via ``field_text``.

One exception, allowed because no user text is involved: a numeric range on a decoded field
(tantivy-py's ``Query.range_query`` refuses JSON subpaths) is ``Index.parse_query`` of text
*generated* here from a field path checked against ``[A-Za-z0-9_]`` segments and a number
formatted by Python. Each side of a range is its own one-sided query (AND-ed): tantivy 0.27
panics on a two-sided JSON range whose bounds parse as different number types.
"""

from __future__ import annotations

import math
import re
from typing import Final

import tantivy

from logfactory.errors import QueryError
from logfactory.store.document import (
    FIELD_PREFIX,
    KEYWORD_COLUMNS,
    SHOWN_ONLY,
    TIME_COLUMNS,
    not_searchable,
)
from logfactory.store.engines.embedded.schema import (
    CHECKPOINT_KIND,
    FIELD_TEXT_SEP,
    SCHEMA,
    UNFAST_KEYWORDS,
)
from logfactory.store.engines.embedded.text import regex_literal, words
from logfactory.store.query.tree import (
    And,
    Exists,
    MatchAll,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    Range,
    RangeValue,
    Term,
    Word,
)

__all__ = ["compile_node", "compile_query", "time_range", "visible"]

Q = tantivy.Query
_MUST, _SHOULD, _MUST_NOT = tantivy.Occur.Must, tantivy.Occur.Should, tantivy.Occur.MustNot
_PATH = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_PARSER: Final = tantivy.Index(SCHEMA)  # in memory, only to build range queries on fields


def _all(*queries: tantivy.Query) -> tantivy.Query:
    if len(queries) == 1:
        return queries[0]
    return Q.boolean_query([(_MUST, q) for q in queries])


def _any(queries: list[tantivy.Query]) -> tantivy.Query:
    if not queries:
        return Q.empty_query()
    if len(queries) == 1:
        return queries[0]
    return Q.boolean_query([(_SHOULD, q) for q in queries])


def _not(query: tantivy.Query) -> tantivy.Query:
    return Q.boolean_query([(_MUST, Q.all_query()), (_MUST_NOT, query)])


def _number(text: str) -> int | float | None:
    """The number ``text`` spells (``22``, ``-3.5``, ``1e3``), or None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _message(node: Word | Phrase | Prefix) -> tantivy.Query:
    found = words(node.text)
    if not found:
        return Q.empty_query()  # punctuation only, or only words too long to be indexed
    base = found[0][0]
    placed = [(place - base, word) for place, word in found]
    begun = isinstance(node, Prefix) and node.text[-1:].isalnum()
    if not begun:
        if len(placed) == 1:
            return Q.term_query(SCHEMA, "message", placed[0][1])
        return Q.phrase_query(SCHEMA, "message", list[str | tuple[int, str]](placed))
    if len(placed) == 1:
        return Q.regex_query(SCHEMA, "message", regex_literal(placed[0][1]) + ".*")
    patterns: list[str | tuple[int, str]] = [
        (place, regex_literal(word) + (".*" if i == len(placed) - 1 else ""))
        for i, (place, word) in enumerate(placed)
    ]
    return Q.regex_phrase_query(SCHEMA, "message", patterns)


def _int_bounds(node: Range) -> tuple[int | None, int | None]:
    """Inclusive integer bounds of a range on an integer column (fractions rounded inward)."""
    lower = upper = None
    if node.lower is not None:
        low = math.ceil(node.lower)
        lower = low + 1 if (low == node.lower and not node.include_lower) else low
    if node.upper is not None:
        high = math.floor(node.upper)
        upper = high - 1 if (high == node.upper and not node.include_upper) else high
    return lower, upper


def time_range(field: str, lower: int | None, upper: int | None) -> tantivy.Query:
    """``lower <= field <= upper`` on an i64 column (``None``: open)."""
    if lower is None and upper is None:
        return Q.all_query()
    if lower is not None and upper is not None and lower > upper:
        return Q.empty_query()
    return Q.range_query(SCHEMA, field, tantivy.FieldType.Integer, lower, upper)


def _number_text(value: RangeValue) -> str:
    """A bound as tantivy's query grammar reads it: an integer, or a plain decimal (its grammar
    has no exponent with a sign)."""
    if isinstance(value, int) and _I64_MIN <= value < 2**64:  # i64 or u64: exact
        return str(value)
    number = float(value)
    if number.is_integer() and _I64_MIN <= number <= _I64_MAX:
        return str(int(number))
    text = f"{number:.20f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _generated(path: str, op: str, bound: RangeValue) -> tantivy.Query:
    """One side of a range, from a checked path and a formatted number (no user text)."""
    return _PARSER.parse_query(f"fields.{path}:{op}{_number_text(bound)}")


def _side(path: str, op: str, bound: RangeValue) -> tantivy.Query:
    """One side of a range on a decoded field.

    tantivy 0.27 mis-reads a bound outside the type of a segment's column (a negative bound on
    a column of unsigned integers, one beyond i64 on a column of integers: ``<-1e30`` matches
    every integer). So such a bound only ever judges values already known to lie on its side
    of the column's limit: a negative bound is AND-ed with ``<0`` (no unsigned value passes),
    and one beyond i64 with the i64 limit it lies beyond; the values on the near side of
    that limit are added whole when the side points towards them."""
    upward = op[0] == ">"
    if bound < 0:
        judged = _all(_generated(path, "<", 0), _signed(path, op, bound))
        return _any([_generated(path, ">=", 0), judged]) if upward else judged
    return _signed(path, op, bound)


def _signed(path: str, op: str, bound: RangeValue) -> tantivy.Query:
    if _I64_MIN <= bound <= _I64_MAX:
        return _generated(path, op, bound)
    upward = op[0] == ">"
    limit = _I64_MAX if bound > _I64_MAX else _I64_MIN
    beyond = ">=" if limit == _I64_MAX else "<="
    edge = _all(_generated(path, beyond, limit), _generated(path, op, bound))
    if upward == (limit == _I64_MAX):  # above the top, or below the bottom: only the edge
        return edge
    inside = "<=" if limit == _I64_MAX else ">="  # every i64, and what lies past the limit
    return _any([_generated(path, inside, limit), edge])


def _field_range(path: str, node: Range) -> tantivy.Query:
    if not _PATH.fullmatch(path):
        raise QueryError(f"a range needs a field name of letters, digits, _ and dots, not {path!r}")
    sides: list[tantivy.Query] = []
    for bound, op in ((node.lower, ">=" if node.include_lower else ">"),
                      (node.upper, "<=" if node.include_upper else "<")):  # fmt: skip
        if bound is None:
            continue
        if isinstance(bound, float) and not math.isfinite(bound):
            if (op[0] == ">") == (bound > 0):
                return Q.empty_query()  # above +inf or below -inf
            continue
        sides.append(_side(path, op, bound))
    if sides:
        return _all(*sides)
    # open both ways: any number (text and booleans are not in a range)
    return _any([_PARSER.parse_query(f"fields.{path}:{op}0") for op in (">=", "<")])


def _field_term(path: str, text: str) -> tantivy.Query:
    name = f"fields.{path}"
    options = [Q.term_query(SCHEMA, name, text)]
    number = _number(text)
    if number is not None:
        if isinstance(number, int) and not _I64_MIN <= number < 2**64:
            number = float(number)
        options.append(Q.term_query(SCHEMA, name, number))
    if text in ("true", "false"):
        options.append(Q.term_query(SCHEMA, name, text == "true"))
    return _any(options)


def _decoded(node: Node, path: str) -> tantivy.Query:
    if not path:
        raise QueryError("a decoded field needs a name after 'fields.'")
    if isinstance(node, Term):
        return _field_term(path, node.value)
    if isinstance(node, Word | Phrase):
        return _field_term(path, node.text)
    if isinstance(node, Prefix):
        literal = regex_literal(f"{path}{FIELD_TEXT_SEP}{node.text}")
        return Q.regex_query(SCHEMA, "field_text", literal + ".*")
    if isinstance(node, Range):
        return _field_range(path, node)
    return Q.exists_query(f"fields.{path}")


def _keyword(node: Node, field: str) -> tantivy.Query:
    if isinstance(node, Term | Word | Phrase):
        value = node.value if isinstance(node, Term) else node.text
        if not value:
            return _not(_keyword(Exists(field), field))
        return Q.term_query(SCHEMA, field, value)
    if isinstance(node, Prefix):
        return Q.regex_query(SCHEMA, field, regex_literal(node.text) + ".*")
    if isinstance(node, Exists):
        if field in UNFAST_KEYWORDS:
            return Q.regex_query(SCHEMA, field, ".+")
        return Q.exists_query(field)
    raise QueryError(f"{field} is text: a range (>, <, [a TO b]) needs a number or time field")


def _timed(node: Node, field: str) -> tantivy.Query:
    if isinstance(node, Range):
        return time_range(field, *_int_bounds(node))
    if isinstance(node, Exists | MatchAll):
        return Q.all_query()
    text = node.value if isinstance(node, Term) else getattr(node, "text", "")
    number = _number(text)
    if not isinstance(number, int):
        raise QueryError(f"{field} holds times: give a range such as {field}:>-15m")
    return time_range(field, number, number)


def compile_node(node: Node) -> tantivy.Query:
    """The tantivy query for ``node``; raises :class:`QueryError` for a field it cannot
    search that way (a range on text, a field that does not exist)."""
    if isinstance(node, MatchAll):
        return Q.all_query()
    if isinstance(node, And):
        return (
            _all(*(compile_node(child) for child in node.children))
            if node.children
            else (Q.all_query())
        )
    if isinstance(node, Or):
        return _any([compile_node(child) for child in node.children])
    if isinstance(node, Not):
        return _not(compile_node(node.child))
    field = node.field
    if field in SHOWN_ONLY:
        raise QueryError(not_searchable(field))
    if field == "message":
        if isinstance(node, Word | Phrase | Prefix):
            return _message(node)
        if isinstance(node, Term):
            return _message(Phrase(node.value))
        if isinstance(node, Exists):
            return Q.regex_query(SCHEMA, "message", ".+")
        raise QueryError("message is text: a range needs a number or time field")
    if field.startswith(FIELD_PREFIX):
        return _decoded(node, field[len(FIELD_PREFIX) :])
    if field in KEYWORD_COLUMNS:
        return _keyword(node, field)
    if field in TIME_COLUMNS:
        return _timed(node, field)
    raise QueryError(f"there is no field {field!r}; decoded fields are written fields.NAME")


def visible(query: tantivy.Query) -> tantivy.Query:
    """``query`` without the checkpoint documents (they never show in results or counts)."""
    hide = Q.term_query(SCHEMA, "kind", CHECKPOINT_KIND)
    return Q.boolean_query([(_MUST, query), (_MUST_NOT, hide)])


def compile_query(query: Query) -> tantivy.Query:
    """The whole query: its tree within its window (``start <= time < end``)."""
    where = compile_node(query.where)
    if query.start is None and query.end is None:
        return visible(where)
    end = None if query.end is None else query.end - 1
    return visible(_all(where, time_range("time", query.start, end)))
