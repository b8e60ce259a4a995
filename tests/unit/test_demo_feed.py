"""The demo feed: deterministic, well-formed, and every kind early and often (the late-subscriber
promise of `make run`), checked from the lines themselves, not from the generator's internals."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tests.helpers.configs import source_as

from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.demo import DemoGenerator, DemoSource
from logfactory.config import DemoSourceConfig, NodeConfig
from logfactory.record import Record

SEC = 1_000_000_000
START = int(datetime(2026, 11, 22, 0, 10, 0, tzinfo=UTC).timestamp()) * SEC

SYSLOG = re.compile(
    r"^<(?P<pri>\d{1,3})>(?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]\d) (?P<hms>\d\d:\d\d:\d\d) "
    r"(?P<host>[\w.-]+) (?P<program>[\w.-]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>\S.*)$"
)
SCE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\|(?P<host>[\w.-]+)\|(?P<user>\w+)\|"
    r"(?P<addr>[\d.]+)\|(?P<op>[A-Z_]+)\|(?P<params>\w+=\S+(?: \w+=\S+)*)$"
)
KERNEL_UPTIME = re.compile(r"^\[ *\d+\.\d{6}\] ")
USER_OPS = {"QUERY_RESOURCE", "SUBMIT_JOB", "TRANSFER_FILE", "QUERY_JOB"}
ADMIN_OPS = {"CREATE_GROUP", "CHANGE_PERMISSION", "ADD_USER", "REMOVE_USER", "SET_QUOTA"}

# syslog kinds: (program regex, message regex)
SYSLOG_KINDS: dict[str, tuple[str, str]] = {
    "ssh-accepted": (
        "sshd",
        r"^Accepted (publickey|password) for usr\d+ from [\d.]+ port \d+ ssh2$",
    ),
    "ssh-failed": ("sshd", r"^Failed password for (invalid user )?\S+ from [\d.]+ port \d+ ssh2$"),
    "ssh-invalid-user": ("sshd", r"^Invalid user \S+ from [\d.]+ port \d+$"),
    "ssh-disconnect": ("sshd", r"^Received disconnect from [\d.]+ port \d+:11: "),
    "ssh-session-opened": ("sshd", r"^pam_unix\(sshd:session\): session opened for user "),
    "ssh-session-closed": ("sshd", r"^pam_unix\(sshd:session\): session closed for user "),
    "oom": ("kernel", r"^Out of memory: Killed process \d+ \(\S+\) total-vm:\d+kB"),
    "oom-reaper": ("kernel", r"^oom_reaper: reaped process \d+"),
    "segfault": (
        "kernel",
        r"^\S+\[\d+\]: segfault at [0-9a-f]+ ip [0-9a-f]{16} sp [0-9a-f]{16} "
        r"error \d+ in \S+\[[0-9a-f]+\+[0-9a-f]+\]$",
    ),
    "overheating": (
        "kernel",
        r"^CPU\d+: Core temperature above threshold, cpu clock throttled "
        r"\(total events = \d+\)$",
    ),
    "cooled": ("kernel", r"^CPU\d+: Core temperature/speed normal$"),
    "kernel-noise": ("kernel", r"^(EXT4-fs|IPv6|nfs|perf|mlx5_core)"),
    "disk-full": ("systemd-journald|slurmd", r"No space left on device$"),
    "system-noise": ("systemd|systemd-logind|CRON|chronyd|munged|slurmd", r"."),
    "job-submitted": ("slurmctld", r"^_slurm_rpc_submit_batch_job: JobId=\d+ InitPrio=\d+ "),
    "job-allocated": (
        "slurmctld",
        r"^sched: Allocate JobId=\d+ NodeList=cn(\d+|\[\d+-\d+\]) "
        r"#CPUs=\d+ Partition=\w+$",
    ),
    "job-completed": ("slurmctld", r"^_job_complete: JobId=\d+ WEXITSTATUS 0$"),
    "job-failed": ("slurmctld", r"^_job_complete: JobId=\d+ WEXITSTATUS [1-9]\d*$"),
    "job-done": ("slurmctld", r"^_job_complete: JobId=\d+ done$"),
    "job-cancelled": ("slurmctld", r"^_slurm_rpc_kill_job: REQUEST_KILL_JOB JobId=\d+ uid \d+$"),
    "job-timeout": ("slurmctld", r"^Time limit exhausted for JobId=\d+$"),
    "novel": ("ipmievd|nhc|smartd|mmfsd|opensm|rasdaemon|lldpd|dcgmd", r"."),
}
_COMPILED = {k: (re.compile(f"^(?:{p})$"), re.compile(m)) for k, (p, m) in SYSLOG_KINDS.items()}
# the kind of each line that an event type is made from, for the recurrence check
EVENT_KINDS = {
    "USER_OP": {"sce-user"},
    "ADMIN_OP": {"sce-admin"},
    "JOB_STATUS": {k for k in SYSLOG_KINDS if k.startswith("job-") and k != "job-done"},
    "APP_STATUS": {"apps"},
    "CLUSTER_STATUS": {"cluster-era", "cluster-orion"},
    "ALERT": {"oom", "segfault", "overheating", "disk-full", "ssh-failed"},
}


def classify(tag: str, host: str, line: str) -> str:
    """The kind of a line; fails the test if the line is not well-formed."""
    if tag == "syslog":
        m = SYSLOG.match(line)
        assert m, f"not an RFC 3164 line: {line!r}"
        assert 0 <= int(m["pri"]) <= 191
        assert m["host"] == host
        program, msg = m["program"], m["msg"]
        if program == "kernel":
            assert KERNEL_UPTIME.match(msg), line
            msg = KERNEL_UPTIME.sub("", msg)
        for kind, (prog_rx, msg_rx) in _COMPILED.items():
            if prog_rx.match(program) and msg_rx.search(msg):
                return kind
        raise AssertionError(f"unknown syslog line {line!r}")
    if tag == "sce":
        m = SCE.match(line)
        assert m, f"not an SCE line: {line!r}"
        assert m["host"] == host
        datetime.strptime(m["time"], "%Y-%m-%d %H:%M:%S")
        assert m["op"] in USER_OPS | ADMIN_OPS, line
        return "sce-user" if m["op"] in USER_OPS else "sce-admin"
    if tag == "cluster" and not line.endswith("}"):  # the torn heartbeat, for dead letters
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
        assert line.startswith('{"time":"'), line
        assert len(line) > 20, line
        return "torn"
    obj = json.loads(line)
    assert isinstance(obj, dict)
    datetime.strptime(obj["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    if tag == "apps":
        assert set(obj) >= {"host", "cluster", "app", "version", "action", "user", "message"}
        assert obj["action"] in {"install", "upgrade", "remove"}
        return "apps"
    assert tag == "cluster", f"unexpected tag {tag!r}"
    assert obj["state"] in {"up", "degraded"}
    for key in ("nodes_total", "nodes_down", "running_jobs", "queued_jobs"):
        assert isinstance(obj[key], int)
        assert obj[key] >= 0
    assert obj["nodes_down"] <= obj["nodes_total"]
    return f"cluster-{obj['cluster']}"


def timed_kinds(seed: int, seconds: float) -> list[tuple[float, str, str]]:
    gen = DemoGenerator(seed, 8, START)
    out: list[tuple[float, str, str]] = []
    for t, tag, host, line in gen.timed():
        if t >= START + seconds * SEC:
            return out
        out.append(((t - START) / SEC, classify(tag, host, line), line))
    raise AssertionError("unreachable")


ALL_KINDS = {*SYSLOG_KINDS, "sce-user", "sce-admin", "apps", "cluster-era", "cluster-orion", "torn"}


@pytest.mark.parametrize("seed", [0, 1, 7, 2026])
def test_every_kind_appears_within_20_seconds(seed: int) -> None:
    kinds = {kind for _, kind, _ in timed_kinds(seed, 20)}
    assert kinds == ALL_KINDS, f"missing {ALL_KINDS - kinds}"


@pytest.mark.parametrize("seed", [3, 11])
def test_event_type_kinds_recur_at_least_every_30_seconds(seed: int) -> None:
    seen: dict[str, list[float]] = defaultdict(list)
    for at, kind, _ in timed_kinds(seed, 360):
        for event_type, kinds in EVENT_KINDS.items():
            if kind in kinds:
                seen[event_type].append(at)
    for event_type, times in seen.items():
        gaps = [b - a for a, b in zip([0.0, *times], [*times, 360.0], strict=True)]
        assert max(gaps) <= 30, f"{event_type} silent for {max(gaps):.1f}s"
    assert set(seen) == set(EVENT_KINDS)


def test_heartbeats_every_ten_seconds_per_cluster() -> None:
    for cluster in ("era", "orion"):
        times = [at for at, kind, _ in timed_kinds(5, 120) if kind == f"cluster-{cluster}"]
        assert 10 <= len(times) <= 13
        assert max(b - a for a, b in itertools.pairwise(times)) <= 11


FAILED = re.compile(r"Failed password for (?:invalid user )?(\S+) from ([\d.]+) port")


def bursts(lines: list[tuple[float, str, str]]) -> dict[str, tuple[float, int, set[str]]]:
    """Per account: (first time, most failures within any 60 s window, addresses)."""
    fails: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for at, kind, line in lines:
        if kind == "ssh-failed":
            m = FAILED.search(line)
            assert m
            fails[m[1]].append((at, m[2]))
    out = {}
    for account, hits in fails.items():
        best = max(sum(1 for b, _ in hits if a <= b < a + 60) for a, _ in hits)
        out[account] = (hits[0][0], best, {addr for _, addr in hits})
    return out


@pytest.mark.parametrize("seed", [0, 42])
def test_password_guessing_bursts_recur_on_different_accounts(seed: int) -> None:
    found = bursts(timed_kinds(seed, 170))
    attacked = {acc: v for acc, v in found.items() if v[1] >= 6}
    # one burst about every 40 s, the first at ~8 s: four in 170 s, each on its own account
    assert len(attacked) >= 4, found
    assert min(first for first, _, _ in attacked.values()) < 20
    assert all(len(addrs) >= 2 for _, _, addrs in attacked.values())
    # the background typos of ordinary users never look like an attack
    assert all(count < 5 for acc, (_, count, _) in found.items() if acc not in attacked)


def test_same_seed_same_lines_and_different_seed_different_lines() -> None:
    a = list(DemoGenerator(9, 8, START).lines(3000))
    b = list(DemoGenerator(9, 8, START).lines(3000))
    c = list(DemoGenerator(10, 8, START).lines(3000))
    assert a == b
    assert a != c


def test_lines_count_and_until_and_hosts() -> None:
    gen = DemoGenerator(1, 3, START, rate=100)
    assert len(list(gen.lines(250))) == 250
    # the same generator continues where it stopped: 2.5 s were used, 1 s more is 100 lines
    assert len(list(gen.lines(until_ns=START + int(3.5 * SEC)))) == 100
    hosts = {host for _, host, _ in DemoGenerator(1, 3, START).lines(5000)}
    assert hosts <= {"login01", "login02", "mgmt01", "cn01", "cn02", "cn03", "era-mgmt01",
                     "orion-mgmt01"}  # fmt: skip
    assert {"cn01", "cn02", "cn03"} <= hosts


def test_line_times_are_the_simulated_time() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    gen = DemoGenerator(4, 8, START, timezone="Asia/Shanghai")
    for t, tag, _, line in itertools.islice(gen.timed(), 0, 2000, 37):
        when = datetime.fromtimestamp(t // SEC, UTC)
        if tag == "syslog":
            local = when.astimezone(shanghai)
            assert line[line.index(">") + 1 :].startswith(
                f"{local:%b} {local.day:2d} {local:%H:%M:%S} "
            ), line
        elif tag == "sce":
            assert line.startswith(f"{when:%Y-%m-%d %H:%M:%S}|")
        else:
            assert json.loads(line)["time"].startswith(f"{when:%Y-%m-%dT%H:%M:%S}.")


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        DemoGenerator(1, 8, START, rate=0)
    with pytest.raises(ValueError, match="hosts"):
        DemoGenerator(1, 0, START)
    with pytest.raises(ValueError, match="rate"):
        DemoSource(source_as(DemoSourceConfig, type="demo", rate=-1), SourceContext(Path("unused")))


def test_generation_runs_on_simulated_time_and_gives_what_is_asked() -> None:
    """How fast lines are generated is a figure for bench/, not a test: here, only that 50,000
    lines are exactly 50,000 and their times step by 1/rate from the start (no wall clock)."""
    gen = DemoGenerator(8, 64, START, rate=1000.0)
    assert sum(1 for _ in gen.lines(50_000)) == 50_000
    assert gen.next_ns == START + 50_000 * SEC // 1000


def test_source_emits_records_in_real_time_until_stopped() -> None:
    source = DemoSource(
        source_as(DemoSourceConfig, type="demo", rate=400, seed=3, tag="demo-syslog"),
        SourceContext(Path("unused"), node=NodeConfig()),  # the demo feed keeps nothing on disk
    )
    assert source.name == "demo"
    got: list[Record] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def emit(record: Record) -> None:
            got.append(record)
            if len(got) >= 200:
                stop.set()

        task = asyncio.create_task(source.run(emit, stop))
        await asyncio.wait_for(source.started(), timeout=5)
        await asyncio.wait_for(task, timeout=10)

    began = time.time_ns()  # the source's simulated clock starts later, in run()
    asyncio.run(main())
    assert len(got) == 200  # nothing after stop
    # paced, not dumped at once: line i is never emitted before its time, i / 400 s after the
    # start (a lower bound only, so a slow machine cannot fail it)
    early = [i for i, r in enumerate(got) if r.received < began + i * SEC // 400]
    assert early == [], f"lines {early[:5]} emitted before their time"
    now = time.time_ns()
    assert all(abs(now - r.received) < 15 * SEC for r in got)
    assert {r.source for r in got} <= {"demo-syslog", "sce", "apps", "cluster"}
    assert "demo-syslog" in {r.source for r in got}
    for r in got:
        if r.source == "sce":  # the line's own time is the current (UTC) time
            stamp = datetime.strptime(r.line[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            assert abs(stamp.timestamp() - now / SEC) < 15
