"""Every way a query can be wrong: the error names the right column (1-based, counted over the
whole text) and says, in words a person can act on, what was expected there."""

from __future__ import annotations

import pytest

from logfactory.errors import QueryError
from logfactory.store.query.parser import MAX_CLAUSES, MAX_DEPTH, MAX_TEXT, parse_where

NOW = 1_796_558_400_000_000_000  # 2026-12-06T12:00:00Z

ERRORS: list[tuple[str, int, str]] = [
    # a field without a value: the column is where the value should be
    ("host:", 6, "expected a value after 'host:'"),
    ("severity:error host:", 21, "expected a value after 'host:'"),
    ("severity:error host:   ", 21, "expected a value after 'host:'"),
    ("host: )", 7, "unbalanced parenthesis: this ')' closes no '('"),
    ("(host:)", 7, "expected a value after 'host:'"),
    ("user:=x", 6, "expected a value after 'user:'"),
    ("host:(a OR b)", 6, "a field takes one value: write (host:a OR host:b)"),
    # a column shown with each record but never searched: named where its name begins
    ("origin:logs.parsed/0/7", 1, "origin (where the store read a record) is shown"),
    ("host:a AND origin:*", 12, "cannot be searched: search by id"),
    # parentheses: the column of the parenthesis at fault
    ("(a OR b", 1, "unbalanced parenthesis: this '(' is never closed"),
    ("a (b (c)", 3, "unbalanced parenthesis: this '(' is never closed"),
    ("a OR b)", 7, "unbalanced parenthesis: this ')' closes no '('"),
    ('"(" a)', 6, "this ')' closes no '('"),
    ("()", 2, "expected a search term before ')'"),
    ("a AND ()", 8, "expected a search term before ')'"),
    # quotes and the minus
    ('"failed password', 1, "this quote is never closed"),
    ('a "b\\" c', 3, "this quote is never closed"),
    ('host:"cn', 6, "this quote is never closed"),
    ("a - b", 3, "write '-' right before what to leave out"),
    ("a -", 3, "write '-' right before what to leave out"),
    # operators with nothing on a side
    ("AND a", 1, "'AND' needs a search term on each side"),
    ("a OR OR b", 6, "'OR' needs a search term on each side"),
    ("a AND", 6, "expected a search term after 'AND'"),
    ("a NOT", 6, "expected a search term after 'NOT'"),
    ("(a OR)", 6, "expected a search term before ')'"),
    # ranges and comparisons cut short or malformed
    ("port:[1 TO", 11, "expected a number, a time or * after 'TO'"),
    ("port:[1 2]", 9, "expected TO between the bounds of a range"),
    ("port:[1 TO 2", 13, "expected ']' or '}' to close the range"),
    ("port:[1 TO 2 3]", 14, "expected ']' or '}' to close the range"),
    ("port:>=", 8, "expected a number, a time or * after 'port:>='"),
    ("port:>*", 7, "expected a number or a time after '>', not '*'"),
    ("port:>abc", 7, "expected a number for port, not 'abc'"),
    ("port:[1 TO x]", 12, "expected a number for port, not 'x'"),
    ("port:>=nan", 8, "expected a number for port"),
    ("port:>1e999", 7, "the number 1e999 is larger than a field can hold"),
    ("port:>99999999999999999999", 7, "larger than a field can hold (64 bits)"),
    ("port:[5 TO 1]", 6, "the range [5 TO 1] is reversed"),
    ("time:[now TO -1h]", 6, "the range [now TO -1h] is reversed"),
    # ranges where they cannot apply
    (
        "host:>3",
        6,
        "ranges apply to numbers and times; host is matched whole or by prefix: host:cn0*",
    ),
    ("severity:[a TO b]", 10, "severity is matched whole or by prefix: severity:warn*"),
    ("message:>3", 9, "ranges apply to numbers and times; message is text"),
    ("time:5", 6, "time is matched by a range: time:>=-1h"),
    ('received:"x"', 10, "received is matched by a range"),
    ("a time:>-15x", 9, "unknown time '-15x': write -15m, -2h, -7d, now or 2026-12-06T10:00:00Z"),
    ("time:[2026-13-01 TO now]", 7, "unknown time '2026-13-01'"),
    ("time:>9999-01-01", 7, "outside what the store keeps"),
    # wildcards that are not a prefix; text with no word
    ("*foo", 1, "a '*' may only end a value (pass*)"),
    ("a fo*o", 3, "a '*' may only end a value"),
    ("a**", 1, "a '*' may only end a value"),
    ("host:*cn", 6, "a '*' may only end a value (host:cn*)"),
    ("x ->", 4, "'>' has no letter or digit"),
    ('"..."', 1, "'...' has no letter or digit"),
    ("...*", 1, "has no letter or digit"),
    ("fields.:x", 1, "write the decoded field's name after 'fields.'"),
    # the column counts every character of a text over several lines
    ("a\n(b", 3, "this '(' is never closed"),
]


