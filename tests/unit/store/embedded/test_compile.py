"""Compiling the tree: user text is only ever a value (regex metacharacters are literal),
ranges on decoded fields take every kind of number, words are cut as tantivy cuts them."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers.store_data import SAMPLE_START_NS
from tests.helpers.store_oracle import expected_ids
from tests.helpers.store_oracle import words as oracle_words

from logfactory.store.document import StoredDoc
from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter
from logfactory.store.engines.embedded.text import regex_literal, words
from logfactory.store.query.tree import Node, Prefix, Query, Range, Term, Word

HOSTS = ["a.b*(x", "axb*(x", "a.b", "[x]+?", "ü.ß|z", "back\\slash", "dollar$^"]
VALUES = [-1e300, -7, -5.5, -0.25, 0, 0.25, 1, 22, 22.5, 2**53 + 1, 2**63 + 5, 1e300]


def _kind(value: float) -> str:
    if isinstance(value, float):
        return "f64"
    return "u64" if value >= 2**63 else "i64"


@pytest.fixture(scope="module")
def odd_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmbeddedReader, list[StoredDoc]]:
    docs = [
        StoredDoc(
            id=f"d{i:02d}",
            kind="log",
            time=SAMPLE_START_NS + i,
            received=SAMPLE_START_NS,
            host=HOSTS[i % len(HOSTS)],
            source="s",
            message=f"m{i} .*+? (a|b) [c]",
            fields={"v": VALUES[i % len(VALUES)], "t": HOSTS[i % len(HOSTS)]},
        )
        for i in range(len(HOSTS) * len(VALUES))
    ]
    root = tmp_path_factory.mktemp("odd") / "store"
    writer = EmbeddedWriter(root, max_age_s=1e9, max_size=0)
    # one commit (a segment) per kind of number: tantivy reads a range per segment column,
    # and a segment of integers only behaves differently from a mixed one
    grouped = sorted(docs, key=lambda d: ("i64", "u64", "f64").index(_kind(d.fields["v"])))
    for kind in ("i64", "u64", "f64"):  # offsets rise, as a bus partition's do
        writer.add(
            [(("t", 0, i), d) for i, d in enumerate(grouped) if _kind(d.fields["v"]) == kind]
        )
        writer.commit()
    writer.close()
    return EmbeddedReader(root), docs


def _check(store: tuple[EmbeddedReader, list[StoredDoc]], node: Node) -> list[str]:
    reader, docs = store
    want = expected_ids(Query(node), docs)
    assert [d.id for d in reader.search(Query(node), 1000).hits] == want, node
    return want


@pytest.mark.parametrize("host", HOSTS)
def test_metacharacters_in_a_prefix_are_literal(
    odd_store: tuple[EmbeddedReader, list[StoredDoc]], host: str
) -> None:
    for cut in range(1, len(host) + 1):
        assert _check(odd_store, Prefix(host[:cut], "host"))
        assert _check(odd_store, Prefix(host[:cut], "fields.t"))


@pytest.mark.parametrize("low", [None, *VALUES])
def test_ranges_on_decoded_numbers(
    odd_store: tuple[EmbeddedReader, list[StoredDoc]], low: float | None
) -> None:
    for high in (None, -5.5, 0, 22, 1e300):
        for include in (True, False):
            _check(odd_store, Range("fields.v", low, high, include, include))


def test_metacharacters_in_words_are_literal(
    odd_store: tuple[EmbeddedReader, list[StoredDoc]],
) -> None:
    assert _check(odd_store, Word(".*+? (a|b)")) != []
    assert _check(odd_store, Prefix("(a|")) != []
    assert _check(odd_store, Term("host", "[x]+?")) != []


@pytest.mark.parametrize(
    "text",
    [
        "Failed password",
        "10.3.17.5",
        "",
        "...",
        "x" * 39 + " " + "y" * 40,
        "ǅemal ÉCOLE",
        "tab\tnew\nline",
        "日本語テキスト",
        "a_b-c",
        "½ ²",
    ],
)
def test_words_agree_with_the_oracle(text: str) -> None:
    assert words(text) == oracle_words(text)


def test_regex_literal_escapes_all_but_plain_characters() -> None:
    assert regex_literal("ab_9") == "ab_9"
    assert regex_literal("a.b") == "a\\x{2e}b"
    assert regex_literal("ü") == "\\x{fc}"


def test_a_day_directory_path_is_made(tmp_path: Path) -> None:
    writer = EmbeddedWriter(tmp_path / "deep" / "store", max_age_s=1e9, max_size=0)
    writer.close()
    assert (tmp_path / "deep" / "store" / "writer.lock").exists()
