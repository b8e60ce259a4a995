"""Property: for random query trees over the sample documents, the embedded engine's hits are
exactly the oracle's, in the same order (tests/helpers/store_oracle.py is the reference)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers.store_data import HOSTS, SAMPLE_START_NS, USERS, positions, sample_docs
from tests.helpers.store_oracle import expected_ids

from logfactory.store.document import StoredDoc
from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter
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

WORDS = [
    "failed",
    "password",
    "for",
    "from",
    "port",
    "ssh2",
    "accepted",
    "session",
    "opened",
    "user",
    "jobid",
    "launched",
    "error",
    "device",
    "var",
    "log",
    "messages",
    "killed",
    "process",
    "python3",
    "grüße",
    "zürich",
    "café",
    "日本語",
    "cron",
    "root",
    "status",
    "sent",
    "example",
    "org",
    "rejected",
    "token",
    "x" * 44,
    "Failed",
    "CAFÉ",
    *USERS,
]
TEXTS = [
    "failed password",
    "10.3.17.5",
    "10.2.16",
    "/var/log/messages",
    "JobId=1200",
    "job_1201",
    "session opened for user",
    "(python3)",
    "to=<root@example.org>",
    "status=sent",
    "GET /api/v1/items",
    "HTTP/1.1 200",
    "...",
    "a%20b",
    "déjà vu",
]
PREFIXES = [
    "pass",
    "fail",
    "10.3.",
    "10.3.17.",
    "/var/lo",
    "job_12",
    "jobid=11",
    "zhvor",
    "grü",
    "日",
    "sessi",
    "x" * 41,
    "http/1.",
]
KEYWORDS = {
    "host": [*HOSTS, "cn9999"],
    "source": ["sshd", "kernel", "CROND", "app.api", "postfix/smtpd", "SSHD"],
    "severity": ["info", "error", "warning", "high", "critical", ""],
    "kind": ["log", "event"],
    "type": ["ssh_bruteforce", "oom_kill", "disk_error"],
    "status": ["ok", "new"],
    "workshop": ["hpc", "web"],
    "pattern": ["p0001", "p0012", "p0030"],
}
FIELD_VALUES = {
    "user": USERS,
    "port": ["22", "443", "8080", "22.0", "x"],
    "ok": ["true", "false"],
    "ratio": ["0.5", "2", "-3.5", "1.25"],
    "job.id": ["1000", "1150", "1300"],
    "job.queue": ["batch", "gpu"],
    "req.path": ["/login", "/api/v1/items"],
    "note": ["Grüße", "10.3.17.5", "a b", ""],
    "addr": ["10.3.17.5", "10.0.15.1"],
}
NUMERIC = ["port", "ratio", "job.id", "user", "ok"]
SPAN = 3 * 86_400 * 10**9

numbers = st.one_of(
    st.integers(-5, 1400), st.sampled_from([-3.5, 0.5, 1.25, 2.0, 22.0, 443.5, 1e30, -1e30])
)
times = st.integers(SAMPLE_START_NS - 10**9, SAMPLE_START_NS + SPAN + 10**9)


def _keyword_leaf() -> st.SearchStrategy[Node]:
    field = st.sampled_from(sorted(KEYWORDS))
    return st.one_of(
        field.flatmap(lambda f: st.sampled_from(KEYWORDS[f]).map(lambda v: Term(f, v))),
        field.flatmap(
            lambda f: st.sampled_from([v for v in KEYWORDS[f] if v]).flatmap(
                lambda v: st.integers(1, len(v)).map(lambda n: Prefix(v[:n], f))
            )
        ),
        field.map(Exists),
    )


def _field_leaf() -> st.SearchStrategy[Node]:
    path = st.sampled_from(sorted(FIELD_VALUES))
    return st.one_of(
        path.flatmap(
            lambda p: st.sampled_from(FIELD_VALUES[p]).map(lambda v: Term(f"fields.{p}", v))
        ),
        path.flatmap(
            lambda p: st.sampled_from([v for v in FIELD_VALUES[p] if v]).flatmap(
                lambda v: st.integers(1, len(v)).map(lambda n: Prefix(v[:n], f"fields.{p}"))
            )
        ),
        st.builds(
            Range,
            st.sampled_from(NUMERIC).map(lambda p: f"fields.{p}"),
            st.none() | numbers,
            st.none() | numbers,
            st.booleans(),
            st.booleans(),
        ),
        path.map(lambda p: Exists(f"fields.{p}")),
        st.sampled_from(["fields.job", "fields.nope"]).map(Exists),
    )


leaves = st.one_of(
    st.just(MatchAll()),
    st.sampled_from(WORDS).map(Word),
    st.sampled_from(TEXTS).map(Word),
    st.sampled_from(TEXTS).map(Phrase),
    st.sampled_from(PREFIXES).map(Prefix),
    st.just(Exists("message")),
    _keyword_leaf(),
    _field_leaf(),
    st.builds(
        Range,
        st.sampled_from(["time", "received"]),
        st.none() | times,
        st.none() | times,
        st.booleans(),
        st.booleans(),
    ),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(inner, min_size=1, max_size=3).map(lambda c: Or(tuple(c))),
        inner.map(Not),
    ),
    max_leaves=6,
)
windows = st.tuples(st.none() | times, st.none() | times)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees, window=windows, size=st.sampled_from([3, 50, 5000]))
def test_search_equals_the_oracle(
    reader: EmbeddedReader,
    filled: tuple[Path, list[StoredDoc]],
    tree: Node,
    window: tuple[int | None, int | None],
    size: int,
) -> None:
    query = Query(tree, *window)
    want = expected_ids(query, filled[1])
    page = reader.search(query, size)
    assert [doc.id for doc in page.hits] == want[:size]
    assert page.total == len(want)
    assert reader.count(query) == len(want)


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 300),
    days=st.integers(1, 4),
    trees=st.lists(trees, min_size=1, max_size=8),
)
def test_random_stores_equal_the_oracle(
    tmp_path_factory: object, seed: int, n: int, days: int, trees: list[Node]
) -> None:
    root = tmp_path_factory.mktemp("random") / "store"  # type: ignore[attr-defined]
    docs = sample_docs(n, seed=seed, days=days)
    writer = EmbeddedWriter(root, max_age_s=1e9, max_size=0)
    writer.add(positions(docs))
    writer.close()
    reader = EmbeddedReader(root)
    for tree in trees:
        query = Query(tree)
        assert [doc.id for doc in reader.search(query, 1000).hits] == expected_ids(query, docs)
