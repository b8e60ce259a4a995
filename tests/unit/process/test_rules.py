"""Threshold rules: the demo's password-attack rule, windows, suppression, snapshots."""

from __future__ import annotations

import json

import pytest

from logfactory.config import ThresholdRule, parse_config
from logfactory.event import composite_event_id
from logfactory.factory.model import Decoded, Draft, Position
from logfactory.factory.process.rules import ProcessStage, plural
from logfactory.record import make_record

S = 1_000_000_000
T0 = 1_700_000_000 * S

DEMO = """
workshops:
  syslog: {format: syslog}
rules:
  - name: password-attack
    when: {workshop: syslog, program: sshd, message: 'Failed password for (invalid user )?(?P<account>\\S+) from (?P<addr>\\S+) port (?P<port>\\d+)'}
    key: account
    threshold: 5
    window: 60s
    suppress: 5m
    subtype: PASSWORD_ATTACK
    severity: high
    reason: "{count} failed passwords for account {account} within {window}"
    collect: [addr]
"""  # noqa: E501 (the demo config, verbatim)


def rules() -> list[ThresholdRule]:
    return parse_config(DEMO).rules


def failed(
    t: int, account: str = "root", addr: str = "203.0.113.7", host: str = "login01"
) -> Decoded:
    message = f"Failed password for {account} from {addr} port 52144 ssh2"
    return Decoded(
        record=make_record("syslog", host, message, received=t),
        position=Position("logs.raw", 0, t // S),
        workshop="syslog",
        time_ns=t,
        message=message,
        fields={"host": host, "program": "sshd", "pid": 4242},
    )


def feed_all(stage: ProcessStage, records: list[Decoded]) -> list[Draft]:
    out: list[Draft] = []
    for r in records:
        out += stage.feed(r)
    return out


def test_five_failures_in_a_minute_make_one_alert() -> None:
    stage = ProcessStage(rules())
    addrs = ["203.0.113.7", "198.51.100.2", "203.0.113.7", "192.0.2.9", "198.51.100.2"]
    records = [failed(T0 + i * 10 * S, addr=a) for i, a in enumerate(addrs)]
    assert feed_all(stage, records[:4]) == []
    drafts = stage.feed(records[4])
    assert len(drafts) == 1
    d = drafts[0]
    assert (d.type, d.subtype, d.severity) == ("ALERT", "PASSWORD_ATTACK", "high")
    assert d.reason == "5 failed passwords for account root within 60s"
    assert d.id == composite_event_id("password-attack", "root", T0)
    assert d.time_ns == T0 + 40 * S
    assert d.host == "login01"
    assert d.body["account"] == "root"
    assert d.body["count"] == 5
    assert d.body["window_s"] == 60
    assert d.body["addrs"] == ["192.0.2.9", "198.51.100.2", "203.0.113.7"]
    assert d.body["first_seen"] == "2023-11-14T22:13:20.000000Z"
    assert d.body["last_seen"] == "2023-11-14T22:14:00.000000Z"
    evidence = d.body["evidence"]
    assert len(evidence) == 5
    assert evidence[0] == {
        "time": "2023-11-14T22:13:20.000000Z",
        "host": "login01",
        "message": records[0].message,
    }
    json.dumps(d.body)  # the body is plain JSON


def test_four_failures_do_not_fire() -> None:
    stage = ProcessStage(rules())
    assert feed_all(stage, [failed(T0 + i * S) for i in range(4)]) == []
    assert stage.open_windows() == 1


def test_accounts_are_independent() -> None:
    stage = ProcessStage(rules())
    records = []
    for i in range(5):
        records += [failed(T0 + i * S, "root"), failed(T0 + i * S, "admin")]
    drafts = feed_all(stage, records[:-1])
    assert [d.body["account"] for d in drafts] == ["root"]
    drafts = stage.feed(records[-1])
    assert [d.body["account"] for d in drafts] == ["admin"]


def test_the_rest_of_the_burst_is_suppressed_then_a_new_burst_fires_again() -> None:
    stage = ProcessStage(rules())
    burst = [failed(T0 + i * S) for i in range(5)]
    assert len(feed_all(stage, burst)) == 1
    assert feed_all(stage, [failed(T0 + (5 + i) * S) for i in range(20)]) == []
    assert stage.suppressed == 20
    later = T0 + 4 * S + 5 * 60 * S  # suppression (5m after the firing record) has ended
    drafts = feed_all(stage, [failed(later + i * S) for i in range(5)])
    assert len(drafts) == 1
    assert drafts[0].id == composite_event_id("password-attack", "root", later)
    assert drafts[0].id != composite_event_id("password-attack", "root", T0)


def test_windows_slide() -> None:
    stage = ProcessStage(rules())
    # one failure every 20 s: at most 4 in any 60 s window (inclusive), so never fires
    assert feed_all(stage, [failed(T0 + i * 20 * S) for i in range(20)]) == []
    # then a quicker pace: hits older than 60 s behind the newest no longer count, the recent
    # ones (360, 380 s) still do, so the third quick record (at 410 s) is the fifth in a window
    quick = [failed(T0 + 400 * S + i * 5 * S) for i in range(5)]
    assert feed_all(stage, quick[:2]) == []
    drafts = stage.feed(quick[2])
    assert len(drafts) == 1
    assert drafts[0].body["count"] == 5
    assert drafts[0].body["first_seen"] == "2023-11-14T22:19:20.000000Z"  # T0 + 360 s
    assert drafts[0].time_ns == T0 + 410 * S


def test_expire_drops_stale_windows_and_ended_suppressions() -> None:
    stage = ProcessStage(rules())
    feed_all(stage, [failed(T0 + i * S, "a") for i in range(5)])  # fires, suppressed 5m
    feed_all(stage, [failed(T0, "b"), failed(T0, "c")])  # partial windows
    assert stage.open_windows() == 2
    wall = T0 + 3600 * S
    assert stage.expire(wall) == 0  # the event-time watermark has not moved
    stage.feed(failed(T0 + 61 * S, "d"))
    assert stage.expire(wall) == 2  # b and c are older than the window; a is still suppressed
    assert stage.open_windows() == 1
    stage.feed(failed(T0 + 400 * S, "e"))
    assert stage.expire(wall) == 2  # a's suppression ended, d's window went stale


def test_expire_never_runs_ahead_of_the_wall_clock() -> None:
    stage = ProcessStage(rules())
    stage.feed(failed(T0, "a"))
    stage.feed(failed(T0 + 3600 * S, "future-clock-host"))
    assert stage.expire(T0 + 30 * S) == 0
    assert stage.open_windows() == 2


def test_out_of_order_records_count() -> None:
    stage = ProcessStage(rules())
    times = [10, 0, 30, 20, 40]
    drafts = feed_all(stage, [failed(T0 + t * S) for t in times])
    assert len(drafts) == 1
    assert drafts[0].id == composite_event_id("password-attack", "root", T0)
    assert stage.feed(failed(T0 - 600 * S, "late")) == []  # first hit of a new key is fine
    assert stage.feed(failed(T0 - 600 * S, "late")) == []


def test_snapshot_restore_mid_burst_then_fifth_record_fires() -> None:
    stage = ProcessStage(rules())
    feed_all(stage, [failed(T0 + i * S, addr=f"192.0.2.{i}") for i in range(4)])
    data = stage.snapshot()
    assert data == stage.snapshot()  # deterministic, cached
    json.loads(data)  # JSON, not pickle

    fresh = ProcessStage(rules())
    fresh.restore(data)
    assert fresh.open_windows() == 1
    assert fresh.snapshot() == data
    drafts = fresh.feed(failed(T0 + 4 * S, addr="192.0.2.4"))
    assert len(drafts) == 1
    assert drafts[0].body["addrs"] == [f"192.0.2.{i}" for i in range(5)]
    assert drafts[0].id == composite_event_id("password-attack", "root", T0)
    assert fresh.snapshot() != data


def test_suppression_survives_restore() -> None:
    stage = ProcessStage(rules())
    feed_all(stage, [failed(T0 + i * S) for i in range(5)])
    fresh = ProcessStage(rules())
    fresh.restore(stage.snapshot())
    assert fresh.feed(failed(T0 + 6 * S)) == []
    assert fresh.suppressed == 1


def test_restore_rejects_garbage_and_ignores_unknown_rules() -> None:
    stage = ProcessStage(rules())
    for bad in (b"", b"{}", b"[1]", b'{"version": 2, "watermark": 0, "rules": {}}'):
        with pytest.raises(ValueError, match="process-stage snapshot"):
            stage.restore(bad)
    stage.restore(b'{"version": 1, "watermark": 5, "rules": {"gone": [["k", 0, []]]}}')
    assert stage.open_windows() == 0


def test_keys_per_rule_are_bounded() -> None:
    stage = ProcessStage(rules(), max_keys_per_rule=100)
    for i in range(1000):
        stage.feed(failed(T0 + i, f"user{i}"))
    assert stage.open_windows() == 100


def test_evidence_is_capped() -> None:
    rule = parse_config(DEMO.replace("collect: [addr]", "collect: [addr]\n    max_evidence: 2"))
    stage = ProcessStage(rule.rules)
    drafts = feed_all(stage, [failed(T0 + i * S, addr=f"192.0.2.{i}") for i in range(5)])
    assert [e["message"][-21:] for e in drafts[0].body["evidence"]] == [
        "192.0.2.3 port 52144 ssh2"[-21:],
        "192.0.2.4 port 52144 ssh2"[-21:],
    ]


def test_several_hosts_leave_host_empty() -> None:
    stage = ProcessStage(rules())
    drafts = feed_all(stage, [failed(T0 + i * S, host=f"login0{i % 2}") for i in range(5)])
    assert drafts[0].host is None
    assert {e["host"] for e in drafts[0].body["evidence"]} == {"login00", "login01"}


def test_non_matching_records_and_no_rules() -> None:
    stage = ProcessStage(rules())
    other = failed(T0)
    other.fields["program"] = "su"
    assert stage.feed(other) == []
    assert ProcessStage([]).feed(failed(T0)) == []
    assert stage.open_windows() == 0


def test_plural() -> None:
    assert plural("addr") == "addrs"
    assert plural("hosts") == "hosts"
