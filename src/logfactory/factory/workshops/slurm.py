"""Slurm workshop: slurmctld log lines (Slurm 22-24) and one-line job records.

Lines look like ``[2026-11-21T22:38:28.123] sched: Allocate JobId=1234 NodeList=cn[01-04]
#CPUs=32 Partition=normal``; delegated from syslog (program ``slurmctld``) the bracket time is
absent and the syslog time is used. The bracket time carries no zone unless Slurm's
``LogTimeFormat`` adds one; naive times are in the workshop's zone.

Every ``Key=value`` in the message becomes a field (known Slurm keys under the contract names
below, others in snake_case), and the lifecycle messages set ``event`` and ``state``:

========================================================  ===========  ==========
message                                                   event        state
========================================================  ===========  ==========
``_slurm_rpc_submit_batch_job: JobId=N ...``               submitted    PENDING
``sched: Allocate JobId=N ...``, ``_slurm_rpc_allocate_resources JobId=N``
                                                          allocated    RUNNING
``backfill: Started JobId=N in PART on NODES``             started      RUNNING
``_job_complete: JobId=N WEXITSTATUS 0``                   completed    COMPLETED
``_job_complete: JobId=N WEXITSTATUS 3`` / ``WTERMSIG 9``  failed       FAILED
``_slurm_rpc_kill_job: REQUEST_KILL_JOB JobId=N uid U``    cancelled    CANCELLED
``Time limit exhausted for JobId=N``                       timeout      TIMEOUT
``Requeuing JobId=N``                                      requeued     REQUEUED
``JobId=N ... JobState=S ExitCode=E:G`` (accounting)       from S       S
========================================================  ===========  ==========

``_job_complete: JobId=N done`` follows the ``WEXITSTATUS``/``WTERMSIG`` line of the same job, so
it decodes without ``event`` (one job end must not make two JOB_STATUS events). Any other line
decodes too, without ``event``. Fields: ``job_id`` (str; an array task ``1234_5(1239)`` is
``1234_5``), ``user``, ``uid``, ``partition``, ``nodes``, ``cpus``, ``exit_code``, ``signal``.
"""

from __future__ import annotations

import re
from datetime import tzinfo
from functools import lru_cache
from typing import Any

from logfactory.config import WorkshopConfig
from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops.base import record_text
from logfactory.factory.workshops.kv import convert_value
from logfactory.factory.workshops.timeparse import parse_iso
from logfactory.record import Record

__all__ = ["EVENT_STATES", "STATE_EVENTS", "SlurmWorkshop"]

EVENT_STATES: dict[str, str] = {
    "submitted": "PENDING",
    "allocated": "RUNNING",
    "started": "RUNNING",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "cancelled": "CANCELLED",
    "timeout": "TIMEOUT",
    "requeued": "REQUEUED",
}
STATE_EVENTS: dict[str, str] = {
    "PENDING": "submitted",
    "RUNNING": "started",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "NODE_FAIL": "failed",
    "OUT_OF_MEMORY": "failed",
    "BOOT_FAIL": "failed",
    "CANCELLED": "cancelled",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "REQUEUED": "requeued",
}

