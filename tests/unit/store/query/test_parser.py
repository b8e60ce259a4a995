"""The query language, construct by construct: the tree each one makes, the precedence of
AND/OR/NOT, and the canonical text each tree renders to (which must parse back to it)."""

from __future__ import annotations

import pytest

from logfactory.errors import QueryError
from logfactory.store.query.parser import parse_query, parse_where
from logfactory.store.query.render import to_text
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

NOW = 1_796_558_400_000_000_000  # 2026-12-06T12:00:00Z
MINUTE = 60_000_000_000
DAY = 1440 * MINUTE
DEC6 = NOW - 12 * 60 * MINUTE  # 2026-12-06T00:00:00Z


def w(text: str) -> Word:
    return Word(text)


CASES: list[tuple[str, Node]] = [
    # free text
    ("", MatchAll()),
    ("   ", MatchAll()),
    ("*", MatchAll()),
    ("failed", w("failed")),
    ("Failed", w("Failed")),
    ("10.3.17.5", w("10.3.17.5")),
    ("/var/log/messages", w("/var/log/messages")),
    ("job_1234", w("job_1234")),
    ("10:00:00", w("10:00:00")),
    ("zürich", w("zürich")),
    ("a-b", w("a-b")),
    ('"failed password"', Phrase("failed password")),
    (r'"say \"hi\""', Phrase('say "hi"')),
    (r'"back\\slash"', Phrase("back\\slash")),
    (r'"keep \n as is"', Phrase("keep \\n as is")),
    ("pass*", Prefix("pass")),
    ("job_12*", Prefix("job_12")),
    ("10.3.17.*", Prefix("10.3.17.")),
    # lower-case operators are words; operators inside words are words
    ("and", w("and")),
    ("ANDROID", w("ANDROID")),
    ("NOTE ORACLE", And((w("NOTE"), w("ORACLE")))),
    # fields
    ("host:cn0042", Term("host", "cn0042")),
    ('host:"cn 42"', Term("host", "cn 42")),
    ('host:"cn*"', Term("host", "cn*")),
    ('host:""', Term("host", "")),
    ("host:cn0*", Prefix("cn0", "host")),
    ("host:*", Exists("host")),
    ("host: cn0042", Term("host", "cn0042")),
    ("host:AND", Term("host", "AND")),
    ("id:logs.raw/3/1187", Term("id", "logs.raw/3/1187")),
    ("user:alice", Term("fields.user", "alice")),
    ("job.id:12", Term("fields.job.id", "12")),
    ("fields.user:alice", Term("fields.user", "alice")),
    ("fields.host:cn01", Term("fields.host", "cn01")),
    ("x-y:1", Term("fields.x-y", "1")),
    ("port:-1", Term("fields.port", "-1")),
    ("url:http://x/y", Term("fields.url", "http://x/y")),
    ("user:*", Exists("fields.user")),
    ("user:al*", Prefix("al", "fields.user")),
    ("severity:ERR", Term("severity", "error")),
    ("severity:warn", Term("severity", "warning")),
    ('severity:"Fatal"', Term("severity", "crit")),
    ("severity:WARN*", Prefix("warn", "severity")),
    ("message:failed", w("failed")),
    ('message:"failed password"', Phrase("failed password")),
    ("message:pass*", Prefix("pass")),
    ("message:AND", w("AND")),
    ("message:*", Exists("message")),
    ("time:*", Exists("time")),
    # comparisons and ranges
    ("port:>=10", Range("fields.port", lower=10)),
    ("port:>10", Range("fields.port", lower=10, include_lower=False)),
    ("port:<=10", Range("fields.port", upper=10)),
    ("port:<10", Range("fields.port", upper=10, include_upper=False)),
    ("port:> 10", Range("fields.port", lower=10, include_lower=False)),
    ("ratio:>=0.5", Range("fields.ratio", lower=0.5)),
    ("ratio:<1e3", Range("fields.ratio", upper=1000.0, include_upper=False)),
    ("delta:>=-5", Range("fields.delta", lower=-5)),
    ("port:[10 TO 20]", Range("fields.port", 10, 20)),
    ("port:{10 TO 20}", Range("fields.port", 10, 20, False, False)),
    ("port:[10 TO 20}", Range("fields.port", 10, 20, True, False)),
    ("port:{10 TO 20]", Range("fields.port", 10, 20, False, True)),
    ("port:[10 TO *]", Range("fields.port", lower=10)),
    ("port:{10 TO *}", Range("fields.port", lower=10, include_lower=False)),
    ("port:[* TO 20}", Range("fields.port", upper=20, include_upper=False)),
    ("port:{* TO *}", Exists("fields.port")),
    ("port:[5 TO 5]", Range("fields.port", 5, 5)),
    ("time:>=-15m", Range("time", lower=NOW - 15 * MINUTE)),
    ("time:<now", Range("time", upper=NOW, include_upper=False)),
    ("received:>2026-12-06", Range("received", lower=DEC6, include_lower=False)),
    ("time:[2026-12-06 TO now]", Range("time", DEC6, NOW)),
    ("time:[-1d TO -12h}", Range("time", NOW - DAY, NOW - 720 * MINUTE, True, False)),
    (
        "time:>=2026-12-06T11:00:00.5+01:00",
        Range("time", lower=DEC6 + 10 * 60 * MINUTE + 500_000_000),
    ),
]


