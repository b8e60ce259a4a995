# ruff: noqa: E501  (the log lines it writes are long; they stay whole to be read)
"""Writes the reference corpora and their goldens (see README.md); run it from the repository root
with ``python tests/corpora/generate.py``. Kept so that how the files were made can be read: the
files it wrote, reviewed by hand, are the reference, not this script.

Why a script and not hand-typed files: each corpus is a few hundred lines a day, and its golden
must list every record. The script writes each record as a unit (a single line, or the lines of
one trace) and notes its line numbers, program and host as it writes them, so the golden says
what a person means by "one record" (a whole trace, nothing glued to it) by construction. It
never imports logfactory: the goldens owe nothing to the sort stage they check.

Values (users, pids, addresses, ports, job ids, times) come from a seeded random generator, so
re-running the script writes the same files.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Corpus:
    """The lines of one day's file and its records (1-based line numbers)."""

    lines: list[str] = field(default_factory=list)
    records: list[dict[str, object]] = field(default_factory=list)

    def add(self, text: str) -> int:
        assert "\n" not in text, text
        assert text == text.rstrip(), text
        self.lines.append(text)
        return len(self.lines)

    def blank(self) -> None:
        self.lines.append("")

    def record(self, numbers: list[int], program: str | None, host: str, new: bool) -> None:
        rec: dict[str, object] = {
            "first": numbers[0],
            "last": numbers[-1],
            "program": program,
            "host": host,
        }
        if numbers != list(range(numbers[0], numbers[-1] + 1)):
            rec["lines"] = numbers
        if new:
            rec["new"] = True
        self.records.append(rec)

    def single(self, text: str, program: str | None, host: str, new: bool = False) -> None:
        self.record([self.add(text)], program, host, new)

    def trace(
        self,
        lines: Sequence[str],
        program: str | None,
        host: str,
        *,
        between: dict[int, list[tuple[str, str | None, str]]] | None = None,
        new: bool = False,
    ) -> None:
        """One record of ``lines``; ``between[i]``: other programs' single lines written just
        before ``lines[i]`` (i >= 2: a trace's first two lines are written together). An empty
        string in ``lines`` is a blank line of the file: no line of any record."""
        numbers: list[int] = []
        for i, text in enumerate(lines):
            for other in (between or {}).get(i, []):
                assert i >= 2, "another program's line inside a trace's first two lines"
                self.single(*other)
            if text == "":
                self.blank()
            else:
                numbers.append(self.add(text))
        self.record(numbers, program, host, new)

    def write(self, directory: Path, day: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"day{day}.log").write_text("\n".join(self.lines) + "\n")
        records = sorted(self.records, key=lambda r: int(str(r["first"])))
        covered = sorted(n for r in records for n in _numbers(r))
        assert covered == [n for n, t in enumerate(self.lines, 1) if t], "a line in no record"
        with (directory / f"day{day}.golden.jsonl").open("w") as fh:
            for rec in records:
                fh.write(json.dumps(rec) + "\n")


def _numbers(rec: dict[str, object]) -> list[int]:
    lines = rec.get("lines")
    if isinstance(lines, list):
        return [int(n) for n in lines]
    return list(range(int(str(rec["first"])), int(str(rec["last"])) + 1))


class Clock:
    """Time of day in seconds, moving forward."""

    def __init__(self, rng: random.Random, day: int, start: int = 0) -> None:
        self.rng, self.day, self.t = rng, day + 5, start  # day 1 is Dec 6

    def tick(self, low: int = 1, high: int = 120) -> None:
        self.t += self.rng.randint(low, high)

    def hms(self) -> tuple[int, int, int]:
        t = min(self.t, 86399)
        return t // 3600, t // 60 % 60, t % 60

    def syslog(self) -> str:
        h, m, s = self.hms()
        return f"Dec {self.day:>2} {h:02}:{m:02}:{s:02}"

    def iso(self, sep: str = "T", frac: str = ".") -> str:
        h, m, s = self.hms()
        ms = self.rng.randint(0, 999)
        return f"2026-12-{self.day:02}{sep}{h:02}:{m:02}:{s:02}{frac}{ms:03}"


def sl(clock: Clock, host: str, program: str, pid: int | None, message: str) -> str:
    tag = program if pid is None else f"{program}[{pid}]"
    return f"{clock.syslog()} {host} {tag}: {message}"


USERS = {"alice": 1000, "bob": 1001, "carol": 1002, "dave": 1003, "erin": 1004, "frank": 1005}
KEYS = {
    "alice": "RSA SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
    "bob": "ED25519 SHA256:3zKkq9TgY2cP0lQd1WbqHf5n8Vv7sRr6oXyJmNaLbE4",
    "carol": "RSA SHA256:Pq8m2vN0r5sT7uW9xY1zA3bC4dE6fG8hJ0kL2mN4pQ6",
    "dave": "ED25519 SHA256:b7GkP1wQ9eR3tY5uI2oP4aS6dF8gH0jK1lZ3xC5vB7n",
    "erin": "RSA SHA256:Mx2nB4vC6xZ8lK0jH2gF4dS6aP8oI0uY2tR4eW6qQ1s",
    "frank": "ED25519 SHA256:Tz9yX7wV5uT3sR1qP9oN7mL5kJ3iH1gF9eD7cB5aZ3y",
}
ADMINS = ["alice", "bob", "carol"]
# lines a day: day 1 is the history learned, day 2 the day matched against it
LENGTH = {1: 700, 2: 360}
SUDO = [  # (user, command, pwd): what each admin runs, day after day
    ("alice", "/usr/bin/systemctl restart slurmd", "/home/alice"),
    ("alice", "/usr/bin/journalctl -u slurmctld --since today", "/home/alice"),
    ("alice", "/usr/sbin/scontrol update nodename=cn07 state=resume", "/home/alice"),
    ("bob", "/usr/bin/systemctl restart slurmd", "/home/bob"),
    ("bob", "/usr/bin/apt update", "/home/bob"),
    ("bob", "/usr/sbin/scontrol update nodename=cn03 state=resume", "/etc/slurm"),
    ("carol", "/usr/bin/tail -n 200 /var/log/slurm/slurmctld.log", "/home/carol"),
    ("carol", "/usr/bin/apt update", "/root"),
    ("carol", "/usr/bin/journalctl -u slurmctld --since today", "/home/carol"),
]
INVALID = ["admin", "oracle", "test", "ubuntu", "postgres", "git", "ftpuser", "deploy", "user"]


def ip(rng: random.Random, net: str = "") -> str:
    if net:
        return f"{net}.{rng.randint(2, 250)}"
    first = rng.choice([45, 61, 103, 138, 159, 185, 193, 218])
    return f"{first}.{rng.randint(1, 254)}.{rng.randint(0, 254)}.{rng.randint(1, 254)}"


