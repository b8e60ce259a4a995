"""The demo feed: realistic logs of a small HPC centre, generated here rather than copied.

:class:`DemoGenerator` is the pure, synchronous and (with a seed) deterministic core that tests and
benchmarks use; :class:`DemoSource` paces it against the wall clock as a collector source.

The generator runs on *simulated* time: line ``i`` happens at ``start_ns + i / rate``. Periodic
scenarios (cluster heartbeats, password-guessing bursts, alerts, admin operations, application
changes, never-seen messages) and the later steps of multi-line stories (a job's allocation and
end, an ssh session's close) wait in a heap keyed by due time; every slot with nothing due is
filled with weighted background traffic. This keeps the promise the demo makes to a subscriber
joining late: every kind appears in the first ~20 s and each event type recurs at least every
~30 s, whatever the seed. Emitted tags: ``syslog`` (sshd, kernel, slurmctld and other daemons as
RFC 3164 lines with PRI), ``sce`` (``|``-delimited grid middleware operations), ``apps`` and
``cluster`` (JSON lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from logfactory.config import NodeConfig, SourceConfig
from logfactory.record import Record

__all__ = ["DemoGenerator", "DemoSource"]

Line = tuple[str, str, str]
_Step = Callable[[int, Any], Line]
_SEC = 1_000_000_000
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

USERS = tuple(f"usr{i}" for i in range(1, 41))
ADMINS = ("admin1", "admin2")
LOGINS = ("login01", "login02")
CONTROLLER = "mgmt01"
CLUSTERS = (("era", 256), ("orion", 128))
PARTITIONS = ("normal", "normal", "normal", "gpu", "debug", "long")
# Rotated so that one account is attacked at most every ~5.5 minutes: the password-attack rule
# suppresses repeats per account for 5 minutes, and the demo wants an alert for every burst.
ATTACKED = ("root", "admin", "oracle", "test", "guest", "ubuntu", "postgres", "usr7", "hadoop")
_INVALID = frozenset({"admin", "oracle", "test", "guest", "ubuntu", "hadoop"})
USER_OPS = ("QUERY_RESOURCE", "SUBMIT_JOB", "TRANSFER_FILE", "QUERY_JOB")
ADMIN_OPS = ("CREATE_GROUP", "CHANGE_PERMISSION", "ADD_USER", "REMOVE_USER", "SET_QUOTA")
APPS = (
    ("gromacs", ("2023.3", "2024.3")), ("lammps", ("2Aug2023", "29Aug2024")),
    ("vasp", ("6.3.2", "6.4.3")), ("openfoam", ("v2306", "v2406")),
    ("cp2k", ("2023.2", "2024.1")), ("pytorch", ("2.3.1", "2.5.1")),
)  # fmt: skip
COMMANDS = ("python", "python3", "vasp_std", "gmx_mpi", "lmp", "simpleFoam", "R", "java")
_NOVEL_PROGRAMS = ("ipmievd", "nhc", "smartd", "mmfsd", "opensm", "rasdaemon", "lldpd", "dcgmd")
_NOVEL_SUBJECTS = (
    "sensor PSU{a}", "port {a} of switch ib-sw{b}", "GPU {a}", "fan FAN{a}", "DIMM {c}{a}",
    "link mlx5_{a}", "NVMe namespace {a} on nvme{b}", "BMC", "fileset scratch{a}", "fabric manager",
)  # fmt: skip
_NOVEL_VERBS = (
    "reports", "changed state to", "lost redundancy after", "recovered from", "exceeded",
    "dropped below", "renegotiated", "entered", "is stuck in", "was reset by",
)  # fmt: skip
_NOVEL_TAILS = (
    "{a} correctable errors in {b} minutes", "degraded mode (code 0x{h})", "limit {a} C",
    "speed {a} Gb/s", "quorum with {b} peers", "firmware {a}.{b}.{h}", "state {w}",
    "watchdog after {a} ms", "policy {w} for tenant {v}", "{w}",
)  # fmt: skip
_WORDS = ("DEGRADED", "ACTIVE", "standby", "recovery", "ECC", "throttle", "fenced", "quiesce")
_SYSTEM_NOISE = (
    ("systemd", 30, "Started Session {n} of user {u}."),
    ("systemd", 30, "Starting Cleanup of Temporary Directories..."),
    ("systemd-logind", 38, "New session {n} of user {u}."),
    ("systemd-logind", 38, "Removed session {n}."),
    ("CRON", 78, "(root) CMD (/usr/lib/sa/sa1 1 1)"),
    ("CRON", 78, "({u}) CMD (/home/{u}/bin/sync.sh >/dev/null 2>&1)"),
    ("chronyd", 30, "Selected source 10.1.0.{k}"),
    ("munged", 30, "Purged {k} credentials from replay hash"),
    ("slurmd", 30, "launch task StepId={n}.0 request from UID:{uid} GID:{uid} HOST:10.1.2.{k}"),
)
_KERNEL_NOISE = (
    (6, "EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none."),
    (6, "IPv6: ADDRCONF(NETDEV_CHANGE): ib0: link becomes ready"),
    (4, "nfs: server nfs01 not responding, still trying"),
    (5, "nfs: server nfs01 OK"),
    (6, "perf: interrupt took too long ({k} > 2500), lowering kernel.perf_event_max_sample_rate"),
    (6, "mlx5_core 0000:3b:00.0: mlx5_fw_tracer_handle_traces:{k}: FW tracer event"),
)


class DemoGenerator:
    """Deterministic (given ``seed``) stream of ``(tag, host, line)`` over simulated time.

    ``hosts`` is the number of compute nodes (``cn01``...); login nodes ``login01``/``login02`` and
    the controller ``mgmt01`` always exist. Syslog timestamps are written in ``timezone`` (RFC 3164
    has no zone); every other format writes UTC. Cheap enough for benchmark input (~a few us/line).
    """

    def __init__(
        self,
        seed: int | None = None,
        hosts: int = 8,
        start_ns: int | None = None,
        *,
        rate: float = 50.0,
        timezone: str = "UTC",
        syslog_tag: str = "syslog",
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive lines/s, not {rate!r}")
        if hosts < 1:
            raise ValueError(f"hosts must be at least 1, not {hosts!r}")
        self._rng = rng = random.Random(seed)
        self._random = rng.random
        self._tz = ZoneInfo(timezone)
        self._tag = syslog_tag
        self._step = _SEC / rate
        self._start = s = start_ns if start_ns is not None else time.time_ns()
        self._index = 0
        self._width = max(2, len(str(hosts)))
        self._nodes = tuple(f"cn{i:0{self._width}d}" for i in range(1, hosts + 1))
        self._boot = {h: s - rng.randrange(86400, 90 * 86400) * _SEC for h in self.hosts}
        self._pids = {name: rng.randrange(600, 4000) for name, _, _ in _SYSTEM_NOISE}
        self._ctld_pid = rng.randrange(600, 4000)
        self._job_id = rng.randrange(100_000, 900_000)
        self._early_jobs = [0.99, 0.9, 0.8, 0.0]  # outcomes: timeout, cancel, fail, complete
        self._attack = rng.randrange(len(ATTACKED))
        self._down = {name: rng.randrange(0, 4) for name, _ in CLUSTERS}
        self._heap: list[tuple[int, int, _Step, Any]] = []
        self._seq = 0
        self._stamp_sec = -1
        self._syslog_stamp = self._sce_stamp = self._iso_stamp = ""
        fill: list[_Step] = []
        weights: tuple[tuple[int, _Step], ...] = (
            (24, self._system_noise), (12, self._kernel_noise), (8, self._sce_user),
            (3, self._ssh_login), (3, self._ssh_probe), (2, self._job_submit),
        )  # fmt: skip
        for weight, step in weights:
            fill += [step] * weight
        self._fill = tuple(fill)
        # Every kind early (all within ~16 s); the periodic ones then reschedule themselves.
        first: tuple[tuple[float, _Step, Any], ...] = (
            (0.2, self._ssh_login, True), (0.5, self._heartbeat, 0), (0.7, self._sce_user, None),
            (1.0, self._job_submit, None), (1.5, self._kernel_noise, None),
            (2.0, self._system_noise, None), (2.5, self._novel, True), (3.0, self._sce_admin, None),
            (3.5, self._ssh_probe, None), (4.0, self._app_change, None), (4.2, self._heartbeat, 1),
            (4.5, self._ssh_typo, None), (5.0, self._oom, None), (6.0, self._segfault, None),
            (7.0, self._overheat, None), (8.0, self._attack_burst, None),
            (9.0, self._disk_full, None), (9.5, self._novel, False), (13.0, self._novel, False),
            (16.0, self._novel, False),
        )  # fmt: skip
        for at, step, arg in first:
            self._at(s + int(at * _SEC), step, arg)

    @property
    def hosts(self) -> tuple[str, ...]:
        return (*LOGINS, CONTROLLER, *self._nodes)

    # -- public iteration ------------------------------------------------------------------
    def timed(self) -> Iterator[tuple[int, str, str, str]]:
        """Endless ``(time_ns, tag, host, line)``; ``time_ns`` is the simulated time of the line."""
        heap, fill, rng = self._heap, self._fill, self._rng
        pop, n_fill = heapq.heappop, len(fill)
        start, interval = self._start, self._step
        while True:
            t = start + int(self._index * interval)
            self._index += 1
            if heap and heap[0][0] <= t:
                _, _, step, arg = pop(heap)
                yield (t, *step(t, arg))
            else:
                yield (t, *fill[int(rng.random() * n_fill)](t, None))

    @property
    def next_ns(self) -> int:
        """Simulated time of the next line."""
        return self._start + int(self._index * self._step)

    def lines(self, n: int | None = None, until_ns: int | None = None) -> Iterator[Line]:
        """The next ``n`` lines, or those before simulated ``until_ns`` (endless if neither).
        Stopping consumes nothing: a later call continues with the very next line."""
        timed = self.timed()
        left = -1 if n is None else n
        while left != 0 and (until_ns is None or self.next_ns < until_ns):
            left -= 1
            _, tag, host, line = next(timed)
            yield tag, host, line

    # -- helpers ----------------------------------------------------------------------------
    def _at(self, due: int, step: _Step, arg: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, step, arg))

    def _later(self, t: int, low: float, high: float, step: _Step, arg: Any = None) -> None:
        self._at(t + int(self._rng.uniform(low, high) * _SEC), step, arg)

    def _n(self, low: int, high: int) -> int:
        """``randrange(low, high)`` at a fraction of its cost (the feed is benchmark input)."""
        return low + int(self._random() * (high - low))

    def _stamp(self, t: int) -> None:
        sec = t // _SEC
        if sec != self._stamp_sec:
            local = datetime.fromtimestamp(sec, self._tz)
            utc = datetime.fromtimestamp(sec, UTC)
            self._syslog_stamp = f"{_MONTHS[local.month - 1]} {local.day:2d} {local:%H:%M:%S}"
            self._sce_stamp = f"{utc:%Y-%m-%d %H:%M:%S}"
            self._iso_stamp = f"{utc:%Y-%m-%dT%H:%M:%S}"
            self._stamp_sec = sec

    def _syslog(self, t: int, pri: int, host: str, program: str, msg: str) -> Line:
        self._stamp(t)
        return self._tag, host, f"<{pri}>{self._syslog_stamp} {host} {program}: {msg}"

    def _kernel(self, t: int, pri: int, host: str, msg: str) -> Line:
        up = (t - self._boot[host]) // 1000
        stamp = f"[{up // 1_000_000:5d}.{up % 1_000_000:06d}]"
        return self._syslog(t, pri, host, "kernel", f"{stamp} {msg}")

    def _json(self, t: int, tag: str, host: str, obj: dict[str, Any]) -> Line:
        self._stamp(t)
        stamp = f"{self._iso_stamp}.{t // 1_000_000 % 1000:03d}Z"
        return tag, host, json.dumps({"time": stamp, **obj}, separators=(",", ":"))

    def _node(self) -> str:
        return self._nodes[int(self._rng.random() * len(self._nodes))]

    def _user(self) -> str:
        return USERS[int(self._rng.random() * len(USERS))]

    def _user_addr(self) -> str:
        return f"159.226.{self._n(1, 250)}.{self._n(2, 254)}"

    def _attacker_addr(self) -> str:
        return f"{self._rng.choice(('203.0.113', '198.51.100', '192.0.2'))}.{self._n(2, 254)}"

    # -- sshd -------------------------------------------------------------------------------
    def _sshd(self, t: int, host: str, pid: int, msg: str, pri: int = 38) -> Line:
        return self._syslog(t, pri, host, f"sshd[{pid}]", msg)

    def _ssh_login(self, t: int, short: bool | None) -> Line:
        r = self._rng
        user, addr = self._user(), self._user_addr()
        port, pid = self._n(1024, 65535), self._n(5000, 99999)
        host = r.choice(LOGINS) if r.random() < 0.8 else self._node()
        method = "publickey" if r.random() < 0.7 else "password"
        session = (host, pid, user, addr, port)
        self._later(t, 0.01, 0.05, self._ssh_session, (*session, True))
        length = (5, 12) if short else (20, 600)
        self._later(t, *length, self._ssh_session, (*session, False))
        return self._sshd(
            t, host, pid, f"Accepted {method} for {user} from {addr} port {port} ssh2"
        )

    def _ssh_session(self, t: int, arg: tuple[str, int, str, str, int, bool]) -> Line:
        host, pid, user, addr, port, opened = arg
        if opened:
            uid = 1000 + int(user[3:])
            msg = f"pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)"
            return self._sshd(t, host, pid, msg, 86)
        self._later(t, 0.001, 0.01, self._ssh_closed, (host, pid, user))
        msg = f"Received disconnect from {addr} port {port}:11: disconnected by user"
        return self._sshd(t, host, pid, msg)

    def _ssh_closed(self, t: int, arg: tuple[str, int, str]) -> Line:
        host, pid, user = arg
        return self._sshd(
            t, host, pid, f"pam_unix(sshd:session): session closed for user {user}", 86
        )

    def _ssh_probe(self, t: int, _: Any) -> Line:
        name = self._rng.choice(("admin", "test", "oracle", "git", "pi", "support", "ftpuser"))
        msg = f"Invalid user {name} from {self._attacker_addr()} port {self._n(1024, 65535)}"
        return self._sshd(t, self._rng.choice(LOGINS), self._n(5000, 99999), msg)

    def _ssh_typo(self, t: int, _: Any) -> Line:
        # scheduled, not filler: rare enough per account never to look like an attack
        self._later(t, 3, 8, self._ssh_typo)
        return self._failed(t, self._rng.choice(LOGINS), self._user(), self._user_addr())

    def _failed(self, t: int, host: str, account: str, addr: str) -> Line:
        invalid = "invalid user " if account in _INVALID else ""
        port = self._n(1024, 65535)
        msg = f"Failed password for {invalid}{account} from {addr} port {port} ssh2"
        return self._sshd(t, host, self._n(5000, 99999), msg)

    def _attack_burst(self, t: int, _: Any) -> Line:
        """Password guessing: 6-9 failures for one account from 2-3 addresses within ~5 s."""
        r = self._rng
        account = ATTACKED[self._attack % len(ATTACKED)]
        self._attack += 1
        host, addrs = r.choice(LOGINS), [self._attacker_addr() for _ in range(self._n(2, 4))]
        for i in range(1, self._n(6, 10)):
            due = t + int(i * r.uniform(0.3, 0.6) * _SEC)
            self._at(due, self._burst_line, (host, account, r.choice(addrs)))
        self._later(t, 36, 44, self._attack_burst)
        return self._failed(t, host, account, addrs[0])

    def _burst_line(self, t: int, arg: tuple[str, str, str]) -> Line:
        return self._failed(t, *arg)

    # -- kernel and other daemons -----------------------------------------------------------
    def _kernel_noise(self, t: int, _: Any) -> Line:
        pri, msg = _KERNEL_NOISE[int(self._rng.random() * len(_KERNEL_NOISE))]
        return self._kernel(t, pri, self._node(), msg.replace("{k}", str(self._n(2501, 9000))))

    def _system_noise(self, t: int, _: Any) -> Line:
        program, pri, msg = _SYSTEM_NOISE[int(self._rng.random() * len(_SYSTEM_NOISE))]
        user = self._user()
        text = msg.format(n=self._n(1, 99999), u=user, k=self._n(1, 250), uid=1000 + int(user[3:]))
        return self._syslog(t, pri, self._node(), f"{program}[{self._pids[program]}]", text)

    def _oom(self, t: int, _: Any) -> Line:
        pid, comm, host = self._n(1000, 400000), self._rng.choice(COMMANDS), self._node()
        vm, rss = self._n(8, 512) * 1048576, self._n(4, 256) * 1048576
        self._later(t, 0.05, 0.2, self._oom_reaped, (host, pid, comm))
        self._later(t, 18, 30, self._oom)
        msg = (
            f"Out of memory: Killed process {pid} ({comm}) total-vm:{vm}kB, anon-rss:{rss}kB, "
            f"file-rss:0kB, shmem-rss:0kB, UID:{self._n(1001, 1041)} pgtables:{rss // 512}kB "
            "oom_score_adj:0"
        )
        return self._kernel(t, 3, host, msg)

    def _oom_reaped(self, t: int, arg: tuple[str, int, str]) -> Line:
        host, pid, comm = arg
        msg = f"oom_reaper: reaped process {pid} ({comm}), now anon-rss:0kB, file-rss:0kB"
        return self._kernel(t, 6, host, msg + ", shmem-rss:0kB")

    def _segfault(self, t: int, _: Any) -> Line:
        r = self._rng
        comm, lib = r.choice(COMMANDS), r.choice(("libc.so.6", "libmpi.so.40", "libcuda.so.1"))
        base = self._n(0x7F0000000000, 0x7FFFFFFFF000) & ~0xFFF
        ip, sp = base + self._n(0x1000, 0x1F0000), self._n(0x7FFC00000000, 0x7FFFFFFFFFF0)
        at = r.choice((0, 8, self._n(16, 1 << 40)))
        self._later(t, 15, 28, self._segfault)
        msg = (
            f"{comm}[{self._n(1000, 400000)}]: segfault at {at:x} ip {ip:016x} sp {sp:016x} "
            f"error {r.choice((4, 6, 14))} in {lib}[{base:x}+{self._n(0x20000, 0x200000):x}]"
        )
        return self._kernel(t, 6, self._node(), msg)

    def _overheat(self, t: int, _: Any) -> Line:
        cpu, host = self._n(0, 64), self._node()
        self._later(t, 2, 8, self._cooled, (host, cpu))
        self._later(t, 20, 30, self._overheat)
        msg = f"CPU{cpu}: Core temperature above threshold, cpu clock throttled (total events = "
        return self._kernel(t, 4, host, f"{msg}{self._n(1, 5000)})")

    def _cooled(self, t: int, arg: tuple[str, int]) -> Line:
        host, cpu = arg
        return self._kernel(t, 6, host, f"CPU{cpu}: Core temperature/speed normal")

    def _disk_full(self, t: int, _: Any) -> Line:
        host = self._node()
        self._later(t, 35, 55, self._disk_full)
        if self._rng.random() < 0.5:
            msg = f"Failed to write entry (22 items, {self._n(400, 2000)} bytes), ignoring: "
            program = f"systemd-journald[{self._n(300, 900)}]"
            return self._syslog(t, 27, host, program, msg + "No space left on device")
        path = f"/var/spool/slurmd/job{self._job_id - self._n(1, 50)}/slurm_script"
        msg = f"error: write {path}: No space left on device"
        return self._syslog(t, 27, host, f"slurmd[{self._pids['slurmd']}]", msg)

    def _novel(self, t: int, recurring: bool) -> Line:
        """A daemon message of varying structure: combinations the pattern library has not seen."""
        r = self._rng
        if recurring:
            self._later(t, 60, 240, self._novel, True)
        values = {"a": self._n(0, 64), "b": self._n(1, 32), "c": "ABCDEFGH"[self._n(0, 8)],
                  "h": f"{self._n(0, 1 << 16):04x}", "w": r.choice(_WORDS),
                  "v": r.choice(_WORDS)}  # fmt: skip
        text = f"{r.choice(_NOVEL_SUBJECTS)} {r.choice(_NOVEL_VERBS)} {r.choice(_NOVEL_TAILS)}"
        text = text.format(**values)
        if r.random() < 0.4:
            text = f"[{r.choice(_WORDS)}] {text}"
        if r.random() < 0.3:
            text += f"; action={r.choice(_WORDS).lower()}"
        program = f"{r.choice(_NOVEL_PROGRAMS)}[{self._n(300, 9000)}]"
        return self._syslog(t, 29, self._node(), program, text)

    # -- slurmctld --------------------------------------------------------------------------
    def _ctld(self, t: int, msg: str, pri: int = 30) -> Line:
        return self._syslog(t, pri, CONTROLLER, f"slurmctld[{self._ctld_pid}]", msg)

    def _job_submit(self, t: int, _: Any) -> Line:
        self._job_id += 1
        job = self._job_id
        self._later(t, 0.5, 4, self._job_allocate, job)
        prio, usec = self._n(4000, 20000), self._n(100, 5000)
        return self._ctld(
            t, f"_slurm_rpc_submit_batch_job: JobId={job} InitPrio={prio} usec={usec}"
        )

    def _job_allocate(self, t: int, job: int) -> Line:
        r, n, w = self._rng, len(self._nodes), self._width
        count = min(n, r.choice((1, 1, 2, 4)))
        first = self._n(1, n - count + 2)
        last = first + count - 1
        nodes = f"cn{first:0{w}d}" if count == 1 else f"cn[{first:0{w}d}-{last:0{w}d}]"
        cpus, part = count * r.choice((8, 16, 32)), r.choice(PARTITIONS)
        if self._early_jobs:  # the first jobs are short and end in each way once: early coverage
            self._later(t, 3, 8, self._job_end, (job, self._early_jobs.pop()))
        else:
            self._later(t, 5, 45, self._job_end, (job, self._rng.random()))
        msg = f"sched: Allocate JobId={job} NodeList={nodes} #CPUs={cpus} Partition={part}"
        return self._ctld(t, msg)

    def _job_end(self, t: int, arg: tuple[int, float]) -> Line:
        job, x = arg
        if x < 0.86:
            self._later(t, 0.001, 0.01, self._job_done, job)
            if x < 0.72:
                return self._ctld(t, f"_job_complete: JobId={job} WEXITSTATUS 0")
            return self._ctld(t, f"_job_complete: JobId={job} WEXITSTATUS 1", 27)
        if x < 0.94:
            uid = self._n(1001, 1041)
            return self._ctld(t, f"_slurm_rpc_kill_job: REQUEST_KILL_JOB JobId={job} uid {uid}")
        return self._ctld(t, f"Time limit exhausted for JobId={job}")

    def _job_done(self, t: int, job: int) -> Line:
        return self._ctld(t, f"_job_complete: JobId={job} done")

    # -- SCE middleware, applications, cluster heartbeats -----------------------------------
    def _sce(self, t: int, user: str, addr: str, op: str, params: str) -> Line:
        self._stamp(t)
        host = LOGINS[int(self._rng.random() * 2)]
        return "sce", host, f"{self._sce_stamp}|{host}|{user}|{addr}|{op}|{params}"

    def _sce_user(self, t: int, _: Any) -> Line:
        r = self._rng
        user, op = self._user(), USER_OPS[int(r.random() * len(USER_OPS))]
        if op == "QUERY_RESOURCE":
            params = f"cpus={r.choice((4, 8, 16, 32, 64))} app=app{self._n(1, 12)}"
        elif op == "SUBMIT_JOB":
            app, cpus = r.choice(APPS)[0], r.choice((16, 32, 64, 128))
            params = f"app={app} cpus={cpus} queue={r.choice(PARTITIONS)}"
        elif op == "TRANSFER_FILE":
            src, dst = f"/home/{user}/run{self._n(1, 99)}.tar", f"era:/scratch/{user}/"
            params = f"src={src} dst={dst} bytes={self._n(1, 1 << 34)}"
        else:
            params = f"job={self._job_id - self._n(0, 200)}"
        return self._sce(t, user, self._user_addr(), op, params)

    def _sce_admin(self, t: int, _: Any) -> Line:
        r = self._rng
        op, group = r.choice(ADMIN_OPS), f"proj{self._n(1, 60)}"
        if op == "CREATE_GROUP":
            params = f"group={group} quota={self._n(1, 100) * 1000}"
        elif op == "CHANGE_PERMISSION":
            perm = r.choice(("r", "rw", "rwx"))
            params = f"target={self._user()} path=/data/{group} perm={perm}"
        elif op == "ADD_USER":
            params = f"name=usr{self._n(41, 400)} group={group}"
        elif op == "REMOVE_USER":
            params = f"name={self._user()} group={group}"
        else:
            params = f"group={group} cpu_hours={self._n(1, 500) * 100}"
        self._later(t, 8, 16, self._sce_admin)
        return self._sce(t, r.choice(ADMINS), f"10.1.0.{self._n(2, 30)}", op, params)

    def _app_change(self, t: int, _: Any) -> Line:
        r = self._rng
        (app, (old, new)), cluster = r.choice(APPS), r.choice(CLUSTERS)[0]
        action = r.choice(("install", "upgrade", "upgrade", "remove"))
        message = {
            "install": f"installed {app} {new} on {cluster}",
            "upgrade": f"upgraded {app} from {old} to {new} on {cluster}",
            "remove": f"removed {app} {old} from {cluster}",
        }[action]
        self._later(t, 10, 20, self._app_change)
        record = {"host": CONTROLLER, "cluster": cluster, "app": app,
                  "version": old if action == "remove" else new, "action": action,
                  "user": r.choice(ADMINS), "message": message}  # fmt: skip
        return self._json(t, "apps", CONTROLLER, record)

    def _heartbeat(self, t: int, index: int) -> Line:
        name, total = CLUSTERS[index]
        down = max(0, min(total, self._down[name] + self._rng.choice((-1, 0, 0, 0, 1))))
        self._down[name] = down
        self._later(t, 9.5, 10.5, self._heartbeat, index)
        record = {"cluster": name, "state": "up" if down < total // 20 else "degraded",
                  "nodes_total": total, "nodes_down": down,
                  "running_jobs": self._n(total // 4, total),
                  "queued_jobs": self._n(0, total // 2)}  # fmt: skip
        return self._json(t, "cluster", f"{name}-{CONTROLLER}", record)


class DemoSource:
    """A collector source that plays :class:`DemoGenerator` in real time (``rate`` lines/s).

    Config: ``rate``, ``hosts`` (compute nodes), ``seed`` (deterministic content when set) and
    ``tag`` (the tag of the syslog-format lines, default ``syslog``; the other tags are fixed:
    ``sce``, ``apps``, ``cluster``). Lines carry the current time. If ``emit`` falls behind, lines
    go out back to back until the feed has caught up with the clock.
    """

    def __init__(self, config: SourceConfig, node: NodeConfig) -> None:
        self.name = config.name or "demo"
        self._config = config
        self._node = node
        self._ready = asyncio.Event()
        # fail at construction (bad rate, hosts or time zone), not inside the running task
        DemoGenerator(config.seed, config.hosts, 0, rate=config.rate, timezone=node.timezone)

    async def started(self) -> None:
        """Returns once :meth:`run` is producing lines."""
        await self._ready.wait()

    async def run(self, emit: Callable[[Record], Awaitable[None]], stop: asyncio.Event) -> None:
        c = self._config
        gen = DemoGenerator(
            c.seed, c.hosts, time.time_ns(), rate=c.rate, timezone=self._node.timezone,
            syslog_tag=c.tag or "syslog",
        )  # fmt: skip
        lines = gen.timed()
        due, tag, host, line = next(lines)
        self._ready.set()
        while not stop.is_set():
            now = time.time_ns()
            burst = 0
            while due <= now and not stop.is_set():
                await emit(Record(source=tag, host=host, received=time.time_ns(), line=line))
                due, tag, host, line = next(lines)
                burst += 1
                if burst % 512 == 0:
                    await asyncio.sleep(0)  # let the loop breathe while catching up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, (due - now) / _SEC))
