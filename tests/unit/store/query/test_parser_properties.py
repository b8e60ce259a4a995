"""Properties of the parser over generated input: no text makes it raise anything but a
QueryError with a column inside the text; every tree it can make renders to a text that parses
back to that tree; and the canonical text of any query is a fixed point."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from logfactory.errors import QueryError
from logfactory.store.document import COLUMNS, KEYWORD_COLUMNS, SEVERITY_ALIASES, SHOWN_ONLY
from logfactory.store.query.parser import parse_where
from logfactory.store.query.render import to_text
from logfactory.store.query.timerange import MAX_NS, MIN_NS
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
    Term,
    Word,
)

NOW = 1_796_558_400_000_000_000  # 2026-12-06T12:00:00Z

PIECES = [
    "a", "b7", "AND", "OR", "NOT", "and", "TO", "(", ")", '"', "\\", ":", "host:", "user:",
    "time:", "port:", "*", "-", "[", "]", "{", "}", ">=", "<", ">", "=", "5", "-15m", "now",
    "2026-12-06", "é", "10.3.17", " ", " ", "\n", "\t", "severity:", "fields.", "message:",
]  # fmt: skip
query_like = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)


def _parse_or_error(text: str) -> Node | None:
    try:
        return parse_where(text, now_ns=NOW)
    except QueryError as error:
        refused = error
    column = refused.column
    assert column is not None
    assert 1 <= column <= len(text) + 1, (text, str(refused))
    assert str(refused).startswith(f"column {column}: ")
    return None


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_a_query_error_with_a_column(text: str) -> None:
    _parse_or_error(text)


@given(query_like)
def test_query_like_text_parses_or_raises_a_query_error_with_a_column(text: str) -> None:
    _parse_or_error(text)


@given(query_like)
def test_the_canonical_text_of_any_query_is_a_fixed_point(text: str) -> None:
    tree = _parse_or_error(text)
    if tree is not None:
        canonical = to_text(tree)
        assert parse_where(canonical, now_ns=NOW) == tree, canonical
        assert to_text(parse_where(canonical, now_ns=NOW)) == canonical


# -- trees the parser can make ------------------------------------------------------------
WORDY = string.ascii_letters + string.digits + "é"
word_text = st.from_regex(r"[A-Za-z0-9é][A-Za-z0-9é_.\-/:@]{0,12}", fullmatch=True)
any_text = st.text(min_size=0, max_size=20)
wordy_text = st.tuples(any_text, st.sampled_from(WORDY), any_text).map("".join)
value_text = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-/:]{0,12}", fullmatch=True)
decoded = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,10}", fullmatch=True).filter(
    lambda name: name not in COLUMNS and not name.startswith("fields.")
) | st.sampled_from(sorted(COLUMNS))
decoded_field = decoded.map(lambda name: "fields." + name)
keyword = st.sampled_from(sorted(KEYWORD_COLUMNS - {"severity"} - SHOWN_ONLY))
severity = st.sampled_from(sorted({*SEVERITY_ALIASES.values(), "low", "high", "critical"}))
number = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
times = st.integers(MIN_NS, MAX_NS)


@st.composite
def ranges(draw: st.DrawFn) -> Range:
    field = draw(st.sampled_from(["time", "received"]) | decoded_field)
    bound = times if field in ("time", "received") else number
    lower, upper = draw(st.one_of(st.none(), bound)), draw(st.one_of(st.none(), bound))
    if lower is None and upper is None:
        lower = draw(bound)
    if lower is not None and upper is not None and lower > upper:
        lower, upper = upper, lower
    return Range(
        field,
        lower,
        upper,
        include_lower=lower is None or draw(st.booleans()),
        include_upper=upper is None or draw(st.booleans()),
    )


leaves: st.SearchStrategy[Node] = st.one_of(
    word_text.map(Word),
    wordy_text.map(Phrase),
    word_text.map(Prefix),
    st.builds(Term, keyword | decoded_field, any_text),
    st.builds(Term, st.just("severity"), severity),
    st.builds(Prefix, value_text, keyword | decoded_field),
    st.builds(Exists, keyword | decoded_field | st.sampled_from(["message", "time"])),
    ranges(),
)


def _and(children: list[Node]) -> Node:
    flat = [
        c for child in children for c in (child.children if isinstance(child, And) else [child])
    ]
    return And(tuple(flat))


def _or(children: list[Node]) -> Node:
    flat = [c for child in children for c in (child.children if isinstance(child, Or) else [child])]
    return Or(tuple(flat))


trees = st.recursive(
    leaves | st.just(Not(MatchAll())),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=4).map(_and),
        st.lists(inner, min_size=2, max_size=4).map(_or),
        inner.map(Not),
    ),
    max_leaves=16,
)


@given(trees | st.just(MatchAll()))
def test_every_tree_the_parser_makes_round_trips_through_its_text(tree: Node) -> None:
    text = to_text(tree)
    assert parse_where(text, now_ns=NOW) == tree, text