# -- auth.log: one login node, Debian/Ubuntu style ---------------------------------------------
def auth(day: int) -> Corpus:
    rng = random.Random(100 + day)
    c, clock, host = Corpus(), Clock(rng, day), "login01"
    sessions = 4000 + day * 311
    pid = 20000 + day * 5000
    open_users: set[str] = set()

    def nextpid() -> int:
        nonlocal pid
        pid += rng.randint(1, 40)
        return pid

    def auth_line(program: str, p: int | None, message: str, new: bool = False) -> None:
        c.single(sl(clock, host, program, p, message), program, host, new)

    def login() -> None:
        nonlocal sessions
        user = rng.choice([*USERS, *ADMINS])  # the admins log in most
        p, addr, port = nextpid(), ip(rng, "10.1.4"), rng.randint(40000, 65000)
        uid = USERS[user]
        if rng.random() < 0.7:
            auth_line(
                "sshd",
                p,
                f"Accepted publickey for {user} from {addr} port {port} ssh2: {KEYS[user]}",
            )
        else:
            auth_line("sshd", p, f"Accepted password for {user} from {addr} port {port} ssh2")
        auth_line(
            "sshd",
            p,
            f"pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)",
        )
        sessions += 1
        auth_line("systemd-logind", 812, f"New session {sessions} of user {user}.")
        if user not in open_users:
            auth_line(
                "systemd",
                nextpid(),
                "pam_unix(systemd-user:session): session opened for "
                f"user {user}(uid={uid}) by (uid=0)",
            )
            open_users.add(user)
        clock.tick(5, 60)
        if user in ADMINS and rng.random() < 0.8:
            for _ in range(rng.randint(1, 2)):
                sudo(user)
        if rng.random() < 0.25:
            su(user)
        clock.tick(20, 300)
        auth_line(
            "sshd", p, f"Received disconnect from {addr} port {port}:11: disconnected by user"
        )
        auth_line("sshd", p, f"Disconnected from user {user} {addr} port {port}")
        auth_line("sshd", p, f"pam_unix(sshd:session): session closed for user {user}")
        auth_line(
            "systemd-logind", 812, f"Session {sessions} logged out. Waiting for processes to exit."
        )
        auth_line("systemd-logind", 812, f"Removed session {sessions}.")

    todo = list(SUDO)  # each admin's usual commands: every one of them runs each day

    def sudo(user: str) -> None:
        mine = [s for s in todo if s[0] == user] or [s for s in SUDO if s[0] == user]
        _, command, pwd = chosen = rng.choice(mine)
        if chosen in todo:
            todo.remove(chosen)
        if rng.random() < 0.6:  # the scanners never stop: an sshd line right before sudo's
            auth_line(
                "sshd",
                nextpid(),
                f"Received disconnect from {ip(rng)} port "
                f"{rng.randint(30000, 65000)}:11: Bye Bye [preauth]",
            )
        tty = f"pts/{rng.randint(0, 6)}"
        auth_line(
            "sudo", None, f"{user:>8} : TTY={tty} ; PWD={pwd} ; USER=root ; COMMAND={command}"
        )
        auth_line(
            "sudo",
            None,
            "pam_unix(sudo:session): session opened for user root(uid=0) by "
            f"{user}(uid={USERS[user]})",
        )
        clock.tick(0, 3)
        auth_line("sudo", None, "pam_unix(sudo:session): session closed for user root")

    def su(user: str) -> None:
        p, tty = nextpid(), f"pts/{rng.randint(0, 6)}"
        auth_line("su", p, f"(to root) {user} on {tty}")
        auth_line(
            "su",
            p,
            "pam_unix(su-l:session): session opened for user root(uid=0) by "
            f"{user}(uid={USERS[user]})",
        )
        clock.tick(10, 90)
        auth_line("su", p, "pam_unix(su-l:session): session closed for user root")

    def attack() -> None:
        addr = ip(rng)
        for _ in range(rng.randint(1, 3)):
            p, port, name = nextpid(), rng.randint(30000, 65000), rng.choice(INVALID)
            auth_line("sshd", p, f"Invalid user {name} from {addr} port {port}")
            auth_line("sshd", p, "pam_unix(sshd:auth): check pass; user unknown")
            auth_line(
                "sshd",
                p,
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 "
                f"euid=0 tty=ssh ruser= rhost={addr}",
            )
            clock.tick(1, 3)
            auth_line(
                "sshd", p, f"Failed password for invalid user {name} from {addr} port {port} ssh2"
            )
            auth_line(
                "sshd", p, f"Received disconnect from {addr} port {port}:11: Bye Bye [preauth]"
            )
            auth_line(
                "sshd", p, f"Disconnected from invalid user {name} {addr} port {port} [preauth]"
            )
            clock.tick(1, 5)
        if rng.random() < 0.5:
            p, port = nextpid(), rng.randint(30000, 65000)
            auth_line(
                "sshd",
                p,
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 "
                f"euid=0 tty=ssh ruser= rhost={addr}  user=root",
            )
            auth_line("sshd", p, f"Failed password for root from {addr} port {port} ssh2")
            auth_line(
                "sshd",
                p,
                f"Connection closed by authenticating user root {addr} port {port} [preauth]",
            )
        if rng.random() < 0.3:
            auth_line(
                "sshd",
                nextpid(),
                "error: kex_exchange_identification: Connection closed by remote host",
            )
            auth_line("sshd", pid, f"Connection closed by {addr} port {rng.randint(30000, 65000)}")

    def cron() -> None:
        p = nextpid()
        auth_line(
            "CRON", p, "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"
        )
        clock.tick(0, 2)
        auth_line("CRON", p, "pam_unix(cron:session): session closed for user root")

    new = {8: "maxauth", 16: "faillock", 24: "notsudoer"} if day == 2 else {}
    step = 0
    while len(c.lines) < LENGTH[day]:
        clock.tick(30, 500)
        step += 1
        kind = new.get(step)
        if kind == "maxauth":  # day 2: the genuinely new messages
            p, addr = nextpid(), ip(rng)
            auth_line(
                "sshd",
                p,
                f"error: maximum authentication attempts exceeded for root from "
                f"{addr} port {rng.randint(30000, 65000)} ssh2 [preauth]",
                new=True,
            )
            auth_line(
                "sshd",
                p,
                f"Disconnecting authenticating user root {addr} port "
                f"{rng.randint(30000, 65000)}: Too many authentication failures [preauth]",
                new=True,
            )
        elif kind == "faillock":
            auth_line(
                "sshd",
                nextpid(),
                "pam_faillock(sshd:auth): Consecutive login failures "
                "for user frank account temporarily locked",
                new=True,
            )
        elif kind == "notsudoer":
            auth_line(
                "sudo",
                None,
                f"{'dave':>8} : user NOT in sudoers ; TTY=pts/2 ; "
                "PWD=/home/dave ; USER=root ; COMMAND=/bin/bash",
                new=True,
            )
        r = rng.random()
        if r < 0.45:
            login()
        elif r < 0.75:
            attack()
        else:
            cron()
    assert day == 2 or not todo, f"day 1 lacks the sudo commands {todo}"
    return c