@pytest.mark.parametrize(("text", "tree"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_each_construct_makes_its_tree_and_renders_back(text: str, tree: Node) -> None:
    assert parse_where(text, now_ns=NOW) == tree
    assert parse_where(to_text(tree), now_ns=NOW) == tree


A, B, C, D = w("a"), w("b"), w("c"), w("d")

PRECEDENCE: list[tuple[str, Node]] = [
    ("a b", And((A, B))),
    ("a AND b", And((A, B))),
    ("a OR b", Or((A, B))),
    ("a b OR c", Or((And((A, B)), C))),
    ("a OR b c", Or((A, And((B, C))))),
    ("a OR b AND c OR d", Or((A, And((B, C)), D))),
    ("NOT a b", And((Not(A), B))),
    ("NOT a OR b", Or((Not(A), B))),
    ("a OR NOT b", Or((A, Not(B)))),
    ("NOT (a OR b)", Not(Or((A, B)))),
    ("NOT NOT a", Not(Not(A))),
    ("-a", Not(A)),
    ("a -b", And((A, Not(B)))),
    ("a -b OR c", Or((And((A, Not(B))), C))),
    ("-(a b)", Not(And((A, B)))),
    ("--a", Not(Not(A))),
    ('-"a b"', Not(Phrase("a b"))),
    ("-host:x", Not(Term("host", "x"))),
    ("(a OR b) c", And((Or((A, B)), C))),
    ("(a OR b) AND (c OR d)", And((Or((A, B)), Or((C, D))))),
    # nested groups flatten
    ("(a b) c", And((A, B, C))),
    ("a (b (c d))", And((A, B, C, D))),
    ("(a OR b) OR (c OR d)", Or((A, B, C, D))),
    ("((a))", A),
    ("a AND(b)", And((A, B))),
    ("NOT(a)", Not(A)),
    # '*' inside And is dropped; an Or holding '*' is everything
    ("* a", A),
    ("a OR *", MatchAll()),
    ("NOT *", Not(MatchAll())),
    ("a\nOR\tb", Or((A, B))),
]


@pytest.mark.parametrize(("text", "tree"), PRECEDENCE, ids=[c[0] for c in PRECEDENCE])
def test_not_binds_tighter_than_and_and_and_than_or(text: str, tree: Node) -> None:
    assert parse_where(text, now_ns=NOW) == tree
    assert parse_where(to_text(tree), now_ns=NOW) == tree


RENDERED: list[tuple[str, str]] = [
    ("host:cn01 severity:ERR", "host:cn01 AND severity:error"),
    ("a b OR c", "a AND b OR c"),
    ("(a OR b) c", "(a OR b) AND c"),
    ("-(a OR b)", "NOT (a OR b)"),
    ("-a", "NOT a"),
    ("fields.user:x fields.host:y", "user:x AND fields.host:y"),
    ('user:"a b" user:"x\\"y"', 'user:"a b" AND user:"x\\"y"'),
    ("port:[1 TO *]", "port:>=1"),
    ("port:{* TO 2}", "port:<2"),
    ("time:>=2026-12-06", "time:>=2026-12-06T00:00:00.000000000Z"),
    ("message:-x", "message:-x"),
    ("message:AND", "message:AND"),
    ("message:a:b", "message:a:b"),
]


@pytest.mark.parametrize(("text", "canonical"), RENDERED, ids=[c[0] for c in RENDERED])
def test_to_text_writes_the_canonical_form(text: str, canonical: str) -> None:
    assert to_text(parse_where(text, now_ns=NOW)) == canonical


def test_parse_query_makes_the_window_and_keeps_the_text() -> None:
    text = "host:cn01  sshd"
    query = parse_query(text, now_ns=NOW, since="-15m", until="now")
    assert query == Query(
        where=And((Term("host", "cn01"), w("sshd"))), start=NOW - 15 * MINUTE, end=NOW, text=text
    )
    assert parse_query("", now_ns=NOW) == Query(MatchAll(), None, None, "")
    assert parse_query("a", now_ns=NOW, since="2026-12-06").start == DEC6


@pytest.mark.parametrize(
    ("since", "until", "words"),
    [
        ("-15x", None, "since: unknown time '-15x': write -15m, -2h, -7d, now"),
        (None, "tomorrow", "until: unknown time 'tomorrow'"),
        ("now", "-1h", "since (now) is not before until (-1h)"),
        ("-1h", "-1h", "is not before until"),
    ],
)
def test_a_bad_window_says_which_side(since: str | None, until: str | None, words: str) -> None:
    with pytest.raises(QueryError, match=r"^") as caught:
        parse_query("a", now_ns=NOW, since=since, until=until)
    assert words in str(caught.value)
    assert caught.value.column is None
