"""The store's reference: a query tree evaluated by brute force over StoredDocs, in plain Python.

Every engine (tantivy, OpenSearch) is compared with this. It is written from the documented
semantics (:mod:`logfactory.store.query.tree`), not from either engine, and kept simple enough to
check by reading:

- ``message`` is split into words at every character that is not a letter or digit
  (``str.isalnum``) and lower-cased; a word of 40 bytes or more (UTF-8) is dropped but keeps its
  place. A Word or Phrase is the sequence of its own words at the same relative places; a value
  with no word left matches nothing. A Prefix is that sequence whose last word only has to
  *begin* so, unless the text ends in punctuation (``10.3.17.*``: the words are whole).
- Keyword columns: Term is equality, Prefix is ``startswith``, Exists is "not empty", all
  case-sensitive. Word and Phrase on a keyword column or a decoded field mean Term.
- Decoded fields (``fields.NAME``): the doc's fields flattened to dotted paths (``{"job":
  {"id": 1}}`` and ``{"job.id": 1}`` are both ``job.id``); a list is each of its elements. Term
  matches a text leaf equal to the value, a boolean leaf spelled ``true``/``false``, or a number
  leaf equal to the number the value spells. Prefix: a text leaf beginning so. Range: number
  leaves only (booleans are not numbers). Exists: any leaf at that path.
- ``time``/``received``: Range on the nanoseconds; Exists is always true.
- A query's window: ``start <= time < end``. Order: time descending, ties by id descending.
- Aggregations: a histogram counts the matches per ``interval`` from the window's start rounded
  down to a multiple of the interval (empty buckets included); top values count each doc once
  per distinct value, a decoded field's values written as text (``22`` and ``"22"`` are one
  value, booleans ``true``/``false``), most frequent first, ties by value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from logfactory.store.document import FIELD_PREFIX, KEYWORD_COLUMNS, StoredDoc
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
    Term,
    Word,
)

__all__ = [
    "expected_docs",
    "expected_histogram",
    "expected_ids",
    "expected_top",
    "field_leaves",
    "matches",
    "value_text",
    "words",
]

MAX_WORD_BYTES = 40


def words(text: str) -> list[tuple[int, str]]:
    """(place, word) of each kept word of ``text``."""
    out: list[tuple[int, str]] = []
    current: list[str] = []
    place = 0

    def flush() -> None:
        nonlocal place
        if current:
            word = "".join(current)
            if len(word.encode()) < MAX_WORD_BYTES:
                out.append((place, word.lower()))
            place += 1
            current.clear()

    for char in text:
        if char.isalnum():
            current.append(char)
        else:
            flush()
    flush()
    return out


def _flatten(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for inner in value:
            yield from _flatten(inner, path)
    elif value is not None:
        yield path, value


def field_leaves(doc: StoredDoc, name: str) -> list[Any]:
    """The values of decoded field ``name`` (without ``fields.``) in ``doc``."""
    return [value for path, value in _flatten(doc.fields, "") if path == name]


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _leaf_equals(leaf: Any, text: str) -> bool:
    if isinstance(leaf, str):
        return leaf == text
    if isinstance(leaf, bool):
        return text == ("true" if leaf else "false")
    number = _number(text)
    return _is_number(leaf) and number is not None and leaf == number


def _sequence_at(have: list[tuple[int, str]], want: list[tuple[int, str]], prefix: bool) -> bool:
    """Does ``want`` (relative places) occur in ``have``; the last word only begun if prefix."""
    if not want:
        return False
    at = dict(have)
    base = want[0][0]
    last = len(want) - 1
    for start, _word in have:
        for i, (place, word) in enumerate(want):
            got = at.get(start + place - base)
            if got is None or not (got.startswith(word) if prefix and i == last else got == word):
                break
        else:
            return True
    return False


def _text_matches(node: Word | Phrase | Prefix, doc: StoredDoc) -> bool:
    begun = isinstance(node, Prefix) and node.text[-1:].isalnum()
    return _sequence_at(words(doc.message), words(node.text), begun)


def _column(doc: StoredDoc, name: str) -> Any:
    return getattr(doc, name)


def _in_range(value: Any, node: Range) -> bool:
    if not _is_number(value):
        return False
    if node.lower is not None and (
        value < node.lower or (value == node.lower and not node.include_lower)
    ):
        return False
    return node.upper is None or not (
        value > node.upper or (value == node.upper and not node.include_upper)
    )


def _leaf_test(node: Node, doc: StoredDoc, field: str) -> bool:
    """A node on one named field (not ``message``)."""
    if field.startswith(FIELD_PREFIX):
        leaves = field_leaves(doc, field[len(FIELD_PREFIX) :])
        if isinstance(node, Term | Word | Phrase):
            text = node.value if isinstance(node, Term) else node.text
            return any(_leaf_equals(leaf, text) for leaf in leaves)
        if isinstance(node, Prefix):
            return any(isinstance(leaf, str) and leaf.startswith(node.text) for leaf in leaves)
        if isinstance(node, Range):
            return any(_in_range(leaf, node) for leaf in leaves)
        return bool(leaves)  # Exists
    value = _column(doc, field)
    if isinstance(value, int):  # time, received
        if isinstance(node, Range):
            return _in_range(value, node)
        if isinstance(node, Term):
            return bool(_number(node.value) == value)
        return isinstance(node, Exists)
    if isinstance(node, Term | Word | Phrase):
        return bool(value == (node.value if isinstance(node, Term) else node.text))
    if isinstance(node, Prefix):
        return bool(value.startswith(node.text))
    if isinstance(node, Exists):
        return bool(value != "")
    raise ValueError(f"a range on the text column {field!r}")


def matches(node: Node, doc: StoredDoc) -> bool:
    """Does ``doc`` match ``node`` (the semantics in the module docstring)."""
    if isinstance(node, MatchAll):
        return True
    if isinstance(node, And):
        return all(matches(child, doc) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, doc) for child in node.children)
    if isinstance(node, Not):
        return not matches(node.child, doc)
    field = node.field
    if field == "message":
        if isinstance(node, Word | Phrase | Prefix):
            return _text_matches(node, doc)
        if isinstance(node, Term):
            return _text_matches(Phrase(node.value), doc)
        if isinstance(node, Exists):
            return bool(words(doc.message))
        raise ValueError("a range on message")
    if (
        field not in KEYWORD_COLUMNS
        and not field.startswith(FIELD_PREFIX)
        and field
        not in (
            "time",
            "received",
        )
    ):
        raise ValueError(f"unknown column {field!r}")
    return _leaf_test(node, doc, field)


def _order(doc: StoredDoc) -> tuple[int, str]:
    return doc.time, doc.id


def expected_docs(query: Query, docs: list[StoredDoc]) -> list[StoredDoc]:
    """The docs ``query`` finds, newest first (time desc, id desc)."""
    found = [
        doc
        for doc in docs
        if (query.start is None or doc.time >= query.start)
        and (query.end is None or doc.time < query.end)
        and matches(query.where, doc)
    ]
    return sorted(found, key=_order, reverse=True)


def expected_ids(query: Query, docs: list[StoredDoc]) -> list[str]:
    """The ids of :func:`expected_docs`, in order."""
    return [doc.id for doc in expected_docs(query, docs)]


def value_text(value: Any) -> str:
    """A value as top values show it: text as is, numbers as JSON writes them (``2.0`` as
    ``2``), booleans ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def expected_top(
    query: Query, docs: list[StoredDoc], field: str
) -> tuple[list[tuple[str, int]], int]:
    """Every (value, count) of ``field`` among the matches, ranked, and how many matches lack
    it (a keyword column is missing when empty)."""
    counts: dict[str, int] = {}
    missing = 0
    for doc in expected_docs(query, docs):
        if field.startswith(FIELD_PREFIX):
            values = {value_text(v) for v in field_leaves(doc, field[len(FIELD_PREFIX) :])}
        else:
            values = {str(getattr(doc, field))} - {""}
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        missing += not values
    return sorted(counts.items(), key=lambda item: (-item[1], item[0])), missing


def expected_histogram(query: Query, docs: list[StoredDoc], interval: int) -> list[tuple[int, int]]:
    """(bucket start, count) over the query's window (which must have a start and an end)."""
    assert query.start is not None
    assert query.end is not None
    first = query.start - query.start % interval
    counts = dict.fromkeys(range(first, query.end, interval), 0)
    for doc in expected_docs(query, docs):
        counts[first + (doc.time - first) // interval * interval] += 1
    return sorted(counts.items())