# -- messages: a central loghost's /var/log/messages (RHEL style, several hosts) ------------------
NODES = ["cn01", "cn02", "cn03", "cn04"]
ALL_HOSTS = [*NODES, "login01", "mgmt01"]


def messages(day: int) -> Corpus:
    rng = random.Random(200 + day)
    c, clock = Corpus(), Clock(rng, day)
    pids = {h: 1000 + i * 97 for i, h in enumerate(ALL_HOSTS)}

    def nextpid(host: str) -> int:
        pids[host] += rng.randint(1, 30)
        return pids[host]

    def line(host: str, program: str, pid: int | None, message: str) -> tuple[str, str, str]:
        return sl(clock, host, program, pid, message), program, host

    def one(host: str, program: str, pid: int | None, message: str, new: bool = False) -> None:
        c.single(*line(host, program, pid, message), new=new)

    def routine(host: str) -> tuple[str, int | None, str]:
        """One routine line of ``host``: (program, pid, message) plus nothing else."""
        r = rng.random()
        node = host.startswith("cn")
        if r < 0.12:
            return "CROND", nextpid(host), "(root) CMD (/usr/lib64/sa/sa1 1 1)"
        if r < 0.2:
            addr = f"10.1.0.{ALL_HOSTS.index(host) + 11}"
            xid = f"0x{rng.getrandbits(32):08x}"
            return (
                "dhclient",
                1820,
                rng.choice(
                    [
                        f"DHCPREQUEST on eno1 to 10.1.0.1 port 67 (xid={xid})",
                        f"DHCPACK from 10.1.0.1 (xid={xid})",
                        f"bound to {addr} -- renewal in {rng.randint(1500, 1800)} seconds.",
                    ]
                ),
            )
        if r < 0.28:
            stamp = f"{1796500000 + day * 86400 + clock.t}.{rng.randint(0, 9999):04}"
            return (
                "NetworkManager",
                1034,
                rng.choice(
                    [
                        f"<info>  [{stamp}] dhcp4 (eno1): state changed new lease, address=10.1.0."
                        f"{ALL_HOSTS.index(host) + 11}",
                        f"<info>  [{stamp}] device (ib0): carrier: link connected",
                        f"<info>  [{stamp}] manager: NetworkManager state is now CONNECTED_SITE",
                    ]
                ),
            )
        if r < 0.4:
            user = rng.choice(list(USERS))
            uid = USERS[user]
            return (
                "systemd",
                1,
                rng.choice(
                    [
                        f"Started Session {rng.randint(100, 9999)} of User {user}.",
                        f"Created slice User Slice of UID {uid}.",
                        f"Starting User Manager for UID {uid}...",
                        f"Started User Manager for UID {uid}.",
                        f"Stopping User Manager for UID {uid}...",
                        f"user@{uid}.service: Deactivated successfully.",
                        f"Removed slice User Slice of UID {uid}.",
                        "Starting dnf makecache...",
                        "dnf-makecache.service: Deactivated successfully.",
                        "Finished dnf makecache.",
                        "Starting system activity accounting tool...",
                        "sysstat-collect.service: Deactivated successfully.",
                        "Finished system activity accounting tool.",
                    ]
                ),
            )
        if r < 0.48:
            return (
                "chronyd",
                880,
                rng.choice(
                    [
                        "Selected source 10.1.0.2 (ntp1.example.org)",
                        f"Source 10.1.0.3 replaced with 10.1.0.{rng.randint(4, 9)} (ntp2.example.org)",
                        f"System clock wrong by {rng.uniform(0.5, 3):.6f} seconds",
                    ]
                ),
            )
        if r < 0.56:
            return (
                "rsyslogd",
                1012,
                rng.choice(
                    [
                        '[origin software="rsyslogd" swVersion="8.2102.0-117.el9" x-pid="1012" '
                        'x-info="https://www.rsyslog.com"] rsyslogd was HUPed',
                        f"imjournal: {rng.randint(2000, 90000)} messages lost due to rate-limiting "
                        "(20000 allowed within 600 seconds)",
                    ]
                ),
            )
        if r < 0.7 and node:
            job = 48000 + day * 1000 + rng.randint(0, 900)
            user = rng.choice(list(USERS))
            return (
                "slurmd",
                2210,
                rng.choice(
                    [
                        f"launch task StepId={job}.0 request from UID:{USERS[user]} GID:{USERS[user]} "
                        f"HOST:10.1.0.{rng.randint(11, 20)} PORT:{rng.randint(30000, 60000)}",
                        f"task/affinity: lllp_distribution: JobId={job} auto binding off: mask_cpu",
                        f"[{job}.batch] done with job",
                        f"_run_prolog: prolog with lock for job {job} ran for 0 seconds",
                    ]
                ),
            )
        if r < 0.82:
            return (
                "kernel",
                None,
                rng.choice(
                    [
                        f"perf: interrupt took too long ({rng.randint(2501, 9000)} > 2500), lowering "
                        f"kernel.perf_event_max_sample_rate to {rng.choice([79000, 63000, 50000])}",
                        "nfs: server nfs01 not responding, still trying",
                        "nfs: server nfs01 OK",
                        f"CPU{rng.choice([4, 12])}: Core temperature above threshold, cpu clock throttled "
                        f"(total events = {rng.randint(1, 400)})",
                        f"CPU{rng.choice([4, 12])}: Core temperature/speed normal",
                        "e1000e: eno1 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
                    ]
                ),
            )
        return (
            "smartd",
            930,
            rng.choice(
                [
                    f"Device: /dev/sda [SAT], SMART Usage Attribute: 194 Temperature_Celsius changed from "
                    f"{rng.randint(30, 40)} to {rng.randint(30, 40)}",
                    f"Device: /dev/sdb [SAT], SMART Usage Attribute: 190 Airflow_Temperature_Cel changed "
                    f"from {rng.randint(60, 70)} to {rng.randint(60, 70)}",
                ]
            ),
        )

    def other() -> tuple[str, str, str]:
        host = rng.choice(ALL_HOSTS)
        program, pid, message = routine(host)
        return line(host, program, pid, message)

    def python_trace(host: str) -> None:
        p, job = nextpid(host), 48000 + day * 1000 + rng.randint(0, 900)
        body = [
            f"job {job} epilog failed",
            "Traceback (most recent call last):",
            '  File "/opt/site/epilog/cleanup.py", line 88, in main',
            "    purge_scratch(job_id)",
            '  File "/opt/site/epilog/cleanup.py", line 41, in purge_scratch',
            "    shutil.rmtree(path)",
            '  File "/usr/lib64/python3.9/shutil.py", line 734, in rmtree',
            "    onerror(os.rmdir, path, sys.exc_info())",
            f"OSError: [Errno 39] Directory not empty: '/scratch/job_{job}'",
        ]
        c.trace(
            [sl(clock, host, "epilog.py", p, m) for m in body],
            "epilog.py",
            host,
            between={3: [other()], 7: [other(), other()]},
        )

    def java_trace(host: str, new: bool = False) -> None:
        p = 3120
        if new:
            head = "ERROR c.e.p.SlurmClient - slurmrestd answered 500 for job submission"
            exc = (
                "org.springframework.web.client.HttpServerErrorException$InternalServerError: "
                '500 Internal Server Error: "{"errors":[{"error":"Unable to contact slurm '
                'controller"}]}"'
            )
        else:
            job = 48000 + rng.randint(0, 999)
            head = f"ERROR c.e.p.JobController - status query for job {job} failed"
            exc = "java.net.ConnectException: Connection refused"
        body = [
            head,
            exc,
            "#011at java.base/sun.nio.ch.Net.connect0(Native Method)",
            "#011at java.base/sun.nio.ch.Net.connect(Net.java:579)",
            "#011at java.base/java.net.Socket.connect(Socket.java:633)",
            "#011at com.example.portal.SlurmClient.query(SlurmClient.java:118)",
            "#011at com.example.portal.JobController.status(JobController.java:57)",
            "#011... 48 common frames omitted",
        ]
        c.trace(
            [sl(clock, host, "java", p, m) for m in body],
            "java",
            host,
            between={4: [other()]},
            new=new,
        )

    def segfault(host: str) -> None:
        victim = rng.choice(["python3", "lmp_mpi", "gmx_mpi", "vasp_std"])
        vp = rng.randint(10000, 99999)
        ip_ = f"00007f{rng.getrandbits(24):06x}{rng.getrandbits(16):04x}"
        lines = [
            f"{victim}[{vp}]: segfault at 8 ip {ip_} sp 00007ffd9a3c2e50 error 4 in "
            f"libmpi.so.40.30.2[7f3c2a1a0000+1b5000] likely on CPU {rng.randint(0, 31)} "
            f"(core {rng.randint(0, 15)}, socket 0)",
            "Code: 48 8b 47 08 48 85 c0 74 0d 48 8b 40 10 c3 66 0f 1f 44 00 00 31 c0 c3 0f 1f 40 "
            "00 <48> 8b 47 08 c3 66 2e 0f 1f 84 00 00 00 00 00",
        ]
        c.trace([sl(clock, host, "kernel", None, m) for m in lines], "kernel", host)

    new = {25: "edac", 60: "failstart", 95: "java", 120: "chrony"} if day == 2 else {}
    step = 0
    while len(c.lines) < LENGTH[day]:
        clock.tick(5, 240)
        step += 1
        kind = new.get(step)
        h = rng.choice(NODES)
        if kind == "edac":
            one(
                h,
                "kernel",
                None,
                "EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_"
                "DIMM#0 (channel:1 slot:0 page:0x4f2a1 offset:0x0 grain:32 syndrome:0x0 - area:DRAM "
                "err_code:0101:0091 socket:0 ha:0 channel_mask:2 rank:1)",
                new=True,
            )
        elif kind == "failstart":
            one(
                h,
                "systemd",
                1,
                "slurmd.service: Main process exited, code=exited, status=1/FAILURE",
                new=True,
            )
            one(h, "systemd", 1, "slurmd.service: Failed with result 'exit-code'.", new=True)
            one(h, "systemd", 1, "Failed to start Slurm node daemon.", new=True)
        elif kind == "java":
            java_trace("login01", new=True)
        elif kind == "chrony":
            one("mgmt01", "chronyd", 880, "Can't synchronise: no selectable sources", new=True)
        r = rng.random()
        if r < 0.04:
            python_trace(rng.choice(NODES))
        elif r < 0.07:
            java_trace("login01")
        elif r < 0.1:
            segfault(rng.choice(NODES))
        else:
            host = rng.choice(ALL_HOSTS)
            one(host, *routine(host))
    return c


