"""Slurm workshop: slurmctld lifecycle messages, accounting lines, times, other lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from logfactory.config import parse_config
from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops import build_workshops
from logfactory.record import make_record

WORKSHOPS = build_workshops(
    parse_config("node: {timezone: Europe/Paris}\nworkshops: {slurm: {format: slurm}}")
)
RECEIVED = 1_795_000_000_000_000_000


def decode(line: str) -> DecodedParts:
    return WORKSHOPS["slurm"].decode(make_record("slurm", "head01", line, received=RECEIVED))


def subset(fields: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    return {k: fields.get(k) for k in keys}


KEYS = ["event", "state", "job_id"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("_slurm_rpc_submit_batch_job: JobId=1234 InitPrio=4294901759 usec=455",
         {"event": "submitted", "state": "PENDING", "job_id": "1234"}),
        ("sched: Allocate JobId=1234 NodeList=cn[01-04] #CPUs=32 Partition=normal",
         {"event": "allocated", "state": "RUNNING", "job_id": "1234"}),
        ("sched: _slurm_rpc_allocate_resources JobId=1235 NodeList=cn05 usec=1021",
         {"event": "allocated", "state": "RUNNING", "job_id": "1235"}),
        ("backfill: Started JobId=1236 in normal on cn01",
         {"event": "started", "state": "RUNNING", "job_id": "1236"}),
        ("sched/backfill: _start_job: Started JobId=1236_7(1243) in gpu on gn[01-02]",
         {"event": "started", "state": "RUNNING", "job_id": "1236_7"}),
        ("_job_complete: JobId=1234 WEXITSTATUS 0",
         {"event": "completed", "state": "COMPLETED", "job_id": "1234"}),
        ("_job_complete: JobId=1234 WEXITSTATUS 2",
         {"event": "failed", "state": "FAILED", "job_id": "1234"}),
        ("job_complete: JobId=1234 WTERMSIG 9",
         {"event": "failed", "state": "FAILED", "job_id": "1234"}),
        ("_slurm_rpc_kill_job: REQUEST_KILL_JOB JobId=1237 uid 1001",
         {"event": "cancelled", "state": "CANCELLED", "job_id": "1237"}),
        ("_slurm_rpc_kill_job2: REQUEST_KILL_JOB job 1238 uid 0",
         {"event": "cancelled", "state": "CANCELLED", "job_id": "1238"}),
        ("Time limit exhausted for JobId=1239",
         {"event": "timeout", "state": "TIMEOUT", "job_id": "1239"}),
        ("Requeuing JobId=1240",
         {"event": "requeued", "state": "REQUEUED", "job_id": "1240"}),
        ("_job_complete: JobId=1234 done", {"event": None, "state": None, "job_id": "1234"}),
        ("error: Nodes cn07 not responding", {"event": None, "state": None, "job_id": None}),
    ],
)  # fmt: skip
def test_lifecycle_messages(message: str, expected: dict[str, Any]) -> None:
    parts = decode(f"[2026-11-21T22:38:28.123] {message}")
    assert parts.message == message
    assert subset(parts.fields, KEYS) == expected
    if expected["event"] is None:
        assert "event" not in parts.fields


def test_allocate_fields() -> None:
    fields = decode("[2026-11-21T22:38:28.123] sched: Allocate JobId=1234 NodeList=cn[01-04] "
                    "#CPUs=32 Partition=normal").fields  # fmt: skip
    assert subset(fields, ["nodes", "cpus", "partition", "host"]) == {
        "nodes": "cn[01-04]", "cpus": 32, "partition": "normal", "host": "head01",
    }  # fmt: skip


def test_started_names_partition_and_nodes() -> None:
    fields = decode("[2026-11-21T22:38:28] backfill: Started JobId=1236 in normal on cn01").fields
    assert fields["partition"] == "normal"
    assert fields["nodes"] == "cn01"


def test_exit_status_signal_and_uid_are_ints() -> None:
    assert (
        decode("[2026-11-21T22:38:28] _job_complete: JobId=1 WEXITSTATUS 3").fields["exit_code"]
        == 3
    )
    assert decode("[2026-11-21T22:38:28] _job_complete: JobId=1 WTERMSIG 9").fields["signal"] == 9
    assert decode("[2026-11-21T22:38:28] _slurm_rpc_kill_job: REQUEST_KILL_JOB JobId=1 uid 1001"
                  ).fields["uid"] == 1001  # fmt: skip


def test_accounting_line_parses_every_pair() -> None:
    parts = decode("JobId=1234 UserId=usr1(1001) GroupId=hpc(500) Partition=normal NodeList=cn01 "
                   "JobState=COMPLETED ExitCode=0:0 NumCPUs=8 Elapsed=00:10:02")  # fmt: skip
    assert parts.time_ns == RECEIVED
    assert parts.fields == {
        "host": "head01", "job_id": "1234", "user": "usr1", "uid": 1001, "group": "hpc",
        "gid": 500, "partition": "normal", "nodes": "cn01", "state": "COMPLETED",
        "exit_code": 0, "signal": 0, "cpus": 8, "elapsed": "00:10:02", "event": "completed",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("state", "event"),
    [("FAILED", "failed"), ("CANCELLED", "cancelled"), ("TIMEOUT", "timeout"),
     ("PENDING", "submitted"), ("OUT_OF_MEMORY", "failed"), ("SUSPENDED", None)],
)  # fmt: skip
def test_accounting_states(state: str, event: str | None) -> None:
    fields = decode(f"JobId=77 UserId=usr2(1002) JobState={state} ExitCode=1:9").fields
    assert fields.get("event") == event
    assert fields["state"] == state
    assert (fields["exit_code"], fields["signal"]) == (1, 9)


def test_bracket_time_is_local_time_in_the_zone() -> None:
    parts = decode("[2026-07-01T12:00:00.500] sched: Allocate JobId=1 NodeList=cn01")
    expected = datetime(2026, 7, 1, 10, 0, 0, tzinfo=ZoneInfo("UTC"))  # Paris summer: UTC+2
    assert parts.time_ns == int(expected.timestamp()) * 10**9 + 500_000_000


def test_bracket_time_with_offset() -> None:
    parts = decode("[2026-11-21T22:38:28.123+05:00] slurmctld version 23.11.4 started")
    expected = datetime(2026, 11, 21, 17, 38, 28, 123000, tzinfo=ZoneInfo("UTC"))
    assert parts.time_ns == int(expected.timestamp()) * 10**9 + 123_000_000


def test_delegated_message_uses_given_time_and_fields() -> None:
    parts = WORKSHOPS["slurm"].decode_message(
        "Time limit exhausted for JobId=99", {"host": "head02", "program": "slurmctld"}, 42
    )
    assert parts == DecodedParts(
        "slurm", 42, "Time limit exhausted for JobId=99",
        {"host": "head02", "program": "slurmctld", "job_id": "99", "event": "timeout",
         "state": "TIMEOUT"},
    )  # fmt: skip


def test_empty_line_is_an_error() -> None:
    with pytest.raises(DecodeError, match="empty line"):
        decode("  ")


def test_unparsable_bracket_is_kept_in_the_message() -> None:
    parts = decode("[2026-99-99T99:99:99] odd")
    assert parts.time_ns == RECEIVED
    assert parts.message == "odd"
