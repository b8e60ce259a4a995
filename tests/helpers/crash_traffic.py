"""Stateful traffic for the crash matrix, and an independent model of what must come out of it.

Why this exists: the factory's exactly-once promise is easy to keep for single-line records
that map to one event type; the state that spans batches is where a kill can lose or double
something. This traffic keeps every kind of that state live at every batch boundary:

- multi-line records (Python and Java tracebacks, kernel oopses) sent line by line behind
  rsyslog-style headers, their lines interleaved with other programs' lines of the same host,
  so traces are open in the sort stage across commits (and across kills);
- threshold windows (``password-attack``: 5 failed passwords for one account within 60 s,
  suppressed 5 min) whose hits are spread over thousands of lines, bursts of 4 (never fire),
  5 and 10 hits (fire once; the rest is suppressed) and second bursts after the suppression
  ended (fire again, with a new window);
- never-seen templates (one NEW_PATTERN each, although every template is sent three times);
- dead letters of every stage: intake garbage, an unknown source tag, a syslog line of binary
  garbage, a kv line with the wrong column count, a JSON line that does not parse; and lines
  that are not UTF-8 (decoded, flagged, never dead-lettered).

Every unit of traffic carries ``id=<n>`` in its first line. The model (:class:`Expected`) is
written from the documented behaviour (docs/configuration.md, the sort stage's rules), not by
calling the factory's code: which event types each unit makes, the exact message of each merged
record, the stage of each dead letter, the (account, first hit) of each composite event, the
templates announced. :func:`check` compares every output topic with it and lists each
difference: lost, doubled, unexpected, cut or merged wrongly.
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from logfactory.bus.base import Bus
from logfactory.record import encode_record, make_record

__all__ = [
    "EVENT_TYPES",
    "Expected",
    "Line",
    "Outputs",
    "Traffic",
    "check",
    "config_yaml",
    "generate",
    "live_state",
    "produce",
    "read_outputs",
    "read_topic",
    "settle",
]

T0 = datetime(2026, 11, 22, 0, 0, 0, tzinfo=UTC)
DT = timedelta(milliseconds=50)  # event time advances by this much per line, for every host
WINDOW = timedelta(seconds=60)
SUPPRESS = timedelta(minutes=5)
THRESHOLD = 5
INVALID = "invalid_utf8"  # the documented flag on what was decoded from bytes that were not UTF-8

# the mapped types the config below defines (besides ALERT and NEW_PATTERN)
EVENT_TYPES = ("SSH_LOGIN", "AUTH_FAILURE", "APP_CRASH", "JAVA_ERROR", "KERNEL_OOPS", "NOTE")

_CONFIG = """
node: {{name: {name}, data_dir: {data_dir}}}
{bus}
{extra}
workshops:
  syslog:
    format: syslog
    multiline: {{timeout: {timeout}}}
  sce:
    {{format: kv, separator: "|", fields: [time, host, user, addr, op, params], time_field: time}}
  apps: {{format: json}}
factory: {{group: {group}, batch_size: {batch_size}, new_patterns: true}}
event_types:
  - {{name: SSH_LOGIN, required: [unit]}}
  - {{name: AUTH_FAILURE, required: [unit]}}
  - {{name: APP_CRASH, required: [unit]}}
  - {{name: JAVA_ERROR, required: [unit]}}
  - {{name: KERNEL_OOPS, required: [unit]}}
  - {{name: NOTE, required: [unit]}}