# -- kernel: compute nodes' stream with uptimes, oopses interleaved with other programs ------------
K_NODES = ["cn11", "cn12", "cn13", "cn14", "cn15", "cn16"]


def oops_null(up: Callable[[], str], comm: str, pid: int) -> list[str]:
    return [
        f"{up()}BUG: kernel NULL pointer dereference, address: 0000000000000008",
        f"{up()}#PF: supervisor read access in kernel mode",
        f"{up()}#PF: error_code(0x0000) - not-present page",
        f"{up()}PGD 0 P4D 0",
        f"{up()}Oops: 0000 [#1] PREEMPT SMP NOPTI",
        f"{up()}CPU: 12 PID: {pid} Comm: {comm} Kdump: loaded Tainted: G           OE     "
        "5.14.0-427.13.1.el9_4.x86_64 #1",
        f"{up()}Hardware name: Dell Inc. PowerEdge R650/0Y2G81, BIOS 1.8.2 09/14/2022",
        f"{up()}RIP: 0010:ll_file_release+0x2c/0x1d0 [lustre]",
        f"{up()}Code: 0f 1f 44 00 00 41 57 41 56 41 55 41 54 55 48 89 f5 53 48 8b 46 20 <48> 8b "
        "40 08 48 85 c0 0f 84 f8 00 00 00",
        f"{up()}RSP: 0018:ffffb53c4d8afe18 EFLAGS: 00010246",
        f"{up()}RAX: 0000000000000000 RBX: ffff9a3f8c2b4e00 RCX: 0000000000000000",
        f"{up()}RDX: 0000000000000001 RSI: ffff9a3f8c2b4e00 RDI: ffff9a3e81f6a7c0",
        f"{up()}RBP: ffff9a3f8c2b4e00 R08: 0000000000000000 R09: ffff9a3e80000000",
        f"{up()}R10: 0000000000000000 R11: 0000000000000000 R12: ffff9a3e81f6a7c0",
        f"{up()}R13: ffff9a3e9c4c1020 R14: ffff9a3f0d1b6f00 R15: 0000000000000000",
        f"{up()}FS:  00007f2b1e7fc740(0000) GS:ffff9a6e7fd00000(0000) knlGS:0000000000000000",
        f"{up()}CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033",
        f"{up()}CR2: 0000000000000008 CR3: 000000208a4f2005 CR4: 00000000007706e0",
        f"{up()}PKRU: 55555554",
        f"{up()}Call Trace:",
        f"{up()} <TASK>",
        f"{up()} __fput+0x8f/0x290",
        f"{up()} task_work_run+0x5c/0x90",
        f"{up()} exit_to_user_mode_prepare+0x1d8/0x1e0",
        f"{up()} syscall_exit_to_user_mode+0x17/0x40",
        f"{up()} do_syscall_64+0x69/0x90",
        f"{up()} entry_SYSCALL_64_after_hwframe+0x63/0xcd",
        f"{up()} </TASK>",
        f"{up()}Modules linked in: lustre(OE) lmv(OE) mdc(OE) lov(OE) osc(OE) fid(OE) fld(OE) "
        "ko2iblnd(OE) ptlrpc(OE) obdclass(OE) lnet(OE) libcfs(OE) mlx5_ib ib_uverbs mlx5_core",
        f"{up()}CR2: 0000000000000008",
        f"{up()}---[ end trace 0000000000000000 ]---",
    ]


