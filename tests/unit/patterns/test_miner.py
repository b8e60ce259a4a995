"""The template miner: masking, grouping, generalisation, stability."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from logfactory.factory.patterns.miner import (
    MAX_TOKENS,
    DrainMiner,
    extract_parameters,
    mask,
    shape_key,
)

SSHD = [
    "Failed password for root from 203.0.113.7 port 52144 ssh2",
    "Failed password for alice from 198.51.100.23 port 2201 ssh2",
    "Failed password for bob from 192.0.2.1 port 40000 ssh2",
    "Accepted publickey for carol from 10.1.2.3 port 51000 ssh2: RSA SHA256:abc",
]
KERNEL = [
    "Out of memory: Killed process 4242 (java) total-vm:1234567kB, anon-rss:1024kB",
    "Out of memory: Killed process 17 (python3) total-vm:99kB, anon-rss:12kB",
    "EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading failed",
]
HDFS = [
    "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
    "Receiving block blk_7503483334202473044 src: /10.251.215.16:55695 dest: /10.251.215.16:50010",
    "PacketResponder 1 for block blk_38865049064139660 terminating",
    "PacketResponder 2 for block blk_-6952295868487656571 terminating",
]


def test_masks_obvious_variables() -> None:
    assert mask("conn 550e8400-e29b-41d4-a716-446655440000 ok") == "conn <*> ok"
    assert mask("mac 00:1A:2b:3c:4d:5e up") == "mac <*> up"
    assert mask("from fe80::1ff:fe23:4567:890a and ::1") == "from <*> and <*>"
    assert mask("from 2001:db8:0:0:0:0:2:1 x") == "from <*> x"
    assert mask("peer 10.0.0.1:8080 / 10.0.0.2") == "peer <*> / <*>"
    assert mask("id 0xdeadBEEF sha 3f2a9c1d8e7b") == "id <*> sha <*>"
    assert mask("open /var/log/app1/x.log failed") == "open <*> failed"
    assert mask("took 250ms then 1.5s") == "took <*> then <*>"
    assert mask("at 2024-01-02T03:04:05.123Z 10:20:30") == "at <*> <*>"
    assert mask("sshd[1234]: uid=0 count -5") == "sshd[<*>]: uid=<*> count <*>"
    assert mask("std::vector and Foo::bar") == "std::vector and Foo::bar"


def test_mask_keeps_first_line_and_normalises_spaces() -> None:
    assert mask("  a   b\tc\nsecond line 12") == "a b c"
    assert mask("") == ""
    assert mask("   ") == ""
    assert mask("é 12 ñ") == "é <*> ñ"
    assert mask("lone \ud800 surrogate 3") == "lone \ud800 surrogate <*>"


def test_very_long_messages_are_bounded() -> None:
    miner = DrainMiner()
    cluster, _ = miner.add("w", " ".join(f"w{i}x" for i in range(5000)))
    assert len(cluster.tokens) == MAX_TOKENS
    assert cluster.tokens[-1] == "<*>"


@given(st.text(alphabet="ab0123456789 .:-/x[]=\n", max_size=60))
def test_mask_depends_only_on_the_shape(text: str) -> None:
    # the cache is keyed by the shape: two messages with one shape must mask alike
    other = re.sub(r"\d", lambda m: str((int(m.group()) * 7 + 3) % 10), text)
    assert shape_key(other) == shape_key(text)
    assert mask(other) == mask(text)


@given(st.text(max_size=200))
def test_any_text_mines_without_error(text: str) -> None:
    miner = DrainMiner()
    first, _ = miner.add("w", text)
    again, previous = miner.add("w", text)
    assert again is first and previous is None
    assert "\n" not in first.text


def test_same_template_lines_get_the_same_cluster_after_learning() -> None:
    miner = DrainMiner()
    for line in SSHD + KERNEL + HDFS:
        miner.add("w", line)
    failed = {miner.add("w", line)[0].text for line in SSHD[:3]}
    assert failed == {"Failed password for <*> from <*> port <*> ssh<*>"}
    oom = {miner.add("w", line)[0].text for line in KERNEL[:2]}
    assert oom == {"Out of memory: Killed process <*> (<*>) total-vm:<*>kB, anon-rss:<*>kB"}
    receiving = {miner.add("w", line)[0].text for line in HDFS[:2]}
    assert receiving == {"Receiving block blk_<*> src: /<*> dest: /<*>"}
    responder = {miner.add("w", line)[0].text for line in HDFS[2:]}
    assert responder == {"PacketResponder <*> for block blk_<*> terminating"}
    assert miner.add("w", SSHD[3])[0].text.startswith("Accepted publickey for carol")


def test_generalisation_reports_the_previous_template() -> None:
    miner = DrainMiner()
    first, previous = miner.add("w", SSHD[0])
    assert previous is None
    assert first.text == "Failed password for root from <*> port <*> ssh<*>"
    second, previous = miner.add("w", SSHD[1])
    assert second is first
    assert previous == "Failed password for root from <*> port <*> ssh<*>"
    assert second.text == "Failed password for <*> from <*> port <*> ssh<*>"
    assert miner.add("w", SSHD[2]) == (first, None)


def test_punctuation_is_kept_around_generalised_words() -> None:
    miner = DrainMiner()
    miner.add("w", "login [root] user=root ok")
    cluster, _ = miner.add("w", "login [alice] user=alice ok")
    assert cluster.text == "login [<*>] user=<*> ok"


def test_workshops_are_separate() -> None:
    miner = DrainMiner()
    a, _ = miner.add("a", "disk full on /data")
    b, _ = miner.add("b", "disk full on /data")
    assert a is not b


def test_different_lengths_and_first_words_do_not_merge() -> None:
    miner = DrainMiner()
    a, _ = miner.add("w", "session opened for user root")
    b, _ = miner.add("w", "session closed for user root by admin")
    c, _ = miner.add("w", "connection opened for user root")
    assert len({a.handle, b.handle, c.handle}) == 3


def test_seed_and_retemplate() -> None:
    miner = DrainMiner()
    seeded = miner.seed("w", "Failed password for <*> from <*> port <*> ssh<*>")
    assert miner.seed("w", "Failed password for <*> from <*> port <*> ssh<*>") is seeded
    cluster, previous = miner.add("w", SSHD[0])
    assert cluster is seeded and previous is None
    first_wild = miner.seed("w", "<*> connected")
    cluster, previous = miner.add("w", "alice connected")
    assert cluster is first_wild and previous is None
    assert miner.retemplate(first_wild, "<*> <*>")
    assert first_wild.text == "<*> <*>"
    assert not miner.retemplate(first_wild, "three token template")


def test_forget_drops_the_cluster() -> None:
    miner = DrainMiner()
    cluster, _ = miner.add("w", "disk full")
    miner.forget(cluster)
    again, _ = miner.add("w", "disk full")
    assert again is not cluster
    assert miner.clusters() == 1


def test_extract_parameters() -> None:
    template = "Failed password for <*> from <*> port <*> ssh<*>"
    assert extract_parameters(template, SSHD[1]) == ["alice", "198.51.100.23", "2201", "2"]
    assert extract_parameters(template, "something else") is None
    assert extract_parameters("login [<*>] ok", "login   [x y] ok") == ["x y"]