_A = re.ASCII
_BRACKET_TIME = re.compile(r"\[([0-9]{4}-[0-9]{2}-[0-9]{2}[T ][^\]]{1,40})\] ?", _A)
_PAIR = re.compile(r"(?<![^\s(,;])([A-Za-z#_][\w#]*)=(\S*)", _A)
_ID_WITH_INTERNAL = re.compile(r"([^(]+)\(([0-9]+)\)", _A)
_JOB = r"(?:JobId=|[Jj]ob )([0-9][^\s(]*)"
# (keyword, event, regex): the regex runs only when the keyword is in the message; group 1 is
# the job id, the others are per pattern
_EVENTS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("job_complete", "complete", re.compile(
        rf"job_complete: {_JOB}(?:\([0-9]+\))? (WEXITSTATUS|WTERMSIG) (-?[0-9]+)", _A
    )),
    ("submit_batch", "submitted", re.compile(
        rf"_slurm_rpc_submit_batch(?:_het)?_job:? {_JOB}", _A
    )),
    ("llocate", "allocated", re.compile(
        rf"(?:sched: Allocate|_slurm_rpc_allocate_resources:?) {_JOB}", _A
    )),
    ("Started", "started", re.compile(rf"\bStarted {_JOB}(?:\([0-9]+\))? in (\S+) on (\S+)", _A)),
    ("REQUEST_KILL_JOB", "cancelled", re.compile(
        rf"REQUEST_KILL_JOB {_JOB}(?:\([0-9]+\))? uid ([0-9]+)", _A
    )),
    ("Time limit", "timeout", re.compile(rf"Time limit exhausted for {_JOB}", _A)),
    ("equeu", "requeued", re.compile(rf"\b[Rr]equeu(?:ing|ed|e) {_JOB}", _A)),
)  # fmt: skip
# Slurm's keys under the names of the field contract; the rest become snake_case
_KEYS = {
    "JobId": "job_id",
    "JobID": "job_id",
    "Partition": "partition",
    "NodeList": "nodes",
    "Nodes": "nodes",
    "#CPUs": "cpus",
    "NumCPUs": "cpus",
    "NCPUS": "cpus",
    "AllocCPUS": "cpus",
    "JobName": "job_name",
    "Account": "account",
    "QOS": "qos",
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@lru_cache(maxsize=1024)
def _snake(key: str) -> str:
    return _CAMEL.sub("_", key.lstrip("#")).lower() or key


def _pairs(message: str, fields: dict[str, Any]) -> None:
    for key, value in _PAIR.findall(message):
        name = _KEYS.get(key)
        if name == "job_id":
            m = _ID_WITH_INTERNAL.fullmatch(value) if "(" in value else None
            fields["job_id"] = m.group(1) if m else value
        elif name == "cpus":
            fields["cpus"] = convert_value(value)
        elif name is not None:
            fields[name] = value
        elif key in ("UserId", "GroupId"):
            who = "user" if key == "UserId" else "group"
            m = _ID_WITH_INTERNAL.fullmatch(value) if "(" in value else None
            if m:
                fields[who] = m.group(1)
                fields["uid" if who == "user" else "gid"] = int(m.group(2))
            else:
                fields[who] = value
        elif key == "JobState":
            fields["state"] = value.upper()
        elif key == "ExitCode":
            code, _, sig = value.partition(":")
            if code.isdigit() and code.isascii():
                fields["exit_code"] = int(code)
            if sig.isdigit() and sig.isascii():
                fields["signal"] = int(sig)
        else:
            fields[_snake(key)] = convert_value(value)


def _classify(message: str, fields: dict[str, Any]) -> None:
    for keyword, event, pattern in _EVENTS:
        if keyword not in message:
            continue
        m = pattern.search(message)
        if m is None:
            continue
        fields["job_id"] = m.group(1)
        if event == "complete":
            number = int(m.group(3))
            if m.group(2) == "WTERMSIG":
                fields["signal"] = number
                event = "failed"
            else:
                fields["exit_code"] = number
                event = "completed" if number == 0 else "failed"
        elif event == "started":
            fields["partition"] = m.group(2)
            fields["nodes"] = m.group(3)
        elif event == "cancelled":
            fields["uid"] = int(m.group(2))
        fields["event"] = event
        fields["state"] = EVENT_STATES[event]
        return
    state = fields.get("state")
    if state is not None and "job_id" in fields:
        from_state = STATE_EVENTS.get(state)
        if from_state is not None:
            fields["event"] = from_state


class SlurmWorkshop:
    """Decodes slurmctld lines; see the module docstring for the events and fields."""

    def __init__(self, name: str, ws: WorkshopConfig, tz: tzinfo) -> None:
        # ``ws``: the registry's signature; a slurm workshop has no options
        self.name = name
        self._tz = tz

    def decode(self, record: Record) -> DecodedParts:
        line = record_text(record)
        if not line.strip():
            raise DecodeError("empty line")
        return self._decode(line, {"host": record.host}, record.received)

    def decode_message(
        self, message: str, fields: dict[str, Any], default_time_ns: int
    ) -> DecodedParts:
        return self._decode(message, dict(fields), default_time_ns)

    def _decode(self, line: str, fields: dict[str, Any], time_ns: int) -> DecodedParts:
        message = line
        if line.startswith("["):
            m = _BRACKET_TIME.match(line)
            if m is not None:
                parsed = parse_iso(m.group(1), self._tz)
                if parsed is not None:
                    time_ns = parsed
                message = line[m.end() :]
        if "=" in message:
            _pairs(message, fields)
        if "ob" in message:  # "JobId", "job ": every lifecycle message names its job
            _classify(message, fields)
        return DecodedParts(self.name, time_ns, message, fields)