mappings:
  - name: login
    when: {{workshop: syslog, program: sshd,
            message: 'Accepted password for (?P<user>\\S+) from \\S+ port \\d+ ssh2
              id=(?P<unit>\\d+)$'}}
    type: SSH_LOGIN
    body: {{unit: "{{unit}}", user: "{{user}}"}}
  - name: failure
    when: {{workshop: syslog, program: sshd,
            message: 'Failed password for \\S+ from \\S+ port \\d+ ssh2 id=(?P<unit>\\d+)$'}}
    type: AUTH_FAILURE
    body: {{unit: "{{unit}}"}}
  - name: python-crash
    when: {{workshop: syslog, program: worker, message: '^job crashed id=(?P<unit>\\d+)\\n'}}
    type: APP_CRASH
    body: {{unit: "{{unit}}"}}
  - name: java-error
    when: {{workshop: syslog, program: java, message: '^ERROR request failed id=(?P<unit>\\d+)\\n'}}
    type: JAVA_ERROR
    body: {{unit: "{{unit}}"}}
  - name: kernel-oops
    when: {{workshop: syslog, program: kernel,
            message: '^BUG: unable to handle page fault for address: \\S+ id=(?P<unit>\\d+)\\n'}}
    type: KERNEL_OOPS
    body: {{unit: "{{unit}}"}}
  - name: note
    when: {{workshop: syslog, message: '^status ok id=(?P<unit>\\d+)$'}}
    type: NOTE
    body: {{unit: "{{unit}}"}}
rules:
  - name: password-attack
    when: {{workshop: syslog, program: sshd,
            message: 'Failed password for (?P<account>\\S+) from (?P<addr>\\S+) port'}}
    key: account
    threshold: {threshold}
    window: 60s
    suppress: 5m
    subtype: PASSWORD_ATTACK
    reason: "{{count}} failed passwords for {{account}}"
    collect: [addr]
"""


def config_yaml(
    data_dir: str,
    *,
    bus: str = "bus: {type: local, partitions: 4}",
    extra: str = "",
    group: str = "factory",
    batch_size: int = 100,
    # the multi-line timeout: long enough that a stall of a loaded machine between two lines
    # of one trace never cuts it (a wall-clock timeout cannot tell a stall from a quiet stream)
    timeout: str = "5s",
    name: str = "crash",
) -> str:
    """The crash-matrix configuration: ``bus`` and ``extra`` (sources, http) are YAML lines."""
    return _CONFIG.format(
        name=name, data_dir=data_dir, bus=bus, extra=extra, group=group, batch_size=batch_size,
        timeout=timeout, threshold=THRESHOLD,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Line:
    """One input record: ``payload`` is a syslog/kv/json line (bytes if not UTF-8), or with
    ``garbage`` the bytes of a bus message that is no record at all."""

    host: str
    source: str
    payload: str | bytes
    garbage: bool = False
    unit: int = 0  # the unit of traffic the line belongs to


@dataclass
class Expected:
    """What the factory must output for a :class:`Traffic`, unit by unit."""

    events: dict[str, set[int]] = field(default_factory=lambda: {t: set() for t in EVENT_TYPES})
    parsed: dict[int, str] = field(default_factory=dict)  # unit -> the exact decoded message
    parsed_hosts: dict[int, str] = field(default_factory=dict)
    invalid_utf8: set[int] = field(default_factory=set)
    deadletters: dict[int, tuple[str, str]] = field(default_factory=dict)  # unit -> (stage, host)
    attacks: Counter[tuple[str, datetime]] = field(default_factory=Counter)  # (account, first)
    templates: set[str] = field(default_factory=set)  # the words of each never-seen template
    traces: int = 0  # multi-line records among ``parsed``
    accounts: dict[int, str] = field(default_factory=dict)  # failed password unit -> account


@dataclass
class Traffic:
    lines: list[Line]
    expected: Expected


def _ts(step: int) -> str:
    t = T0 + DT * step
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


_PY_TRACE = (
    "Traceback (most recent call last):",
    '  File "/opt/app/run.py", line 42, in main',
    "    process(batch)",
    '  File "/opt/app/batch.py", line 7, in process',
    "    raise ValueError(record)",
    "ValueError: bad record",
)
_JAVA_TRACE = (
    "java.lang.IllegalStateException: broken pipe",
    "\tat com.example.Server.handle(Server.java:42)",
    "\tat com.example.Server.run(Server.java:17)",
    "Caused by: java.io.IOException: connection reset",
    "\tat com.example.Net.read(Net.java:99)",
    "\t... 2 more",
)
_OOPS = (
    "#PF: supervisor read access in kernel mode",
    "Oops: 0000 [#1] SMP NOPTI",
    "CPU: 3 PID: 4242 Comm: python3 Not tainted 6.1.0 #1",
    "RIP: 0010:foo_bar+0x1c/0x40",
    "Call Trace:",
    " <TASK>",
    " ? do_thing+0x10/0x20",
    " </TASK>",
)
_TRACES = {
    "worker": ("APP_CRASH", "job crashed id={n}", _PY_TRACE),
    "java": ("JAVA_ERROR", "ERROR request failed id={n}", _JAVA_TRACE),
    "kernel": (
        "KERNEL_OOPS", "BUG: unable to handle page fault for address: 00000000deadbeef id={n}",
        _OOPS,
    ),
}  # fmt: skip
_PRI = {"sshd": 38, "worker": 11, "java": 11, "kernel": 4}


def _word(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(7))


class _Gen:
    def __init__(self, hosts: int, seed: int, *, garbage: bool, invalid_utf8: bool) -> None:
        self.rng = random.Random(seed)
        self.hosts = [f"cn{h:02d}" for h in range(1, hosts + 1)]
        self.lines: list[Line] = []
        self.exp = Expected()
        self.n = 0
        self.garbage = garbage
        self.invalid_utf8 = invalid_utf8
        # host -> program -> the lines of its trace in progress still to send
        self.open: dict[str, dict[str, list[str]]] = {h: {} for h in self.hosts}
        # host -> [account, hits left, next step, gap]
        self.bursts: dict[str, list[list[Any]]] = {h: [] for h in self.hosts}
        self.hits: dict[str, list[int]] = {}  # account -> steps of its hits
        self.reburst: list[tuple[int, str, str, int]] = []  # (due step, host, account, hits)
        self.novel: list[str] = []
        self.accounts = 0
        self.open_unit: dict[tuple[str, str], int] = {}
        self.hit_units: dict[int, str] = {}  # unit of a failed password -> its account
        self.finishing = False
        self.target = 0
        self.novel_uses: Counter[str] = Counter()

    # -- emission ------------------------------------------------------------------------------
    def unit(self) -> int:
        self.n += 1
        return self.n

    def syslog(self, host: str, program: str, text: str, unit: int) -> None:
        step = len(self.lines)
        header = f"<{_PRI.get(program, 13)}>{_ts(step)} {host} {program}"
        header += ": " if program == "kernel" else "[100]: "
        self.lines.append(Line(host, "syslog", header + text, unit=unit))

    def single(self, host: str, program: str, text: str, etype: str | None) -> None:
        n = self.unit()
        self.syslog(host, program, text.format(n=n), n)
        self.exp.parsed[n] = text.format(n=n)
        self.exp.parsed_hosts[n] = host
        if etype is not None:
            self.exp.events[etype].add(n)

    def login(self, host: str) -> None:
        n = self.unit()
        if self.invalid_utf8 and self.rng.random() < 0.05:
            text = f"Accepted password for usr\xff{n} from 10.1.0.{n % 250} port {n} ssh2 id={n}"
            step = len(self.lines)
            line = f"<38>{_ts(step)} {host} sshd[100]: ".encode() + text.encode("latin-1")
            self.lines.append(Line(host, "syslog", line, unit=n))
            self.exp.parsed[n] = text.replace("\xff", "\ufffd")
            self.exp.invalid_utf8.add(n)
        else:
            text = f"Accepted password for usr{n} from 10.1.0.{n % 250} port {n} ssh2 id={n}"
            self.syslog(host, "sshd", text, n)
            self.exp.parsed[n] = text
        self.exp.parsed_hosts[n] = host
        self.exp.events["SSH_LOGIN"].add(n)

    def failure(self, host: str, account: str) -> None:
        n = self.unit()
        addr = f"10.9.{n % 200}.{n % 250}"
        text = f"Failed password for {account} from {addr} port {n} ssh2 id={n}"
        self.hits.setdefault(account, []).append(len(self.lines))
        self.hit_units[n] = account
        self.syslog(host, "sshd", text, n)
        self.exp.parsed[n] = text
        self.exp.parsed_hosts[n] = host
        self.exp.events["AUTH_FAILURE"].add(n)

    def start_trace(self, host: str, program: str) -> None:
        """A trace's first two lines go out together (as a program writes them); the rest
        comes later, between other programs' lines of the host."""
        etype, first, rest = _TRACES[program]
        n = self.unit()
        text = first.format(n=n)
        self.syslog(host, program, text, n)
        self.syslog(host, program, rest[0], n)
        self.open[host][program] = list(rest[1:])
        self.open_unit[(host, program)] = n
        self.exp.parsed[n] = "\n".join((text, *rest))
        self.exp.parsed_hosts[n] = host
        self.exp.events[etype].add(n)
        self.exp.traces += 1

    def continue_trace(self, host: str, program: str) -> None:
        self.syslog(host, program, self.open[host][program].pop(0), self.open_unit[(host, program)])
        if not self.open[host][program]:
            del self.open[host][program]

    def close_trace(self, host: str, program: str) -> None:
        """The line of the trace's own program that completes it (a record of its own)."""
        while program in self.open[host]:
            self.continue_trace(host, program)
        self.single(host, program, "status ok id={n}", "NOTE")

    def novel_message(self, host: str) -> None:
        if len(self.novel) < 40 and (not self.novel or self.rng.random() < 0.5):
            self.novel.append(" ".join(_word(self.rng) for _ in range(4)))
        fresh = [w for w in self.novel if self.novel_uses[w] < 3]
        if not fresh:
            return
        words = self.rng.choice(fresh)
        self.novel_uses[words] += 1
        self.exp.templates.add(words)
        self.single(host, "novelty", words + " id={n}", None)

    def deadletter(self, host: str) -> None:
        kinds = ["sort", "syslog", "kv", "json"] + (["intake"] * self.garbage)
        kind = self.rng.choice(kinds)
        n = self.unit()
        if kind == "intake":
            self.lines.append(Line(host, "syslog", f"garbage id={n}".encode(), True, n))
            self.exp.deadletters[n] = ("intake", host)
        elif kind == "sort":
            self.lines.append(Line(host, "mystery", f"mystery line id={n}", unit=n))
            self.exp.deadletters[n] = ("sort", host)
        elif kind == "syslog":
            self.lines.append(Line(host, "syslog", f"\x01\x02\x03 binary id={n}", unit=n))
            self.exp.deadletters[n] = ("decode", host)
        elif kind == "kv":
            self.lines.append(Line(host, "sce", f"2026-11-22 00:10:42|{host}|id={n}", unit=n))
            self.exp.deadletters[n] = ("decode", host)
        else:
            self.lines.append(Line(host, "apps", f'{{"app": "x", id={n}', unit=n))
            self.exp.deadletters[n] = ("decode", host)

    def start_burst(self, host: str) -> None:
        size = self.rng.choice((4, 5, 5, 10))
        self.accounts += 1
        account = f"acct{self.accounts}{host}"
        self.hits.setdefault(account, [])
        self.bursts[host].append([account, size, len(self.lines), self.rng.randint(60, 160)])
        if size >= THRESHOLD and len(self.lines) < self.target // 2 and self.rng.random() < 0.5:
            # a second burst once the first one's suppression has ended
            due = len(self.lines) + int((WINDOW + SUPPRESS) / DT) + 500
            self.reburst.append((due, host, account, self.rng.choice((5, 10))))

    def step(self) -> None:
        """One host does one thing (most actions send one line)."""
        step = len(self.lines)
        for item in [r for r in self.reburst if r[0] <= step]:
            self.reburst.remove(item)
            _due, host, account, size = item
            self.bursts[host].append([account, size, step, self.rng.randint(60, 160)])
        host = self.rng.choice(self.hosts)
        for burst in self.bursts[host]:
            if burst[2] <= step:  # a hit is due: hits are 60-160 lines apart (4 gaps < 60 s)
                self.failure(host, burst[0])
                burst[1] -= 1
                burst[2] = step + burst[3]
                if burst[1] == 0:
                    self.bursts[host].remove(burst)
                return
        r = self.rng.random()
        progs = self.open[host]
        if progs and r < 0.3:
            self.continue_trace(host, self.rng.choice(sorted(progs)))
        elif r < 0.55:
            self.login(host)
        elif r < 0.68:
            idle = sorted(set(_TRACES) - set(progs))  # one trace per program at a time
            if idle:
                self.start_trace(host, self.rng.choice(idle))
            else:
                self.continue_trace(host, self.rng.choice(sorted(progs)))
        elif r < 0.74:
            # a program's own lines never come between the lines of its trace
            idle = sorted(set(_TRACES) - set(progs))
            if idle:
                self.single(host, self.rng.choice(idle), "status ok id={n}", "NOTE")
        elif r < 0.78:
            self.novel_message(host)
        elif r < 0.82:
            self.deadletter(host)
        elif r < 0.84 and not self.finishing:
            self.start_burst(host)
        else:
            self.login(host)

    def finish(self) -> None:
        """Finish every burst and trace, so the model has no half-sent unit."""
        self.finishing = True
        while self.reburst or any(self.bursts.values()):
            self.step()
        for host in self.hosts:
            for program in sorted(self.open[host]):
                self.close_trace(host, program)
        for words in self.novel:  # every template three times
            while self.novel_uses[words] < 3:
                self.novel_uses[words] += 1
                self.single(self.rng.choice(self.hosts), "novelty", words + " id={n}", None)
        self.exp.templates = set(self.novel)
        self.exp.accounts = dict(self.hit_units)
        for account, steps in self.hits.items():
            for first in _fired(steps):
                self.exp.attacks[(account, T0 + DT * first)] += 1


def _fired(steps: list[int]) -> list[int]:
    """The documented threshold semantics, on one account's hits (in event time): the first
    hit of every window that reaches THRESHOLD hits within WINDOW, outside a suppression."""
    window: list[int] = []
    fired: list[int] = []
    suppressed_until = -1.0
    span, quiet = WINDOW / DT, SUPPRESS / DT
    for s in steps:
        if s < suppressed_until:
            continue
        window = [w for w in window if w >= s - span] + [s]
        if len(window) >= THRESHOLD:
            fired.append(window[0])
            suppressed_until, window = s + quiet, []
    return fired


def generate(
    lines: int, *, hosts: int = 8, seed: int = 22, garbage: bool = True, invalid_utf8: bool = True
) -> Traffic:
    """About ``lines`` input lines (a few more: every unit is finished). ``garbage``: include
    bus messages that are not records (only a test writing logs.raw itself can);
    ``invalid_utf8``: include lines that are not UTF-8."""
    gen = _Gen(hosts, seed, garbage=garbage, invalid_utf8=invalid_utf8)
    gen.target = lines
    while len(gen.lines) < lines:
        gen.step()
    gen.finish()
    return Traffic(gen.lines, gen.exp)


def produce(bus: Bus, lines: Iterable[Line]) -> int:
    """Write ``lines`` to logs.raw as a collector would (keyed by host); returns the count."""
    producer = bus.producer()
    count = 0
    for line in lines:
        key = line.host.encode()
        if line.garbage:
            value = line.payload if isinstance(line.payload, bytes) else line.payload.encode()
        else:
            value = encode_record(make_record(line.source, line.host, line.payload))
        producer.produce("logs.raw", value, key)
        count += 1
    producer.flush()
    producer.close()
    return count


# -- reading the outputs -----------------------------------------------------------------------
def read_topic(bus: Bus, topic: str, deadline_polls: int = 4000) -> list[bytes]:
    """Every message of ``topic`` from its start to the end offsets seen when called."""
    ends = {(topic, p): hi for p, (_lo, hi) in bus.watermarks(topic).items()}
    consumer = bus.consumer(None, [topic], "earliest")
    out: list[bytes] = []
    try:
        for _ in range(deadline_polls):  # bounded: each poll waits at most 0.5 s
            if all(consumer.position().get(tp, 0) >= hi for tp, hi in ends.items()):
                return out
            out += [m.value for m in consumer.poll(5000, timeout=0.5)]
        raise AssertionError(f"could not read {topic} to its end")
    finally:
        consumer.close()


def live_state(bus: Bus, partitions: Iterable[int] | None = None) -> tuple[int, int]:
    """(lines held in open multi-line records, keys with open or suppressed windows) in the
    newest ``factory.state`` of each partition (or of ``partitions``): the proof that a kill
    landed with state in flight. Reads the documented state layout: JSON, base64 parts."""
    latest: dict[int, bytes] = {}
    consumer = bus.consumer(None, ["factory.state"], "earliest")
    ends = {("factory.state", p): hi for p, (_lo, hi) in bus.watermarks("factory.state").items()}
    try:
        for _ in range(400):  # bounded: each poll waits at most 0.2 s
            if all(consumer.position().get(tp, 0) >= hi for tp, hi in ends.items()):
                break
            for msg in consumer.poll(5000, timeout=0.2):
                if msg.key is not None and msg.value:
                    latest[int(msg.key.rsplit(b"/", 1)[1])] = msg.value
    finally:
        consumer.close()
    wanted = set(latest) if partitions is None else set(partitions)
    held = windows = 0
    for partition, value in latest.items():
        if partition not in wanted:
            continue
        state = json.loads(value)
        if state.get("sort"):
            sort = json.loads(base64.b64decode(state["sort"]))
            held += sum(len(p["lines"]) for p in sort["pending"])
        if state.get("process"):
            process = json.loads(base64.b64decode(state["process"]))
            windows += sum(len(w) for w in process["rules"].values())
    return held, windows


def settle(bus: Bus, group: str, total: int, timeout: float = 240.0) -> str | None:
    """Wait until the factory committed all ``total`` inputs and emitted every held line (the
    last line of each stream waits out the multi-line timeout); None, or what it waited for."""
    deadline = time.monotonic() + timeout
    while sum(bus.committed(group, "logs.raw").values()) < total:
        if time.monotonic() > deadline:
            return f"only {sum(bus.committed(group, 'logs.raw').values())} of {total} committed"
        time.sleep(0.1)
    while (held := live_state(bus)[0]) > 0:
        if time.monotonic() > deadline:
            return f"{held} lines still held in open multi-line records"
        time.sleep(0.1)
    return None


@dataclass
class Outputs:
    events: dict[str, list[dict[str, Any]]]
    parsed: list[dict[str, Any]]
    deadletters: list[dict[str, Any]]


def read_outputs(bus: Bus) -> Outputs:
    types = (*EVENT_TYPES, "ALERT", "NEW_PATTERN")
    events = {t: [json.loads(v) for v in read_topic(bus, f"events.{t}")] for t in types}
    parsed = [json.loads(v) for v in read_topic(bus, "logs.parsed")]
    letters = [json.loads(v) for v in read_topic(bus, "logs.deadletter")]
    return Outputs(events, parsed, letters)


_UNIT = re.compile(r"id=(\d+)")


def _unit(text: str) -> int | None:
    m = _UNIT.search(text)
    return int(m.group(1)) if m else None


def _diff(
    what: str, seen: Counter[Any], expected: Iterable[Any], loose: frozenset[Any] = frozenset()
) -> list[str]:
    """Lost, doubled and unexpected keys; a ``loose`` key (at least once) may come twice."""
    want = Counter(list(expected))
    lost = sorted(want - seen, key=str)
    twice = sorted((k for k, c in seen.items() if c > (2 if k in loose else 1)), key=str)
    extra = sorted(set(seen) - set(want), key=str)
    out = []
    if lost:
        out.append(f"{what}: {len(lost)} lost, e.g. {lost[:5]}")
    if twice:
        out.append(f"{what}: {len(twice)} more than once, e.g. {twice[:5]}")
    if extra:
        out.append(f"{what}: {len(extra)} unexpected, e.g. {extra[:5]}")
    return out


def check(
    out: Outputs, exp: Expected, loose: frozenset[int] = frozenset(), *, workers: int = 1
) -> list[str]:
    """Every difference between the outputs and the model (empty: all is as documented).

    ``loose``: units with a line in an HTTP batch that was in flight at a kill and sent again,
    so delivered at least once (docs/sources/file-http.md): each may come twice, a trace of
    them may hold a line twice, and a window they hit in may count a hit twice.

    ``workers`` > 1: two workers may discover one template in the same instant and both
    announce it, under one id, which subscribers de-duplicate (docs/operations.md); so
    NEW_PATTERN events are compared after de-duplication by id (one id per template still)."""
    problems: list[str] = []
    if workers > 1:
        unique = {e["header"]["id"]: e for e in out.events["NEW_PATTERN"]}
        out = Outputs({**out.events, "NEW_PATTERN": list(unique.values())}, out.parsed,
                      out.deadletters)  # fmt: skip
    problems += _check_events(out, exp, loose)
    problems += _check_alerts(out, exp, loose)
    templates = Counter(
        " ".join(str(e["body"]["template"]).split()[:4]) for e in out.events["NEW_PATTERN"]
    )
    problems += _diff("NEW_PATTERN templates", templates, exp.templates)
    problems += _check_parsed(out, exp, loose)
    problems += _check_deadletters(out, exp, loose)
    return problems


def _check_events(out: Outputs, exp: Expected, loose: frozenset[int]) -> list[str]:
    """Event ids unique; each event type's units as the model has them, with their flags."""
    problems: list[str] = []
    ids = Counter(e["header"]["id"] for evs in out.events.values() for e in evs)
    if dup := [i for i, c in ids.items() if c > 1]:
        problems.append(f"{len(dup)} event ids appear more than once, e.g. {dup[:3]}")
    for etype in EVENT_TYPES:
        units = Counter(int(e["body"]["unit"]) for e in out.events[etype])
        problems += _diff(f"events.{etype}", units, exp.events[etype], loose)
        flagged = {
            int(e["body"]["unit"]) for e in out.events[etype] if e["body"].get("invalid_utf8")
        }
        if etype == "SSH_LOGIN" and flagged != exp.invalid_utf8:
            problems.append(
                f"SSH_LOGIN invalid_utf8 flags {len(flagged)} != {len(exp.invalid_utf8)}"
            )
    return problems


def _check_alerts(out: Outputs, exp: Expected, loose: frozenset[int]) -> list[str]:
    """One PASSWORD_ATTACK per (account, first hit) of the model, each at the threshold, and
    no other alert; accounts of ``loose`` units are not compared."""
    problems: list[str] = []
    loose_accounts = {exp.accounts[u] for u in loose if u in exp.accounts}
    attacks = Counter(
        (e["body"]["account"], datetime.fromisoformat(e["body"]["first_seen"]))
        for e in out.events["ALERT"]
        if e["header"].get("subtype") == "PASSWORD_ATTACK"
        and e["body"]["account"] not in loose_accounts
    )
    want_attacks = [k for k in exp.attacks if k[0] not in loose_accounts]
    problems += _diff("PASSWORD_ATTACK (account, first hit)", attacks, want_attacks)
    if others := [
        e for e in out.events["ALERT"] if e["header"].get("subtype") != "PASSWORD_ATTACK"
    ]:
        problems.append(f"{len(others)} unexpected ALERT events, e.g. {others[:1]}")
    bad_counts = [e for e in out.events["ALERT"] if e["body"].get("count") != THRESHOLD]
    if bad_counts:
        problems.append(f"{len(bad_counts)} PASSWORD_ATTACK events without count {THRESHOLD}")
    return problems


def _check_parsed(out: Outputs, exp: Expected, loose: frozenset[int]) -> list[str]:
    """logs.parsed: one document per record, each multi-line record whole."""
    problems: list[str] = []
    parsed: Counter[int] = Counter()
    for doc in out.parsed:
        n = _unit(doc["message"])
        if n is None:
            problems.append(f"logs.parsed holds a record with no unit: {doc['message'][:200]!r}")
            continue
        parsed[n] += 1
        want = exp.parsed.get(n)
        if want is not None and n not in loose and doc["message"] != want:
            problems.append(f"logs.parsed unit {n}: message {doc['message']!r} != {want!r}")
        if want is not None and doc["host"] != exp.parsed_hosts[n]:
            problems.append(f"logs.parsed unit {n}: host {doc['host']} != {exp.parsed_hosts[n]}")
        if (n in exp.invalid_utf8) != ("original_b64" in doc):
            problems.append(f"logs.parsed unit {n}: original_b64 presence is wrong")
    problems += _diff("logs.parsed units", parsed, exp.parsed, loose)
    return problems


def _check_deadletters(out: Outputs, exp: Expected, loose: frozenset[int]) -> list[str]:
    """logs.deadletter: one letter per bad input, from the right stage, with its fields."""
    problems: list[str] = []
    letters: Counter[int] = Counter()
    for letter in out.deadletters:
        text = letter.get("line") or base64.b64decode(letter.get("original_b64", "")).decode(
            "utf-8", "replace"
        )
        n = _unit(text)
        if n is None:
            problems.append(f"a dead letter with no unit: {letter}")
            continue
        letters[n] += 1
        stage, host = exp.deadletters.get(n, ("?", "?"))
        if letter["stage"] != stage:
            problems.append(f"dead letter {n}: stage {letter['stage']} != {stage}")
        if not re.fullmatch(r"logs\.raw/\d+/\d+", letter.get("position", "")):
            problems.append(f"dead letter {n}: position {letter.get('position')!r}")
        if stage != "intake" and (letter.get("host") != host or not letter.get("received")):
            problems.append(f"dead letter {n}: host/received {letter}")
    problems += _diff("logs.deadletter units", letters, exp.deadletters, loose)
    return problems
