"""The pattern library: ids, announcements, lineage, changes, sharing and files."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from logfactory.factory.patterns.library import PatternLibrary, entry_key, pattern_id

T = 1_700_000_000_000_000_000
ROOT = "Failed password for root from 203.0.113.7 port 52144 ssh2"
ALICE = "Failed password for alice from 198.51.100.23 port 2201 ssh2"
BOB = "Failed password for bob from 192.0.2.9 port 4000 ssh2"
ROOT_TEMPLATE = "Failed password for root from <*> port <*> ssh2"
ALICE_TEMPLATE = "Failed password for alice from <*> port <*> ssh2"
# a word becomes a parameter once three different words were seen in its place
GENERAL = "Failed password for <*> from <*> port <*> ssh2"
LINES = [
    ROOT,
    ALICE,
    BOB,
    "Out of memory: Killed process 4242 (java) total-vm:1234567kB, anon-rss:1024kB",
    "Out of memory: Killed process 17 (python3) total-vm:99kB, anon-rss:12kB",
    "Out of memory: Killed process 18 (gcc) total-vm:12kB, anon-rss:4kB",
    "PacketResponder 1 for block blk_38865049064139660 terminating",
    "PacketResponder 2 for block blk_-6952295868487656571 terminating",
    "session opened for user root by (uid=0)",
]


def decode(data: bytes) -> dict[str, object]:
    value = msgspec.json.decode(data)
    assert isinstance(value, dict)
    return value


def test_ids_derive_from_workshop_and_template() -> None:
    lib = PatternLibrary()
    obs = lib.observe("syslog", ROOT, T)
    assert obs.template == ROOT_TEMPLATE
    assert obs.pattern_id == pattern_id("syslog", ROOT_TEMPLATE)
    assert obs.pattern_id.startswith("p-")
    assert len(obs.pattern_id) == 22
    assert lib.observe("other", ROOT, T).pattern_id != obs.pattern_id


def test_ids_are_stable_across_fresh_libraries() -> None:
    def final_ids() -> list[str]:
        lib = PatternLibrary()
        for line in LINES:
            lib.observe("syslog", line, T)
        return [lib.observe("syslog", line, T).pattern_id for line in LINES]

    first = final_ids()
    assert first == final_ids()
    assert first[0] == first[1] == first[2] == pattern_id("syslog", GENERAL)
    assert first[3] == first[4] == first[5]
    assert first[6] == first[7]
    assert len(set(first)) == 4


def test_new_exactly_once_per_template() -> None:
    lib = PatternLibrary()
    flags = [lib.observe("syslog", line, T + i).is_new for i, line in enumerate(LINES * 3)]
    # ROOT and ALICE create templates; BOB only generalises them (not new); likewise java,
    # python3 and gcc; the second PacketResponder fits the first's template
    assert flags[: len(LINES)] == [True, True, False, True, True, False, True, False, True]
    assert not any(flags[len(LINES) :])
    assert all(e.status == "new" for e in lib.entries())


def test_counts_and_times() -> None:
    lib = PatternLibrary()
    lib.observe("syslog", ROOT, T + 5)
    lib.observe("syslog", ROOT, T + 9)
    lib.observe("syslog", ROOT, T + 1)
    entry = lib.get(pattern_id("syslog", ROOT_TEMPLATE))
    assert entry is not None
    assert (entry.count, entry.first_seen, entry.last_seen) == (3, T + 5, T + 9)
    assert entry.example == ROOT


def test_generalisation_keeps_lineage_and_carries_the_status() -> None:
    lib = PatternLibrary()
    old = lib.observe("syslog", ROOT, T).pattern_id
    lib.set_status(old, "alert", reason="root login attempts", severity="high")
    alice = lib.observe("syslog", ALICE, T + 1).pattern_id
    obs = lib.observe("syslog", BOB, T + 1)
    assert obs.pattern_id == pattern_id("syslog", GENERAL) != old
    assert (obs.status, obs.reason, obs.severity, obs.is_new) == (
        "alert",
        "root login attempts",
        "high",
        False,
    )
    entry = lib.get(old)  # the old id follows the lineage
    assert entry is not None
    assert entry.id == obs.pattern_id
    assert entry.lineage == [old, alice]  # both specific templates fold into the general one
    assert entry.count == 3
    lib.set_status(old, "normal")  # reviewing by the old id reviews the general entry
    assert lib.observe("syslog", ROOT, T + 2).status == "normal"
    assert [e.id for e in lib.entries()] == [obs.pattern_id]


def test_changes_only_on_create_generalise_and_review() -> None:
    lib = PatternLibrary()
    lib.observe("syslog", ROOT, T)
    created = lib.drain_changes()
    assert [decode(c)["template"] for c in created] == [ROOT_TEMPLATE]
    for i in range(100):
        lib.observe("syslog", ROOT, T + i)
    assert lib.drain_changes() == []
    counted = lib.drain_changes(include_counts=True)
    assert [decode(c)["count"] for c in counted] == [101]
    assert lib.drain_changes(include_counts=True) == []  # nothing moved since

    lib.observe("syslog", ALICE, T + 200)
    alice_id = pattern_id("syslog", ALICE_TEMPLATE)
    assert [k for k, _ in lib.drain_changes_keyed()] == [alice_id]
    lib.observe("syslog", BOB, T + 201)
    keyed = lib.drain_changes_keyed()
    old_id = pattern_id("syslog", ROOT_TEMPLATE)
    new_id = pattern_id("syslog", GENERAL)
    assert [k for k, _ in keyed] == [old_id, alice_id, new_id]  # the superseded entries first
    assert decode(keyed[0][1])["superseded_by"] == new_id
    assert decode(keyed[1][1])["superseded_by"] == new_id
    assert decode(keyed[2][1])["lineage"] == [old_id, alice_id]
    assert all(entry_key(v) == k for k, v in keyed)

    lib.set_status(new_id, "normal")
    assert [decode(c)["status"] for c in lib.drain_changes()] == ["normal"]


def test_set_status_errors() -> None:
    lib = PatternLibrary()
    pid = lib.observe("syslog", ROOT, T).pattern_id
    with pytest.raises(ValueError, match="unknown status"):
        lib.set_status(pid, "bogus")
    with pytest.raises(KeyError):
        lib.set_status("p-missing", "normal")
    assert lib.get("p-missing") is None


def test_apply_restores_another_library() -> None:
    source = PatternLibrary()
    for line in LINES:
        source.observe("syslog", line, T)
    oom = source.observe("syslog", LINES[3], T).pattern_id
    source.set_status(oom, "alert", reason="OOM", severity="critical")
    topic: dict[str, bytes] = {}  # a compacted topic: the last value per key
    for key, value in source.drain_changes_keyed(include_counts=True):
        topic[key] = value

    restored = PatternLibrary()
    for value in topic.values():
        restored.apply(value)
    assert restored.drain_changes(include_counts=True) == []  # applying is not a change
    assert {e.id for e in restored.entries()} == {e.id for e in source.entries()}
    for line in LINES:
        obs = restored.observe("syslog", line, T + 1)
        assert not obs.is_new
        assert obs.pattern_id == source.observe("syslog", line, T).pattern_id
    assert restored.observe("syslog", LINES[4], T).status == "alert"
    entry = restored.get(oom)
    assert entry is not None
    assert entry.reason == "OOM"
    assert entry.severity == "critical"


def test_apply_redirects_a_template_generalised_elsewhere() -> None:
    here, there = PatternLibrary(), PatternLibrary()
    specific = here.observe("syslog", ROOT, T).pattern_id
    there.observe("syslog", ROOT, T)
    there.observe("syslog", ALICE, T + 1)
    there.observe("syslog", BOB, T + 1)
    general = pattern_id("syslog", GENERAL)
    for value in there.drain_changes():
        here.apply(value)
    assert here.get(specific) is not None
    assert here.get(specific).id == general  # type: ignore[union-attr]
    obs = here.observe("syslog", ROOT, T + 2)
    assert obs.pattern_id == general
    assert not obs.is_new
    assert (
        here.observe("syslog", "Failed password for carol from 1.2.3.4 port 1 ssh2", T).pattern_id
        == general
    )


def test_later_applies_win_and_reviews_reach_successors() -> None:
    lib = PatternLibrary()
    pid = lib.observe("syslog", ROOT, T).pattern_id
    entry = lib.get(pid)
    assert entry is not None
    entry.status, entry.reason = "alert", "first"
    lib.apply(msgspec.json.encode(entry))
    entry.status, entry.reason = "normal", None
    lib.apply(msgspec.json.encode(entry))
    assert lib.observe("syslog", ROOT, T).status == "normal"

    lib.observe("syslog", ALICE, T)
    lib.observe("syslog", BOB, T)  # generalises locally; the review arrives for the old id
    entry.status, entry.reason = "alert", "late review"
    lib.apply(msgspec.json.encode(entry))
    obs = lib.observe("syslog", ALICE, T)
    assert obs.pattern_id == pattern_id("syslog", GENERAL)
    assert (obs.status, obs.reason) == ("normal", None)  # the general entry had a review


def test_apply_rejects_garbage() -> None:
    lib = PatternLibrary()
    for bad in (
        b"",
        b"{",
        b"[]",
        b'{"id": 1}',
        b'{"id":"p","workshop":"w","template":"t","status":"weird"}',
    ):
        with pytest.raises(ValueError, match="pattern entry"):
            lib.apply(bad)
    assert len(lib) == 0


def test_export_import_roundtrip(tmp_path: Path) -> None:
    lib = PatternLibrary()
    for line in LINES:
        lib.observe("syslog", line, T)
    pid = lib.observe("syslog", ROOT, T).pattern_id
    lib.set_status(pid, "alert", reason="brute force", severity="high")
    path = tmp_path / "patterns.jsonl"
    assert lib.export_jsonl(path) == 4
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"format": "logfactory-patterns", "version": 1, "entries": 4}
    assert [json.loads(x)["id"] for x in lines[1:]] == sorted(
        json.loads(x)["id"] for x in lines[1:]
    )

    other = PatternLibrary()
    assert other.import_jsonl(path) == 4
    assert len(other.drain_changes()) == 4  # imports are changes to publish
    assert other.observe("syslog", ALICE, T).status == "alert"
    assert [e.id for e in other.entries()] == [e.id for e in lib.entries()]


def test_import_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("not a header\n", encoding="utf-8")
    with pytest.raises(ValueError, match=":1: not a logfactory-patterns file"):
        PatternLibrary().import_jsonl(path)
    path.write_text('{"format": "logfactory-patterns", "version": 1}\n\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match=":3: not a pattern entry"):
        PatternLibrary().import_jsonl(path)
    path.write_text('{"format": "logfactory-patterns", "version": 9}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="unsupported version"):
        PatternLibrary().import_jsonl(path)


def test_capacity_evicts_unreviewed_templates_without_reannouncing() -> None:
    lib = PatternLibrary(max_templates_per_workshop=10)
    keep = lib.observe("w", "reviewed template here", T).pattern_id
    lib.set_status(keep, "normal")
    words = [f"kind{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(30)]
    announced = sum(lib.observe("w", f"{w} event here", T + i).is_new for i, w in enumerate(words))
    assert announced == 30
    assert len(lib.entries("w")) <= 10
    assert lib.get(keep) is not None  # reviewed entries are never evicted
    # an evicted template that comes back is not announced a second time
    assert lib.get(pattern_id("w", f"{words[0]} event here")) is None
    assert not lib.observe("w", f"{words[0]} event here", T + 99).is_new


def test_bad_messages_never_crash() -> None:
    lib = PatternLibrary()
    for message in ("", "   ", "\n\n", "\x00\x01", "\ud800", "é" * 10_000, "a\nb"):
        obs = lib.observe("w", message, T)
        assert obs.pattern_id.startswith("p-")
