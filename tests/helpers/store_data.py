"""Deterministic stored documents for the store's tests: a varied mix both engines must keep and
find alike.

The mix covers what real streams bring and what text matching must get right: logs and events;
many hosts (one with a non-ASCII name); syslog and rule severities; messages with IPv4 addresses,
paths, ids with ``_`` and ``=``, punctuation, non-ASCII words, an empty message, a word longer
than the tokenizer keeps (40 bytes); decoded fields with strings, integers, floats, booleans,
numbers written as text, a dotted name and a nested object; times spread over ``days`` with
groups of equal times (so the ``id`` tie-break is exercised) and late arrivals (``received``
hours after ``time``).

Same ``n`` and ``seed`` -> the same documents, on every machine.
"""

from __future__ import annotations

import random
from typing import Any

from logfactory.store.document import StoredDoc
from logfactory.store.engine import Position

__all__ = ["DAY_NS", "SAMPLE_START_NS", "positions", "sample_docs"]

DAY_NS = 86_400 * 1_000_000_000
SAMPLE_START_NS = 1_772_323_200 * 1_000_000_000  # 2026-03-01T00:00:00Z

HOSTS = (
    *(f"cn{i:04d}" for i in range(1, 13)),
    "gpu001",
    "login1",
    "mgmt-01",
    "nœud7",
)
SOURCES = ("sshd", "kernel", "CROND", "slurmd", "app.api", "postfix/smtpd")
LOG_LEVELS = ("info", "info", "info", "notice", "warning", "error", "debug", "crit", "")
EVENT_LEVELS = ("info", "low", "medium", "high", "critical")
EVENT_TYPES = (("ssh_bruteforce", "password"), ("oom_kill", ""), ("disk_error", "xfs"))
USERS = ("alice", "bob", "Carol", "root", "zhvorakova", "jörg")
WORKSHOPS = ("", "hpc", "web")

_LONG = "x" * 44  # longer than the 40 bytes a token may have: never indexed, never found


def _message(rng: random.Random, user: str, ip: str, job: int) -> str:
    templates = (
        f"Failed password for {user} from {ip} port {rng.randint(1024, 65535)} ssh2",
        f"Accepted publickey for {user} from {ip}",
        f"pam_unix(sshd:session): session opened for user {user}",
        f"slurmd: launched JobId={job} on {rng.choice(HOSTS)}",
        f"EXT4-fs error (device sda{rng.randint(1, 4)}): reading /var/log/messages failed",
        f"Out of memory: Killed process {rng.randint(100, 99999)} (python3) job_{job}",
        f"GET /api/v1/items/{job}?q=a%20b HTTP/1.1 200 — {rng.randint(1, 900)}ms",
        f"Grüße aus Zürich: café déjà vu {user} 日本語",
        f"token {_LONG} rejected for {user}",
        "",
        f"CROND[{rng.randint(100, 999)}]: (root) CMD (run-parts /etc/cron.hourly)",
        f"queue 4F2A{job % 997:03X}: to=<{user}@example.org>, status=sent",
    )
    return rng.choice(templates)


def _fields(rng: random.Random, user: str, ip: str, job: int) -> dict[str, Any]:
    out: dict[str, Any] = {"user": user}
    roll = rng.random()
    if roll < 0.3:
        out["port"] = rng.choice((22, 443, 8080))
    elif roll < 0.45:
        out["port"] = rng.choice(("22", "443"))  # a number written as text
    if rng.random() < 0.4:
        out["addr"] = ip
    if rng.random() < 0.3:
        out["ratio"] = rng.choice((0.5, 1.25, 2.0, -3.5))
    if rng.random() < 0.25:
        out["ok"] = rng.random() < 0.5
    if rng.random() < 0.2:
        out["job"] = {"id": job, "queue": rng.choice(("batch", "gpu"))}
    if rng.random() < 0.15:
        out["req.path"] = rng.choice(("/api/v1/items", "/login", "/var/log/messages"))
    if rng.random() < 0.1:
        out["note"] = rng.choice(("Grüße", "10.3.17.5", "a b", ""))
    return out


def sample_docs(
    n: int, seed: int = 0, start_ns: int = SAMPLE_START_NS, days: int = 1
) -> list[StoredDoc]:
    """``n`` documents with times in ``[start_ns, start_ns + days)`` (see the module docstring);
    returned in arrival order (``received`` ascending, as a bus delivers them)."""
    rng = random.Random(seed)
    span = days * DAY_NS
    docs: list[StoredDoc] = []
    last_time = start_ns
    for i in range(n):
        # about one in five shares its predecessor's time: ties the id must break
        time = last_time if i and rng.random() < 0.2 else start_ns + rng.randrange(span)
        last_time = time
        late = rng.random() < 0.05
        received = time + (rng.randrange(3_600, 7_200) if late else rng.randrange(0, 5)) * 10**9
        received = min(received, start_ns + span - 1)  # stays inside the days asked for
        user = rng.choice(USERS)
        ip = f"10.{rng.randint(0, 3)}.{rng.randint(15, 18)}.{rng.randint(1, 40)}"
        job = rng.randint(1000, 1300)
        host = rng.choice(HOSTS)
        fields = _fields(rng, user, ip, job)
        if rng.random() < 0.2:
            kind_type, subtype = rng.choice(EVENT_TYPES)
            docs.append(
                StoredDoc(
                    id=f"{rng.getrandbits(64):016x}",
                    kind="event",
                    time=time,
                    received=received,
                    host=host,
                    source=rng.choice(SOURCES),
                    message=f"{kind_type} on {host} user={user} addr={ip}",
                    workshop=rng.choice(WORKSHOPS),
                    type=kind_type,
                    subtype=subtype,
                    severity=rng.choice(EVENT_LEVELS),
                    pattern=f"p{rng.randint(1, 30):04d}",
                    fields=fields,
                    origin=f"events.{kind_type}/0/{i}",
                )
            )
            continue
        docs.append(
            StoredDoc(
                id=f"logs.raw/{i % 3}/{seed * 1_000_000 + i}",  # unique across seeds
                kind="log",
                time=time,
                received=received,
                host=host,
                source=rng.choice(SOURCES),
                message=_message(rng, user, ip, job),
                workshop=rng.choice(WORKSHOPS),
                severity=rng.choice(LOG_LEVELS),
                pattern=rng.choice(("", f"p{rng.randint(1, 30):04d}")),
                status=rng.choice(("", "ok", "new")),
                fields=fields,
                origin=f"logs.parsed/{i % 2}/{i // 2}",
            )
        )
    docs.sort(key=lambda d: d.received)
    return docs


def positions(
    docs: list[StoredDoc], topic: str = "logs.parsed", partitions: int = 2, first: int = 0
) -> list[tuple[Position, StoredDoc]]:
    """Each doc with a bus position, as the store role reads them: round-robin over
    ``partitions``, offsets rising from ``first`` in the docs' order."""
    return [((topic, i % partitions, first + i // partitions), doc) for i, doc in enumerate(docs)]