def oops_warning(up: Callable[[], str], pid: int) -> list[str]:
    return [
        f"{up()}------------[ cut here ]------------",
        f"{up()}WARNING: CPU: 7 PID: {pid} at fs/xfs/xfs_buf.c:1582 xfs_buf_ioend+0x1a9/0x1f0 "
        "[xfs]",
        f"{up()}Modules linked in: xfs libcrc32c mlx5_ib ib_uverbs mlx5_core sd_mod sg",
        f"{up()}CPU: 7 PID: {pid} Comm: kworker/7:1H Tainted: G           OE     "
        "5.14.0-427.13.1.el9_4.x86_64 #1",
        f"{up()}Hardware name: Dell Inc. PowerEdge R650/0Y2G81, BIOS 1.8.2 09/14/2022",
        f"{up()}Workqueue: xfs-buf/dm-0 xfs_buf_ioend_work [xfs]",
        f"{up()}RIP: 0010:xfs_buf_ioend+0x1a9/0x1f0 [xfs]",
        f"{up()}Call Trace:",
        f"{up()} <TASK>",
        f"{up()} process_one_work+0x1e5/0x3b0",
        f"{up()} worker_thread+0x50/0x3a0",
        f"{up()} kthread+0xd6/0x100",
        f"{up()} ret_from_fork+0x1f/0x30",
        f"{up()} </TASK>",
        f"{up()}---[ end trace 1b2c3d4e5f607182 ]---",
    ]


def soft_lockup(up: Callable[[], str], cpu: int, pid: int) -> list[str]:
    return [
        f"{up()}watchdog: BUG: soft lockup - CPU#{cpu} stuck for 22s! [ptlrpcd_01_03:{pid}]",
        f"{up()}Modules linked in: lustre(OE) lmv(OE) mdc(OE) osc(OE) ptlrpc(OE) obdclass(OE) "
        "lnet(OE) libcfs(OE) mlx5_ib mlx5_core",
        f"{up()}CPU: {cpu} PID: {pid} Comm: ptlrpcd_01_03 Kdump: loaded Tainted: G           OEL"
        "    5.14.0-427.13.1.el9_4.x86_64 #1",
        f"{up()}Hardware name: Dell Inc. PowerEdge R650/0Y2G81, BIOS 1.8.2 09/14/2022",
        f"{up()}RIP: 0010:native_queued_spin_lock_slowpath+0x21e/0x2b0",
        f"{up()}Call Trace:",
        f"{up()} <IRQ>",
        f"{up()} ? watchdog_timer_fn+0x1b4/0x220",
        f"{up()} __hrtimer_run_queues+0x127/0x2c0",
        f"{up()} </IRQ>",
        f"{up()} <TASK>",
        f"{up()} _raw_spin_lock+0x25/0x30",
        f"{up()} ptlrpc_check_set+0x4e1/0x1e90 [ptlrpc]",
        f"{up()} ptlrpcd+0x6a3/0x9c0 [ptlrpc]",
        f"{up()} </TASK>",
    ]


def hung_task(up: Callable[[], str], pid: int) -> list[str]:
    return [
        f"{up()}INFO: task jbd2/sda1-8:{pid} blocked for more than 122 seconds.",
        f"{up()}      Tainted: G           OE     5.14.0-427.13.1.el9_4.x86_64 #1",
        f'{up()}"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
        f"{up()}task:jbd2/sda1-8     state:D stack:0     pid:{pid}   ppid:2      flags:0x00004000",
        f"{up()}Call Trace:",
        f"{up()} <TASK>",
        f"{up()} __schedule+0x21d/0x690",
        f"{up()} schedule+0x5a/0xc0",
        f"{up()} jbd2_journal_commit_transaction+0x2f3/0x1a30 [jbd2]",
        f"{up()} kjournald2+0xaf/0x280 [jbd2]",
        f"{up()} </TASK>",
    ]


