"""The query tree as Query DSL: whatever a person typed is only ever a value.

No clause that OpenSearch would parse as a language of its own (query_string, scripts, regular
expressions, wildcards) is ever produced, and every text of the tree reaches the DSL whole, as a
value. What the clauses find is the contract suite's business (tests/contract/)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logfactory.errors import QueryError
from logfactory.store.engines.opensearch.compile import compile_query, sort_field
from logfactory.store.query.tree import (
    And,
    Exists,
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

FORBIDDEN = {"query_string", "simple_query_string", "script", "script_score", "regexp",
             "wildcard", "query_string_query", "intervals"}  # fmt: skip
FIELDS = st.sampled_from(["message", "host", "severity", "fields.user", "fields.a.b"])
TEXT = st.text(min_size=1, max_size=30)


def _leaves() -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(Word, TEXT, FIELDS),
        st.builds(Phrase, TEXT, FIELDS),
        st.builds(Prefix, TEXT, FIELDS),
        st.builds(Term, FIELDS.filter(lambda f: f != "message"), TEXT),
        st.builds(Exists, FIELDS),
        st.builds(Range, st.just("fields.n"), st.integers(), st.floats(allow_nan=False)),
    )


TREES = st.recursive(
    _leaves(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(inner, min_size=1, max_size=3).map(lambda c: Or(tuple(c))),
        inner.map(Not),
    ),
    max_leaves=8,
)


def _keys_and_values(dsl: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(dsl, dict):
        for key, value in dsl.items():
            yield key, value
            yield from _keys_and_values(value)
    elif isinstance(dsl, list):
        for item in dsl:
            yield from _keys_and_values(item)


def _texts(node: Node) -> Iterator[str]:
    if isinstance(node, And | Or):
        for child in node.children:
            yield from _texts(child)
    elif isinstance(node, Not):
        yield from _texts(node.child)
    elif isinstance(node, Word | Phrase | Prefix):
        yield node.text
    elif isinstance(node, Term):
        yield node.value


@given(TREES)
def test_no_query_language_and_every_text_a_whole_value(where: Node) -> None:
    dsl = compile_query(Query(where, start=1, end=2))
    pairs = list(_keys_and_values(dsl))
    assert not FORBIDDEN & {key for key, _ in pairs}
    values = {value for _, value in pairs if isinstance(value, str)}
    for text in _texts(where):
        # as written, or lower-cased for a one-word prefix on the analysed message; a text
        # with no word in it matches nothing and reaches no clause
        assert text in values or text.lower() in values or not any(c.isalnum() for c in text)


def test_top_and_distinct_take_keyword_columns_and_decoded_fields_only() -> None:
    assert sort_field("host") == "host"
    assert sort_field("fields.user") == "f.user"
    for field in ("id", "origin", "message", "time", "fields."):
        with pytest.raises(QueryError, match="no values to count"):
            sort_field(field)


def test_a_range_on_a_text_column_is_refused() -> None:
    with pytest.raises(QueryError, match="ranges apply to numbers and times"):
        compile_query(Query(Range("host", lower=1)))
