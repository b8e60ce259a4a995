"""What the demo feed's lines are made of: its vocabulary and its wire formats.

The tables are the centre the demo pretends to be (people, hosts, programs, message shapes);
:class:`LineFormat` renders a message in one of the feed's formats. Kept apart from the stories
(:mod:`.demo_stories`) so that changing what the centre looks like, or how a format is written,
does not mean reading the scheduling code. Order matters in every table: the generator draws
from them by index, so reordering one changes the (seeded) output.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "ADMINS", "ADMIN_OPS", "APPS", "ATTACKED", "CLUSTERS", "COMMANDS", "CONTROLLER",
    "INVALID_USERS", "KERNEL_NOISE", "LOGINS", "NOVEL_PROGRAMS", "NOVEL_SUBJECTS", "NOVEL_TAILS",
    "NOVEL_VERBS", "PARTITIONS", "SEC", "SYSTEM_NOISE", "USERS", "USER_OPS", "WORDS", "Line",
    "LineFormat",
]  # fmt: skip

Line = tuple[str, str, str]
"""``(tag, host, line)``: one line of the feed and where it claims to come from."""
SEC = 1_000_000_000
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
INVALID_USERS = frozenset({"admin", "oracle", "test", "guest", "ubuntu", "hadoop"})
USER_OPS = ("QUERY_RESOURCE", "SUBMIT_JOB", "TRANSFER_FILE", "QUERY_JOB")
ADMIN_OPS = ("CREATE_GROUP", "CHANGE_PERMISSION", "ADD_USER", "REMOVE_USER", "SET_QUOTA")
APPS = (
    ("gromacs", ("2023.3", "2024.3")), ("lammps", ("2Aug2023", "29Aug2024")),
    ("vasp", ("6.3.2", "6.4.3")), ("openfoam", ("v2306", "v2406")),
    ("cp2k", ("2023.2", "2024.1")), ("pytorch", ("2.3.1", "2.5.1")),
)  # fmt: skip
COMMANDS = ("python", "python3", "vasp_std", "gmx_mpi", "lmp", "simpleFoam", "R", "java")
NOVEL_PROGRAMS = ("ipmievd", "nhc", "smartd", "mmfsd", "opensm", "rasdaemon", "lldpd", "dcgmd")
NOVEL_SUBJECTS = (
    "sensor PSU{a}", "port {a} of switch ib-sw{b}", "GPU {a}", "fan FAN{a}", "DIMM {c}{a}",
    "link mlx5_{a}", "NVMe namespace {a} on nvme{b}", "BMC", "fileset scratch{a}", "fabric manager",
)  # fmt: skip
NOVEL_VERBS = (
    "reports", "changed state to", "lost redundancy after", "recovered from", "exceeded",
    "dropped below", "renegotiated", "entered", "is stuck in", "was reset by",
)  # fmt: skip
NOVEL_TAILS = (
    "{a} correctable errors in {b} minutes", "degraded mode (code 0x{h})", "limit {a} C",
    "speed {a} Gb/s", "quorum with {b} peers", "firmware {a}.{b}.{h}", "state {w}",
    "watchdog after {a} ms", "policy {w} for tenant {v}", "{w}",
)  # fmt: skip
WORDS = ("DEGRADED", "ACTIVE", "standby", "recovery", "ECC", "throttle", "fenced", "quiesce")
SYSTEM_NOISE = (
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
KERNEL_NOISE = (
    (6, "EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none."),
    (6, "IPv6: ADDRCONF(NETDEV_CHANGE): ib0: link becomes ready"),
    (4, "nfs: server nfs01 not responding, still trying"),
    (5, "nfs: server nfs01 OK"),
    (6, "perf: interrupt took too long ({k} > 2500), lowering kernel.perf_event_max_sample_rate"),
    (6, "mlx5_core 0000:3b:00.0: mlx5_fw_tracer_handle_traces:{k}: FW tracer event"),
)


class LineFormat:
    """Renders messages as the feed's formats: RFC 3164 syslog with PRI (in ``timezone``, as
    RFC 3164 has no zone), kernel lines with a seconds-since-boot stamp, ``|``-delimited SCE
    operations and JSON lines (both UTC).

    Timestamp text is cached per simulated second: formatting a datetime costs more than the
    rest of a line, and the feed is benchmark input. ``boot`` gives each host's boot time (ns).
    """

    def __init__(self, timezone: str, syslog_tag: str, boot: dict[str, int]) -> None:
        self._tz = ZoneInfo(timezone)
        self._tag = syslog_tag
        self._boot = boot
        self._stamp_sec = -1
        self._syslog_stamp = self._sce_stamp = self._iso_stamp = ""

    def _stamp(self, t: int) -> None:
        sec = t // SEC
        if sec != self._stamp_sec:
            local = datetime.fromtimestamp(sec, self._tz)
            utc = datetime.fromtimestamp(sec, UTC)
            self._syslog_stamp = f"{_MONTHS[local.month - 1]} {local.day:2d} {local:%H:%M:%S}"
            self._sce_stamp = f"{utc:%Y-%m-%d %H:%M:%S}"
            self._iso_stamp = f"{utc:%Y-%m-%dT%H:%M:%S}"
            self._stamp_sec = sec

    def syslog(self, t: int, pri: int, host: str, program: str, msg: str) -> Line:
        self._stamp(t)
        return self._tag, host, f"<{pri}>{self._syslog_stamp} {host} {program}: {msg}"

    def kernel(self, t: int, pri: int, host: str, msg: str) -> Line:
        up = (t - self._boot[host]) // 1000
        stamp = f"[{up // 1_000_000:5d}.{up % 1_000_000:06d}]"
        return self.syslog(t, pri, host, "kernel", f"{stamp} {msg}")

    def json_record(self, t: int, tag: str, host: str, obj: dict[str, Any]) -> Line:
        self._stamp(t)
        stamp = f"{self._iso_stamp}.{t // 1_000_000 % 1000:03d}Z"
        return tag, host, json.dumps({"time": stamp, **obj}, separators=(",", ":"))

    def sce(self, t: int, host: str, user: str, addr: str, op: str, params: str) -> Line:
        self._stamp(t)
        return "sce", host, f"{self._sce_stamp}|{host}|{user}|{addr}|{op}|{params}"