def kernel(day: int) -> Corpus:
    rng = random.Random(300 + day)
    c, clock = Corpus(), Clock(rng, day)
    boot = {h: rng.randint(1000, 900000) for h in K_NODES}

    last = dict.fromkeys(K_NODES, 0)

    def up_of(host: str) -> Callable[[], str]:
        def up() -> str:  # microseconds since boot, moving forward
            now = (boot[host] + day * 86400 + clock.t) * 1_000_000
            last[host] = max(now + rng.randint(0, 999), last[host] + rng.randint(3, 300))
            return f"[{last[host] // 1_000_000:>5}.{last[host] % 1_000_000:06}] "

        return up

    def kline(host: str, message: str) -> str:
        return sl(clock, host, "kernel", None, up_of(host)() + message)

    def routine() -> tuple[str, str, str]:
        host = rng.choice(K_NODES)
        r = rng.random()
        if r < 0.45:
            ost = f"scratch-OST000{rng.randint(0, 3)}"  # a small scratch file system
            lustre = rng.choice(
                [
                    f"Lustre: {ost}-osc-ffff9a3e81f6a000: Connection to {ost} (at 10.2.0."
                    f"{rng.randint(10, 30)}@o2ib) "
                    "was lost; in progress operations using this service will wait for recovery to "
                    "complete",
                    f"Lustre: {ost}-osc-ffff9a3e81f6a000: Connection restored to 10.2.0."
                    f"{rng.randint(10, 30)}@o2ib (at 10.2.0.{rng.randint(10, 30)}@o2ib)",
                    f"LustreError: 11-0: scratch-MDT0000-mdc-ffff9a3e81f6a000: operation mds_connect "
                    f"to node 10.2.0.10@o2ib failed: rc = -{rng.choice([16, 114])}",
                    "LustreError: 167-0: scratch-OST0004-osc-ffff9a3e81f6a000: This client was evicted "
                    "by scratch-OST0004; in progress operations using this service will fail.",
                    "nfs: server nfs01 not responding, still trying",
                    "nfs: server nfs01 OK",
                    f"perf: interrupt took too long ({rng.randint(2501, 9000)} > 2500), lowering "
                    f"kernel.perf_event_max_sample_rate to {rng.choice([79000, 63000, 50000])}",
                    f"mlx5_core 0000:3b:00.0: mlx5_cmd_out_err:{rng.choice([803, 838])}:(pid "
                    f"{rng.randint(1000, 9999)}): ACCESS_REG(0x805) op_mod(0x1) failed, status bad "
                    "parameter(0x3), syndrome (0x6dbf7b), err(-22)",
                ]
            )
            return kline(host, lustre), "kernel", host
        if r < 0.65:
            job = 48000 + day * 1000 + rng.randint(0, 900)
            return (
                sl(
                    clock,
                    host,
                    "slurmd",
                    2210,
                    rng.choice(
                        [
                            f"launch task StepId={job}.0 request from UID:{rng.choice(list(USERS.values()))} "
                            f"GID:100 HOST:10.1.0.{rng.randint(11, 20)} PORT:{rng.randint(30000, 60000)}",
                            f"[{job}.batch] done with job",
                            f"[{job}.0] done with job",
                        ]
                    ),
                ),
                "slurmd",
                host,
            )
        if r < 0.8:
            return (
                sl(
                    clock,
                    host,
                    "systemd",
                    1,
                    rng.choice(
                        [
                            f"Started Session {rng.randint(100, 9999)} of User root.",
                            "Starting system activity accounting tool...",
                            "sysstat-collect.service: Deactivated successfully.",
                            "Finished system activity accounting tool.",
                        ]
                    ),
                ),
                "systemd",
                host,
            )
        if r < 0.9:
            return (
                sl(
                    clock,
                    host,
                    "CROND",
                    rng.randint(10000, 99999),
                    "(root) CMD (/usr/lib64/sa/sa1 1 1)",
                ),
                "CROND",
                host,
            )
        return (
            kline(
                host,
                rng.choice(
                    [
                        f"LNet: {rng.randint(3000, 9000)}:0:(o2iblnd_cb.c:3369:kiblnd_check_conns()) Timed out "
                        f"tx for 10.2.0.{rng.randint(10, 30)}@o2ib: 4 seconds",
                        f"LNetError: {rng.randint(3000, 9000)}:0:(o2iblnd_cb.c:3444:kiblnd_check_conns()) "
                        f"Timed out RDMA with 10.2.0.{rng.randint(10, 30)}@o2ib (0): c: 0, oc: 0, rc: 8",
                    ]
                ),
            ),
            "kernel",
            host,
        )

    def report(host: str, lines: list[str], new: bool = False) -> None:
        # other nodes' (and this node's other programs') lines interleave once the report is
        # two lines in, as on a loghost that receives them all
        # (never a kernel line of the same node: nothing could tell it from the report's own)
        def other() -> tuple[str, str, str]:
            while (line := routine())[1:] == ("kernel", host):
                pass
            return line

        between: dict[int, list[tuple[str, str | None, str]]] = {
            i: [other()] for i in range(2, len(lines)) if rng.random() < 0.15
        }
        c.trace(
            [sl(clock, host, "kernel", None, m) for m in lines],
            "kernel",
            host,
            between=between,
            new=new,
        )

    new = {45: "mce", 110: "softlockup"} if day == 2 else {}
    step = 0
    while len(c.lines) < LENGTH[day]:
        clock.tick(5, 300)
        step += 1
        kind = new.get(step)
        if kind == "mce":
            host = rng.choice(K_NODES)
            c.single(
                kline(host, "mce: [Hardware Error]: Machine check events logged"),
                "kernel",
                host,
                new=True,
            )
            c.single(
                kline(host, "EDAC skx MC1: HANDLING MCE MEMORY ERROR"), "kernel", host, new=True
            )
        elif kind == "softlockup":
            host = rng.choice(K_NODES)
            report(
                host,
                soft_lockup(up_of(host), rng.randint(0, 31), rng.randint(3000, 9000)),
                new=True,
            )
        r = rng.random()
        host = rng.choice(K_NODES)
        if step in (30, 150) or (step > 30 and r < 0.02):
            report(
                host,
                oops_null(
                    up_of(host), rng.choice(["python3", "lmp_mpi"]), rng.randint(10000, 99999)
                ),
            )
        elif step in (60, 170) or r < 0.04:
            report(host, oops_warning(up_of(host), rng.randint(300, 900)))
        elif step in (90, 190) or r < 0.06:
            report(host, hung_task(up_of(host), rng.randint(300, 900)))
        else:
            c.single(*routine())
    return c


