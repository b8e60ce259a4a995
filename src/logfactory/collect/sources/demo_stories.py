"""The demo feed's stories: every kind of line it tells, and what each one sets in motion.

A story step is ``(t, arg) -> Line``: it writes one line at simulated time ``t`` and may plan its
follow-ups (a login's session close, a job's end, the next burst of a periodic scenario) with
:meth:`Stories._at` / :meth:`Stories._later`. :class:`~.demo.DemoGenerator` decides *when* steps
run (the opening schedule, the background mix, the clock); this module decides *what* happens.

Determinism is the contract: with a seed, the output is a function of the order of random draws,
so a step must draw in the same order every time and a change here changes every seeded feed.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

from logfactory.collect.sources.demo_catalogue import (
    ADMIN_OPS,
    ADMINS,
    APPS,
    ATTACKED,
    CLUSTERS,
    COMMANDS,
    CONTROLLER,
    INVALID_USERS,
    KERNEL_NOISE,
    LOGINS,
    NOVEL_PROGRAMS,
    NOVEL_SUBJECTS,
    NOVEL_TAILS,
    NOVEL_VERBS,
    PARTITIONS,
    SEC,
    SYSTEM_NOISE,
    USER_OPS,
    USERS,
    WORDS,
    Line,
    LineFormat,
)

__all__ = ["Step", "Stories"]

Step = Callable[[int, Any], Line]


class Stories:
    """The simulated centre's state (job ids, cluster health, whose turn it is to be attacked)
    and its story steps, plus the heap of planned follow-ups they share with the generator.

    ``hosts`` compute nodes ``cn01``...; login nodes ``login01``/``login02`` and the controller
    ``mgmt01`` always exist. Every random draw comes from ``rng``, in construction order first.
    """

    def __init__(
        self, rng: random.Random, hosts: int, start_ns: int, timezone: str, syslog_tag: str
    ) -> None:
        self._rng = rng
        self._random = rng.random
        self._width = max(2, len(str(hosts)))
        self._nodes = tuple(f"cn{i:0{self._width}d}" for i in range(1, hosts + 1))
        boot = {h: start_ns - rng.randrange(86400, 90 * 86400) * SEC for h in self.hosts}
        self._fmt = fmt = LineFormat(timezone, syslog_tag, boot)
        # bound once: the formats are called for every line
        self._syslog, self._kernel, self._json_record = fmt.syslog, fmt.kernel, fmt.json_record
        self._pids = {name: rng.randrange(600, 4000) for name, _, _ in SYSTEM_NOISE}
        self._ctld_pid = rng.randrange(600, 4000)
        self._job_id = rng.randrange(100_000, 900_000)
        self._early_jobs = [0.99, 0.9, 0.8, 0.0]  # outcomes: timeout, cancel, fail, complete
        self._attack = rng.randrange(len(ATTACKED))
        self._down = {name: rng.randrange(0, 4) for name, _ in CLUSTERS}
        self._heap: list[tuple[int, int, Step, Any]] = []
        self._seq = 0

    @property
    def hosts(self) -> tuple[str, ...]:
        return (*LOGINS, CONTROLLER, *self._nodes)

    # -- scheduling and draws --------------------------------------------------------------
    def _at(self, due: int, step: Step, arg: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, step, arg))

    def _later(self, t: int, low: float, high: float, step: Step, arg: Any = None) -> None:
        self._at(t + int(self._rng.uniform(low, high) * SEC), step, arg)

    def _n(self, low: int, high: int) -> int:
        """``randrange(low, high)`` at a fraction of its cost (the feed is benchmark input)."""
        return low + int(self._random() * (high - low))

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
        invalid = "invalid user " if account in INVALID_USERS else ""
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
            due = t + int(i * r.uniform(0.3, 0.6) * SEC)
            self._at(due, self._burst_line, (host, account, addrs[i % len(addrs)]))
        self._later(t, 36, 44, self._attack_burst)
        return self._failed(t, host, account, addrs[0])

    def _burst_line(self, t: int, arg: tuple[str, str, str]) -> Line:
        return self._failed(t, *arg)

    # -- kernel and other daemons -----------------------------------------------------------
    def _kernel_noise(self, t: int, _: Any) -> Line:
        pri, msg = KERNEL_NOISE[int(self._rng.random() * len(KERNEL_NOISE))]
        return self._kernel(t, pri, self._node(), msg.replace("{k}", str(self._n(2501, 9000))))

    def _system_noise(self, t: int, _: Any) -> Line:
        program, pri, msg = SYSTEM_NOISE[int(self._rng.random() * len(SYSTEM_NOISE))]
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
                  "h": f"{self._n(0, 1 << 16):04x}", "w": r.choice(WORDS),
                  "v": r.choice(WORDS)}  # fmt: skip
        text = f"{r.choice(NOVEL_SUBJECTS)} {r.choice(NOVEL_VERBS)} {r.choice(NOVEL_TAILS)}"
        text = text.format(**values)
        if r.random() < 0.4:
            text = f"[{r.choice(WORDS)}] {text}"
        if r.random() < 0.3:
            text += f"; action={r.choice(WORDS).lower()}"
        program = f"{r.choice(NOVEL_PROGRAMS)}[{self._n(300, 9000)}]"
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
        host = LOGINS[int(self._rng.random() * 2)]
        return self._fmt.sce(t, host, user, addr, op, params)

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
        return self._json_record(t, "apps", CONTROLLER, record)

    def _torn_heartbeat(self, t: int, _: Any) -> Line:
        """A heartbeat its agent only half wrote (killed mid-write, a full disk): not JSON, so
        the factory dead-letters it with the reason, which is what ``logfactory tail
        logs.deadletter`` shows on the demo. Planned rarely: a site sees few of these."""
        self._later(t, 45, 75, self._torn_heartbeat)
        name, total = CLUSTERS[self._n(0, len(CLUSTERS))]
        tag, host, line = self._json_record(
            t, "cluster", f"{name}-{CONTROLLER}", {"cluster": name, "state": "up",
                                                    "nodes_total": total}
        )  # fmt: skip
        return tag, host, line[: self._n(len(line) // 3, len(line) - 2)]

    def _heartbeat(self, t: int, index: int) -> Line:
        name, total = CLUSTERS[index]
        down = max(0, min(total, self._down[name] + self._rng.choice((-1, 0, 0, 0, 1))))
        self._down[name] = down
        self._later(t, 9.5, 10.5, self._heartbeat, index)
        record = {"cluster": name, "state": "up" if down < total // 20 else "degraded",
                  "nodes_total": total, "nodes_down": down,
                  "running_jobs": self._n(total // 4, total),
                  "queued_jobs": self._n(0, total // 2)}  # fmt: skip
        return self._json_record(t, "cluster", f"{name}-{CONTROLLER}", record)