@pytest.mark.parametrize(("text", "column", "words"), ERRORS, ids=[e[0] for e in ERRORS])
def test_each_error_names_its_column_and_what_to_write(text: str, column: int, words: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_where(text, now_ns=NOW)
    message = str(caught.value)
    assert caught.value.column == column, message
    assert message.startswith(f"column {column}: "), message
    assert words in message


def test_no_error_speaks_the_grammar_s_names() -> None:
    """lark's terminal names (VALUE, _RPAR, $END) never reach a person."""
    for text, _column, _words in ERRORS:
        with pytest.raises(QueryError) as caught:
            parse_where(text, now_ns=NOW)
        message = str(caught.value)
        for name in ("VALUE", "BOUND", "_RPAR", "_LPAR", "$END", "QUOTED", "FIELD", "Token("):
            assert name not in message, (text, message)


def test_the_text_may_be_4096_characters_and_no_more() -> None:
    longest = "a " * (MAX_TEXT // 2 - 1) + "bb"
    assert len(longest) == MAX_TEXT
    with pytest.raises(QueryError) as caught:  # too many clauses, but not too long
        parse_where(longest, now_ns=NOW)
    assert "clauses" in str(caught.value)
    with pytest.raises(QueryError) as caught:
        parse_where("a" * (MAX_TEXT + 1), now_ns=NOW)
    assert caught.value.column == MAX_TEXT + 1
    assert "4,097 characters long; at most 4,096" in str(caught.value)


def test_256_clauses_pass_and_the_257th_is_named() -> None:
    words = [f"w{i}" for i in range(MAX_CLAUSES)]
    assert len(parse_where(" ".join(words), now_ns=NOW).children) == MAX_CLAUSES  # type: ignore[union-attr]
    text = " OR ".join([*words, "extra"])
    with pytest.raises(QueryError) as caught:
        parse_where(text, now_ns=NOW)
    assert caught.value.column == text.index("extra") + 1
    assert f"more than {MAX_CLAUSES} clauses" in str(caught.value)


@pytest.mark.parametrize(
    ("opening", "closing", "levels"),
    [("(", ")", 1), ("NOT ", "", 1), ("-", "", 1), ("NOT (", ")", 2)],
)
def test_nesting_32_deep_passes_and_33_is_refused(opening: str, closing: str, levels: int) -> None:
    repeat = MAX_DEPTH // levels
    parse_where(opening * repeat + "a" + closing * repeat, now_ns=NOW)
    deeper = opening * (repeat + 1) + "a" + closing * (repeat + 1)
    with pytest.raises(QueryError) as caught:
        parse_where(deeper, now_ns=NOW)
    # the 33rd level opens at the start of the repetition after the first 32 levels
    assert caught.value.column == len(opening) * repeat + 1
    assert f"nests parentheses and NOTs {MAX_DEPTH + 1} deep here; at most {MAX_DEPTH}" in str(
        caught.value
    )


def test_a_thousand_nots_are_refused_without_recursing() -> None:
    with pytest.raises(QueryError, match="deep here"):
        parse_where("NOT " * 1000 + "a", now_ns=NOW)
    with pytest.raises(QueryError, match="deep here"):
        parse_where("(" * 2000 + "a" + ")" * 2000, now_ns=NOW)