# -- a Java application log (Spring Boot's default layout), written by the application ------------
def java(day: int) -> Corpus:
    rng = random.Random(400 + day)
    c, clock, host = Corpus(), Clock(rng, day), "app01"
    pid = 3120 + day

    def head(level: str, thread: str, logger: str, message: str) -> str:
        return f"{clock.iso(' ')} {level:>5} {pid} --- [{thread:>15}] {logger:<40} : {message}"

    def log(level: str, logger: str, message: str, new: bool = False) -> None:
        thread = f"nio-8080-exec-{rng.randint(1, 10)}"
        c.single(head(level, thread, logger, message), None, host, new)

    def job() -> int:
        return 48000 + day * 1000 + rng.randint(0, 900)

    def trace_connect() -> list[str]:
        return [
            head(
                "ERROR",
                f"nio-8080-exec-{rng.randint(1, 10)}",
                "c.e.portal.web.JobController",
                f"Status query for job {job()} failed",
            ),
            "org.springframework.web.client.ResourceAccessException: I/O error on GET request for "
            f'"http://mgmt01:6820/slurm/v0.0.40/job/{job()}": Connection refused',
            "\tat org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:791)",
            "\tat org.springframework.web.client.RestTemplate.execute(RestTemplate.java:711)",
            "\tat com.example.portal.slurm.SlurmClient.job(SlurmClient.java:118)",
            "\tat com.example.portal.web.JobController.status(JobController.java:57)",
            "\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke("
            "DirectMethodHandleAccessor.java:103)",
            "Caused by: java.net.ConnectException: Connection refused",
            "\tat java.base/sun.nio.ch.Net.connect0(Native Method)",
            "\tat java.base/sun.nio.ch.Net.connect(Net.java:579)",
            "\tat java.base/java.net.Socket.connect(Socket.java:633)",
            "\tat org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:776)",
            "\t... 52 common frames omitted",
        ]

    def trace_db() -> list[str]:
        return [
            head(
                "ERROR",
                f"nio-8080-exec-{rng.randint(1, 10)}",
                "o.h.engine.jdbc.spi.SqlExceptionHelper",
                "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
            ),
            head(
                "ERROR",
                f"nio-8080-exec-{rng.randint(1, 10)}",
                "o.a.c.c.C.[.[.[/].[dispatcherServlet]",
                "Servlet.service() for servlet "
                "[dispatcherServlet] in context with path [] threw exception [Request processing "
                "failed: org.springframework.dao.DataAccessResourceFailureException: Unable to "
                "acquire JDBC Connection] with root cause",
            ),
            "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, "
            "request timed out after 30000ms.",
            "\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)",
            "\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:197)",
            "\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:162)",
            "\tat com.zaxxer.hikari.HikariDataSource.getConnection(HikariDataSource.java:100)",
            "\tat org.hibernate.engine.jdbc.connections.internal.DatasourceConnectionProviderImpl"
            ".getConnection(DatasourceConnectionProviderImpl.java:122)",
            "\tSuppressed: org.postgresql.util.PSQLException: Connection to db01:5432 refused.",
            "\t\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl("
            "ConnectionFactoryImpl.java:342)",
            "\t\t... 9 more",
        ]

    def trace_npe(new: bool) -> list[str]:
        if new:
            message = "Unexpected error rendering job list"
            exc = (
                'java.lang.NullPointerException: Cannot invoke "String.length()" because '
                '"user.getAccount()" is null'
            )
        else:
            message = f"Request GET /api/jobs/{job()} failed"
            exc = "java.lang.IllegalStateException: job owner is not set"
        return [
            head(
                "ERROR",
                f"nio-8080-exec-{rng.randint(1, 10)}",
                "c.e.portal.web.ErrorHandler",
                message,
            ),
            exc,
            "\tat com.example.portal.jobs.JobView.of(JobView.java:44)",
            "\tat com.example.portal.web.JobController.list(JobController.java:88)",
            "\tat java.base/java.lang.Thread.run(Thread.java:1583)",
        ]

    def start() -> None:
        c.single(
            head(
                "INFO",
                "main",
                "c.e.portal.PortalApplication",
                f"Starting PortalApplication v2.4.1 using Java 21.0.5 with PID {pid} "
                "(/opt/portal/portal.jar started by portal in /opt/portal)",
            ),
            None,
            host,
        )
        c.single(
            head(
                "INFO",
                "main",
                "o.s.b.w.embedded.tomcat.TomcatWebServer",
                "Tomcat initialized with port 8080 (http)",
            ),
            None,
            host,
        )
        c.single(
            head(
                "INFO",
                "main",
                "com.zaxxer.hikari.HikariDataSource",
                "HikariPool-1 - Start completed.",
            ),
            None,
            host,
        )
        c.single(
            head(
                "INFO",
                "main",
                "c.e.portal.PortalApplication",
                f"Started PortalApplication in {rng.uniform(8, 15):.3f} seconds (process "
                f"running for {rng.uniform(9, 16):.3f})",
            ),
            None,
            host,
        )

    start()
    new = {70: "circuit", 100: "npe"} if day == 2 else {}
    step = 0
    while len(c.lines) < LENGTH[day]:
        clock.tick(5, 200)
        step += 1
        kind = new.get(step)
        if kind == "circuit":
            log(
                "WARN",
                "i.g.r.c.i.CircuitBreakerStateMachine",
                "CircuitBreaker 'slurmrest' changed state from CLOSED to OPEN",
                new=True,
            )
        elif kind == "npe":
            c.trace(trace_npe(True), None, host, new=True)
        r = rng.random()
        user = rng.choice(list(USERS))
        if r < 0.3:
            log("INFO", "c.e.portal.web.JobController", f"Job {job()} submitted by {user}")
        elif r < 0.5:
            log(
                "INFO",
                "c.e.portal.web.JobController",
                f"Job list for {user}: {rng.randint(0, 40)} jobs in {rng.randint(3, 900)} ms",
            )
        elif r < 0.62:
            log(
                "INFO",
                "c.e.portal.security.LoginListener",
                f"User {user} logged in from {ip(rng, '10.1.4')}",
            )
        elif r < 0.7:
            log(
                "WARN",
                "c.e.portal.slurm.SlurmClient",
                f"slurmrestd slow: {rng.randint(2000, 9000)} ms for GET /slurm/v0.0.40/jobs",
            )
        elif r < 0.76:
            log("DEBUG", "o.s.web.servlet.DispatcherServlet", "Completed 200 OK")
        elif r < 0.84:
            c.trace(trace_connect(), None, host)
        elif r < 0.9:
            first, *rest = trace_db()  # the pool's own error, then the servlet's with the trace
            c.single(first, None, host)
            c.trace(rest, None, host)
        elif r < 0.95:
            c.trace(trace_npe(False), None, host)
        else:
            log(
                "INFO",
                "c.e.portal.jobs.Housekeeping",
                f"Purged {rng.randint(0, 300)} finished jobs older than 30 days",
            )
    return c


# -- a Python application log (logging's asctime levelname [name] message), with tracebacks -------
def python(day: int) -> Corpus:
    rng = random.Random(500 + day)
    c, clock, host = Corpus(), Clock(rng, day), "sched01"

    def head(level: str, name: str, message: str) -> str:
        return f"{clock.iso(' ', ',')} {level} [{name}] {message}"

    def job() -> int:
        return 48000 + day * 1000 + rng.randint(0, 900)

    def log(level: str, name: str, message: str, new: bool = False) -> None:
        c.single(head(level, name, message), None, host, new)

    def simple() -> list[str]:
        j = job()
        return [
            head("ERROR", "jobmon.accounting", f"cannot account job {j}"),
            "Traceback (most recent call last):",
            '  File "/opt/jobmon/jobmon/accounting.py", line 214, in account',
            "    cpus = int(record['AllocCPUS'])",
            "           ^^^^^^^^^^^^^^^^^^^^^^^^",
            "ValueError: invalid literal for int() with base 10: ''",
        ]

    def chained() -> list[str]:
        j = job()
        return [
            head("ERROR", "jobmon.poller", f"poll of job {j} failed"),
            "Traceback (most recent call last):",
            '  File "/opt/jobmon/venv/lib/python3.11/site-packages/urllib3/connection.py", line '
            "203, in _new_conn",
            "    sock = connection.create_connection(",
            "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            '  File "/opt/jobmon/venv/lib/python3.11/site-packages/urllib3/util/connection.py", '
            "line 85, in create_connection",
            "    raise err",
            "ConnectionRefusedError: [Errno 111] Connection refused",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            '  File "/opt/jobmon/jobmon/poller.py", line 77, in poll',
            "    reply = self.session.get(url, timeout=10)",
            "            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "requests.exceptions.ConnectionError: HTTPConnectionPool(host='mgmt01', port=6820): "
            f"Max retries exceeded with url: /slurm/v0.0.40/job/{j}",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            '  File "/opt/jobmon/jobmon/main.py", line 31, in run',
            "    poller.poll(job_id)",
            '  File "/opt/jobmon/jobmon/poller.py", line 81, in poll',
            '    raise PollError(f"poll of job {job_id} failed") from exc',
            f"jobmon.poller.PollError: poll of job {j} failed",
        ]

    def keyerror(new: bool) -> list[str]:
        if new:
            return [
                head("CRITICAL", "jobmon.db", "lost the accounting database, giving up"),
                "Traceback (most recent call last):",
                '  File "/opt/jobmon/jobmon/db.py", line 52, in execute',
                "    cur.execute(sql, args)",
                "psycopg2.OperationalError: server closed the connection unexpectedly",
                "\tThis probably means the server terminated abnormally",
                "\tbefore or while processing the request.",
            ]
        return [
            head("ERROR", "jobmon.notify", f"mail for job {job()} not sent"),
            "Traceback (most recent call last):",
            '  File "/opt/jobmon/jobmon/notify.py", line 40, in send',
            "    address = USERS[owner]['mail']",
            "              ~~~~~~~~~~~~^^^^^^^^",
            "KeyError: 'mail'",
        ]

    new = {20: "warn", 45: "db"} if day == 2 else {}
    step = 0
    log("INFO", "jobmon.main", "jobmon 3.2.0 starting, 4 workers, poll interval 30 s")
    while len(c.lines) < LENGTH[day]:
        clock.tick(5, 200)
        step += 1
        kind = new.get(step)
        if kind == "warn":
            log(
                "WARNING",
                "jobmon.poller",
                "slurmrestd answered 503 Service Unavailable, backing off 60 s",
                new=True,
            )
        elif kind == "db":
            c.trace(keyerror(True), None, host, new=True)
        r = rng.random()
        user = rng.choice(list(USERS))
        if r < 0.3:
            log(
                "INFO",
                "jobmon.poller",
                f"polled {rng.randint(0, 300)} jobs in {rng.uniform(0.05, 3):.2f} s",
            )
        elif r < 0.5:
            log(
                "INFO",
                "jobmon.accounting",
                f"job {job()} of {user} accounted: "
                f"{rng.randint(1, 512)} cpus, {rng.randint(1, 86400)} s",
            )
        elif r < 0.6:
            log(
                "DEBUG",
                "urllib3.connectionpool",
                f'http://mgmt01:6820 "GET /slurm/v0.0.40/jobs '
                f'HTTP/1.1" 200 {rng.randint(200, 90000)}',
            )
        elif r < 0.7:
            log("INFO", "jobmon.notify", f"mail for job {job()} sent to {user}@example.org")
        elif r < 0.76:
            log(
                "WARNING",
                "jobmon.poller",
                f"poll took {rng.uniform(10, 30):.1f} s, longer than the interval",
            )
        elif r < 0.84:
            c.trace(simple(), None, host)
        elif r < 0.9:
            c.trace(chained(), None, host)
        else:
            c.trace(keyerror(False), None, host)
    return c


