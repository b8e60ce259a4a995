"""The query tree (:mod:`logfactory.store.query.tree`) as OpenSearch Query DSL.

Same meaning as on the embedded engine (the tree's docstring): free text is matched against
``message`` as analysed at indexing (the ``lf_words`` analyzer, tantivy's tokenizer), so a
word with punctuation becomes the phrase of its words without this module splitting anything;
keyword columns and decoded fields are matched whole. User text only ever becomes a *value*
in the returned dicts, never part of a query string OpenSearch would parse.

Columns map to the index so (see :mod:`.mapping`): a keyword column to itself, ``message`` to
the analysed text, ``fields.NAME`` to ``f.NAME`` (text form) and ``n.NAME`` (numbers).
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from logfactory.errors import QueryError
from logfactory.store.document import (
    FIELD_PREFIX,
    KEYWORD_COLUMNS,
    SHOWN_ONLY,
    TIME_COLUMNS,
    not_searchable,
)
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

__all__ = ["COUNTABLE", "compile_node", "compile_query", "sort_field", "text_field"]

Dsl = dict[str, Any]

MATCH_NONE: Final[Dsl] = {"match_none": {}}
PHRASE_EXPANSIONS: Final = 10_000
"""How many words a phrase's last, prefixed word may stand for (``10.3.17*``)."""

_WORDS = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    """Python's reading of the analyzer's split: enough to tell one word from several."""
    return _WORDS.findall(text)


def text_field(field: str) -> str:
    """The keyword field that holds ``field``'s whole value (``fields.user`` -> ``f.user``)."""
    if field in KEYWORD_COLUMNS:
        return field
    if field.startswith(FIELD_PREFIX) and len(field) > len(FIELD_PREFIX):
        return "f." + field[len(FIELD_PREFIX) :]
    raise QueryError(f"{field} is not a column that holds whole values")


COUNTABLE: Final = KEYWORD_COLUMNS - {"id", "origin"}
"""Columns top values and distinct counts take (as on the embedded engine): ids are unique,
so counting them tells nothing a count does not."""


def sort_field(field: str) -> str:
    """The keyword an aggregation reads for ``field``; QueryError for one it cannot count."""
    if field in COUNTABLE or (field.startswith(FIELD_PREFIX) and len(field) > len(FIELD_PREFIX)):
        return text_field(field)
    raise QueryError(
        f"{field!r} has no values to count: top and distinct take a keyword column "
        f"({', '.join(sorted(COUNTABLE))}) or a decoded field (fields.NAME)"
    )


def _number_field(field: str) -> str | None:
    if field.startswith(FIELD_PREFIX) and len(field) > len(FIELD_PREFIX):
        return "n." + field[len(FIELD_PREFIX) :]
    return None


def _as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _message_text(text: str, exact: bool) -> Dsl:
    if not _words(text):
        return dict(MATCH_NONE)
    del exact  # a word and a phrase alike: the phrase of the words the analyzer finds
    return {"match_phrase": {"message": {"query": text}}}


def _message_prefix(text: str) -> Dsl:
    words = _words(text)
    if not words:
        return dict(MATCH_NONE)
    if not text[-1].isalnum():
        # ``10.3.17.*``: the punctuation closes the last word, so every word is whole.
        return {"match_phrase": {"message": {"query": text}}}
    if len(words) == 1 and text == words[0]:
        return {"prefix": {"message": {"value": text.lower()}}}
    return {
        "match_phrase_prefix": {"message": {"query": text, "max_expansions": PHRASE_EXPANSIONS}}
    }


def _term(field: str, value: str) -> Dsl:
    if field == "message":
        return _message_text(value, exact=True)
    if field in TIME_COLUMNS:
        number = _as_number(value)
        if number is None or number != int(number):
            raise QueryError(f"{field} holds times; {value!r} is not one")
        return {"term": {field: int(number)}}
    clause: Dsl = {"term": {text_field(field): value}}
    numeric = _number_field(field)
    number = _as_number(value) if numeric else None
    if numeric is None or number is None:
        return clause
    return {"bool": {"should": [clause, {"term": {numeric: number}}], "minimum_should_match": 1}}


def _range(node: Range) -> Dsl:
    if node.field in TIME_COLUMNS:
        target = node.field
    else:
        numeric = _number_field(node.field)
        if numeric is None:
            raise QueryError(f"{node.field} holds text; ranges apply to numbers and times")
        target = numeric
    bounds: Dsl = {}
    if node.lower is not None:
        bounds["gte" if node.include_lower else "gt"] = node.lower
    if node.upper is not None:
        bounds["lte" if node.include_upper else "lt"] = node.upper
    if not bounds:
        return {"exists": {"field": target}}
    return {"range": {target: bounds}}


def _exists(field: str) -> Dsl:
    if field == "message":
        # "Has a word": an empty prefix matches any indexed word; a message of punctuation
        # only has none (``exists`` would count it).
        return {"prefix": {"message": {"value": ""}}}
    if field in TIME_COLUMNS:
        return {"exists": {"field": field}}
    return {"exists": {"field": text_field(field)}}


def _decoded_prefix(name: str, text: str) -> Dsl:
    """A prefix of a decoded field's *text* leaves only (``user:al*`` never finds the number
    22 by its digits): ``f.NAME`` where the document's NAME holds texts only, ``s.NAME`` (its
    texts apart) where it also holds numbers or booleans (``nontext`` names those)."""
    only_texts = {
        "bool": {
            "filter": [{"prefix": {f"f.{name}": {"value": text}}}],
            "must_not": [{"term": {"nontext": name}}],
        }
    }
    mixed = {"prefix": {f"s.{name}": {"value": text}}}
    return {"bool": {"should": [only_texts, mixed], "minimum_should_match": 1}}


def compile_node(node: Node) -> Dsl:
    """One tree node as a Query DSL clause."""
    if getattr(node, "field", None) in SHOWN_ONLY:
        raise QueryError(not_searchable(str(getattr(node, "field", ""))))
    match node:
        case MatchAll():
            return {"match_all": {}}
        case Word(text=text, field=field) | Phrase(text=text, field=field):
            if field == "message":
                return _message_text(text, exact=isinstance(node, Phrase))
            return _term(field, text)
        case Prefix(text=text, field=field):
            if field == "message":
                return _message_prefix(text)
            target = text_field(field)
            if target.startswith("f."):
                return _decoded_prefix(target[2:], text)
            return {"prefix": {target: {"value": text}}}
        case Term(field=field, value=value):
            return _term(field, value)
        case Range():
            return _range(node)
        case Exists(field=field):
            return _exists(field)
        case And(children=children):
            return {"bool": {"filter": [compile_node(c) for c in children]}}
        case Or(children=children):
            return {
                "bool": {"should": [compile_node(c) for c in children], "minimum_should_match": 1}
            }
        case Not(child=child):
            return {"bool": {"must_not": [compile_node(child)]}}
    raise QueryError(f"cannot search for {node!r}")


def compile_query(query: Query) -> Dsl:
    """The whole query with its window (``start`` inclusive, ``end`` exclusive) on ``time``.

    Everything is a filter: results are ordered by time, never scored."""
    filters = [compile_node(query.where)]
    window: Dsl = {}
    if query.start is not None:
        window["gte"] = query.start
    if query.end is not None:
        window["lt"] = query.end
    if window:
        filters.append({"range": {"time": window}})
    return {"bool": {"filter": filters}}