# -- a Slurm controller log (slurmctld.log, Slurm 23) ------------------------------------------
def slurmctld(day: int) -> Corpus:
    rng = random.Random(600 + day)
    c, clock, host = Corpus(), Clock(rng, day), "mgmt01"
    next_job = 48000 + day * 1000
    running: list[tuple[int, str]] = []
    parts = ["compute", "gpu", "debug", "bigmem"]

    def log(message: str, new: bool = False) -> None:
        c.single(f"[{clock.iso()}] {message}", None, host, new)

    def nodes() -> str:
        a = rng.randint(1, 60)
        n = rng.choice([1, 1, 2, 4])
        return f"cn{a:03}" if n == 1 else f"cn[{a:03}-{a + n - 1:03}]"

    def submit() -> None:
        nonlocal next_job
        next_job += rng.randint(1, 5)
        job = next_job
        log(
            f"_slurm_rpc_submit_batch_job: JobId={job} InitPrio={rng.randint(4294800000, 4294900000)}"
            f" usec={rng.randint(300, 4000)}"
        )
        clock.tick(0, 5)
        part, where = rng.choice(parts), nodes()
        if rng.random() < 0.5:
            log(
                f"sched: Allocate JobId={job} NodeList={where} #CPUs={rng.choice([8, 32, 64, 128])}"
                f" Partition={part}"
            )
        else:
            log(f"sched/backfill: _start_job: Started JobId={job} in {part} on {where}")
        running.append((job, where))

    def finish() -> None:
        if not running:
            return
        job, _ = running.pop(rng.randrange(len(running)))
        r = rng.random()
        if r < 0.7:
            log(f"_job_complete: JobId={job} WEXITSTATUS {rng.choice([0, 0, 0, 1, 2])}")
            log(f"_job_complete: JobId={job} done")
        elif r < 0.8:
            log(f"Time limit exhausted for JobId={job}")
            log(f"_job_complete: JobId={job} WTERMSIG 15")
            log(f"_job_complete: JobId={job} done")
        elif r < 0.9:
            log(
                f"_slurm_rpc_kill_job: REQUEST_KILL_JOB JobId={job} uid "
                f"{rng.choice(list(USERS.values()))}"
            )
        else:
            log(f"_job_complete: JobId={job} WTERMSIG 9")
            log(f"_job_complete: JobId={job} done")
        clock.tick(1, 5)
        if rng.random() < 0.3:
            log(
                f"cleanup_completing: JobId={job} completion process took "
                f"{rng.randint(1, 40)} seconds"
            )

    def other() -> None:
        r = rng.random()
        node = f"cn{rng.randint(1, 60):03}"
        if r < 0.2:
            log(f"error: Nodes {node} not responding")
            log(f"Node {node} now responding")
        elif r < 0.35:
            log(
                f"Warning: Note very large processing time from _slurm_rpc_dump_jobs: "
                f"usec={rng.randint(1000000, 6000000)} began={clock.iso()[11:23]}"
            )
        elif r < 0.5:
            log(
                f"error: slurm_receive_msg [10.1.0.{rng.randint(11, 99)}:{rng.randint(30000, 60000)}"
                "]: Zero Bytes were transmitted or received"
            )
        elif r < 0.7:
            log(f"update_node: node {node} reason set to: {rng.choice(['memtest', 'ib down'])}")
            log(f"update_node: node {node} state set to DRAINING")
        elif r < 0.75:
            uid = rng.choice(list(USERS.values()))
            log(f"_slurm_rpc_requeue: Processing RPC: REQUEST_JOB_REQUEUE from UID={uid}")
        elif r < 0.85:
            log(f"sched/backfill: _attempt_backfill: beginning with {rng.randint(1, 400)} jobs")
        else:
            log(
                f"_pick_best_nodes: JobId={next_job} never runnable in partition "
                f"{rng.choice(parts)}"
            )

    new = {40: "lowmem", 95: "security", 130: "reconfig"} if day == 2 else {}
    step = 0
    while len(c.lines) < LENGTH[day]:
        clock.tick(1, 200)
        step += 1
        kind = new.get(step)
        if kind == "lowmem":
            log("error: Node cn051 has low real_memory size (191000 < 256000)", new=True)
        elif kind == "security":
            log(
                f"error: Security violation, REQUEST_KILL_JOB RPC for JobId={next_job} from uid "
                "1004",
                new=True,
            )
        elif kind == "reconfig":
            log(
                f"_slurm_rpc_reconfigure_controller: completed usec={rng.randint(1000, 9000)}",
                new=True,
            )
        r = rng.random()
        if r < 0.42:
            submit()
        elif r < 0.78:
            finish()
        else:
            other()
    return c


CORPORA: dict[str, Callable[[int], Corpus]] = {
    "auth": auth,
    "messages": messages,
    "kernel": kernel,
    "java": java,
    "python": python,
    "slurmctld": slurmctld,
}

if __name__ == "__main__":
    for name, make in CORPORA.items():
        for day in (1, 2):
            make(day).write(HERE / name, day)
