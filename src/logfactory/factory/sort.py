"""Sort stage: route each record to its workshop, and merge multi-line records before decoding.

Routing: ``factory.routes[tag]``, else the workshop named like the tag, else a
:class:`DecodeError` (the record is dead-lettered with the reason).

Merging, per workshop with ``multiline:``, per stream ``(source tag, host, meta path or peer)``
and, within a stream, per *program*: a line with a syslog header (``Dec  6 01:40:20 login01
sudo: ...``) belongs to its header's ``(host, program)``, a line without one to no program.
Why: a file or a relay interleaves many programs, and a line of one (a sudo command, indented
by sudo's own format) must never become part of another's record (the sshd line before it),
while a trace sent line by line (a kernel oops, a Java trace via rsyslog) keeps merging even
with other programs' lines between its own, once it has begun.

* a line matching ``start`` opens a record (emitting the open one of its program);
* with ``continuation``, a line matching it joins the open record of its program (a line
  without a header: the stream's most recently extended record, whatever its program, as a
  trace written with raw newlines into a syslog file); any other line emits its program's open
  record and then either opens a new one (no ``start``: every line may be followed by
  continuations) or passes alone (``start`` given: only ``start`` lines open records);
* with ``start`` only, every other line joins the open record as above (or passes alone if
  none is open);
* a record of one line is emitted as soon as the next line of its stream arrives and does not
  join it, whatever that line's program: only a trace in progress (two lines or more) waits for
  its program's next line. Why: a busy file or relay changes program on nearly every line, and
  holding each line until its own program's next one would delay nearly every event by the
  timeout, while the first two lines of a trace are written together. So a trace whose second
  line comes after another program's line is cut there: its first line is a record alone;
* ``max_lines`` caps a record; an open record idle for ``timeout`` is emitted by
  :meth:`Sorter.flush_due`, which the worker calls on every poll (while it is behind, with a
  time ``CATCH_UP_GRACE_NS`` earlier: see :class:`~logfactory.factory.worker.FactoryWorker`).
  A stream holds at most one single-line record and :data:`MAX_OPEN_PER_STREAM` traces in
  progress (one per program): past that the least recently extended trace is emitted, so a
  relay of thousands of hosts cannot grow the state unboundedly.

Records emitted together (for one line, or by ``flush_due`` or ``flush_all``) come in the order
of their first lines, and a program's records always come in order (one is open at a time).

``multiline: {}`` (neither ``start`` nor ``continuation``) uses :data:`DEFAULT_CONTINUATION`, which
recognises Java stack traces, Python tracebacks and kernel oopses, raw or inside syslog framing.
Behind a syslog header, an indented ``name : ...`` is no continuation: it is sudo's log format
(``sudo:    alice : TTY=pts/0 ; ...``, the user name right-aligned in eight columns), and two
sudo commands in a row are two records. The kernel writes no exception traces: behind a
``kernel`` header, or after a kernel uptime, ``LustreError: ...`` is a message of its own, not an
exception's last line. A kernel WARNING or ``BUG()`` report begins with ``------------[ cut here
]------------``: the line after it, of the same program, continues it. (All found on the
reference corpora in ``tests/corpora/``, like ``PKRU:`` and a hung task's report lines.)

A merged record keeps the first line's record (host, received, meta) with ``line`` = the lines
joined by ``\\n`` and ``meta["lines"]`` = their count; its position is the first line's, so the
deterministic event id does not depend on how many lines followed. A line whose bytes were not
UTF-8 (``raw`` set) merges like any other; the merged record's ``raw`` is then the lines' bytes
joined by ``\\n``, each line's original bytes where it had them. Open records are part of the
worker's durable state: :meth:`Sorter.snapshot` is stored with the committed input offsets.
``now_ns`` must be wall-clock time (:func:`logfactory.record.now_ns`): deadlines survive a restart
(restored records wait for the partition's next line first: :data:`RESUME_GRACE_NS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from logfactory.config import Config, MultilineConfig
from logfactory.factory.model import DecodeError, Position
from logfactory.factory.workshops.base import Workshop
from logfactory.record import Record

__all__ = ["DEFAULT_CONTINUATION", "MAX_OPEN_PER_STREAM", "RESUME_GRACE_NS", "Ready", "Sorter"]

Ready = tuple[Record, Position, str]
"""A record ready for decoding, the position of its first line, and its workshop's name."""

# The header a syslog daemon puts in front of every line of a trace sent line by line.
_SYSLOG_HEADER = (
    r"(?:<\d{1,3}>)?"
    r"(?:[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\dT\S+) +"
    r"(?:\S+ +)?[^\s\[\]:]+(?:\[\d*\])?: "
)
# sudo's message after its header: the user name right-aligned in eight columns, then " : ".
# Its padding would make every sudo command an indented (continuation) line.
_NOT_SUDO = r"(?! +[^\s:]+ : )"
_KERNEL_UPTIME = r"\[ *\d+\.\d+\] "
# An exception's (qualified) name: the suffix ends its last part or is that part after a dot
# (java.lang.Exception, java.lang.Error); alone, only Python's bare Exception, not "Error: ...",
# which is how many programs begin an ordinary message.
_EXCEPTION_NAME = (
    r"(?:[A-Za-z_$][\w$]*(?:\.[\w$]+)*\.?(?:Error|Exception|Exit|Interrupt|Throwable)"
    r"|Exception)(?::|$)"
)


def _trace_body(exception_name: str) -> str:
    # What the second and later lines of a trace start with. Deliberately no optional spaces
    # next to the alternatives: a plain line must not become "indented" by backtracking.
    return (
        r"(?:[ \t]|#011"  # indented: Java "\tat", Python '  File "..."', kernel call-trace frames
        r"|Caused by: |Suppressed: |\.\.\. \d+ (?:more|common frames omitted)"
        r"|Exception in thread "
        r"|Traceback \(most recent call last\):|During handling of the above exception"
        r"|The above exception was the direct cause"
        rf"|{exception_name}"
        r"|(?:IP|RIP|RSP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d{1,2}|FS|CS|CR2|DR[0-7]|PKRU|Code|Stack"
        r"|Call Trace|Modules linked in|Hardware name|Workqueue|#PF):"
        r"|(?:PGD|P4D|PUD|PMD|PTE) [0-9a-f]+|Oops: |CPU: \d+ PID: |---\[ end "
        # a hung task's report: the hint how to silence it, the task's state line
        r'|"echo 0 > /proc/sys/kernel/hung_task_timeout_secs"|task:\S+ +state:'
        # the line after "------------[ cut here ]------------" is handled in Sorter.feed
        r"|Kernel panic - not syncing|</?(?:IRQ|TASK|NMI|EOI)>"
        r"|$)"
    )


_TRACE_BODY = _trace_body(_EXCEPTION_NAME)
DEFAULT_CONTINUATION = rf"^(?:{_SYSLOG_HEADER}{_NOT_SUDO})?(?:{_KERNEL_UPTIME})?{_TRACE_BODY}"
"""Continuation lines of Java stack traces, Python tracebacks and kernel oopses."""

# The same language as DEFAULT_CONTINUATION, matched in about half the time: nearly every line
# is *not* a continuation, and the plain pattern spends most of its time backtracking before it
# can say so. Each change below provably keeps the set of matching lines (the property test
# compares both patterns):
# * possessive quantifiers (`++`, `*+`, `?+`) only where the next element needs a character
#   the quantified class cannot match (`\S+` before spaces, the program name before `[` or
#   `:`, ...), so a successful match consumes the maximal run anyway; the one real ambiguity
#   of the header (is the first word a host name or the program?) keeps its backtracking;
# * the uptime is possessive: a trace body never starts with `[`;
# * the exception-name alternative gets a lookahead that fails fast when the maximal run of
#   name characters does not end in one of the suffixes followed by `:` or the end (any match
#   of the alternative ends exactly there, so the lookahead is a necessary condition).
_FAST_HEADER = (
    r"(?:<\d{1,3}>)?"
    r"(?:[A-Z][a-z]{2} ++\d{1,2}+ \d\d:\d\d:\d\d(?:\.\d++)?+|\d{4}-\d\d-\d\dT\S++) ++"
    r"(?:\S++ ++)?[^\s\[\]:]++(?:\[\d*+\])?+: "
)
_FAST_UPTIME = r"\[ *+\d++\.\d++\] "
_FAST_EXCEPTION_NAME = (
    r"(?=[A-Za-z_$][\w$.]*+(?:(?<=Error)|(?<=Exception)|(?<=Exit)|(?<=Interrupt)|(?<=Throwable))"
    rf"(?::|$)){_EXCEPTION_NAME}"
)
_FAST_CONTINUATION = re.compile(
    rf"^(?:{_FAST_HEADER}{_NOT_SUDO})?(?:{_FAST_UPTIME})?+{_trace_body(_FAST_EXCEPTION_NAME)}"
)
# A line's program: the host (None when absent, as in lines sent to /dev/log) and program of
# its syslog header, i.e. _FAST_HEADER with two groups (same language; the property test says
# so), matched from the start of every line of a multi-line workshop.
_header = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?:[A-Z][a-z]{2} ++\d{1,2}+ \d\d:\d\d:\d\d(?:\.\d++)?+|\d{4}-\d\d-\d\dT\S++) ++"
    r"(?:(\S++) ++)?([^\s\[\]:]++)(?:\[\d*+\])?+: "
).match
# The rest of _FAST_CONTINUATION, from where the header ends (or from the start of a line
# without one): with _header, the header of a line is read once for both questions.
_FAST_TAIL = rf"(?:{_FAST_UPTIME})?+{_trace_body(_FAST_EXCEPTION_NAME)}"
_after_header = re.compile(rf"{_NOT_SUDO}{_FAST_TAIL}").match
_without_header = re.compile(_FAST_TAIL).match
# The kernel writes no Python or Java trace: its "LustreError: ...", "LNetError: ..." are
# messages of their own, not an exception's last line continuing the kernel's previous line.
_KERNEL_TAIL = rf"(?:{_FAST_UPTIME})?+{_trace_body('(?!)')}"
_after_kernel_header = re.compile(rf"{_NOT_SUDO}{_KERNEL_TAIL}").match
_kernel_without_header = re.compile(_KERNEL_TAIL).match
# A kernel WARNING or BUG() begins with this line; the report's first line comes after it.
_CUT_HERE = "------------[ cut here ]------------"
_search_continuation = _FAST_CONTINUATION.search

RESUME_GRACE_NS = 10_000_000_000
"""After a restore (a restart, or a partition taken over), how long open records wait for the
partition's first line before their timeouts count again. Why: the time the partition had no
owner, and the time its new owner needs to fetch its backlog, is no time in which their next
lines could be read; a timeout run out meanwhile would cut traces whose next lines are already
waiting on the bus. Only a partition with no more input waits this long for its last lines."""

MAX_OPEN_PER_STREAM = 256
"""Traces in progress (records of two lines or more) one stream may hold, one per program. Past
it, the least recently extended one is emitted: the lines of one trace arrive within
milliseconds, so only a relay with this many traces in progress at once could cut one, and the
state (stored with every commit) stays bounded however many hosts a relay forwards."""


class _Rules(NamedTuple):
    start: re.Pattern[str] | None
    continuation: re.Pattern[str] | None
    timeout_ns: int
    max_lines: int
    default: bool  # continuation is DEFAULT_CONTINUATION: Sorter.feed reads it with _header


_StreamKey = tuple[str, str, str | None]
_Program = tuple[str | None, ...] | None
"""(header host, program) of a record's first line; None: the line has no syslog header."""


class _Open:
    """An open multi-line record: its first record and position, its program, all its lines."""

    __slots__ = ("deadline", "first", "lines", "position", "program", "raws", "workshop")

    def __init__(
        self,
        first: Record,
        position: Position,
        workshop: str,
        deadline: int,
        lines: list[str],
        program: _Program,
        raws: dict[int, bytes] | None = None,
    ) -> None:
        self.first = first
        self.position = position
        self.workshop = workshop
        self.deadline = deadline
        self.lines = lines
        self.program = program
        # index in lines -> the original bytes of a later line that was not UTF-8 (the first
        # line's are first.raw); None while there is none, as nearly always
        self.raws = raws


class _PendingRecord(msgspec.Struct, frozen=True):
    source: str
    host: str
    stream: str | None
    workshop: str
    position: Position
    deadline: int
    first: Record
    lines: list[str]
    raws: dict[int, bytes] | None = None  # _Open.raws; optional: old snapshots lack it


class _Snapshot(msgspec.Struct, frozen=True):
    version: int
    pending: list[_PendingRecord]


_SNAPSHOT_VERSION = 2  # 2: several records per stream (1: one); both restore alike
_encode = msgspec.json.Encoder().encode
_decode_snapshot = msgspec.json.Decoder(_Snapshot).decode


def _program(line: str) -> _Program:
    header = _header(line)
    return header.groups() if header is not None else None


def _first_line_order(ready: Ready) -> tuple[int, int]:
    return ready[1].partition, ready[1].offset


def _rules(ml: MultilineConfig) -> _Rules:
    start, continuation = ml.start, ml.continuation
    compiled: re.Pattern[str] | None = None
    if continuation == DEFAULT_CONTINUATION or (start is None and continuation is None):
        compiled = _FAST_CONTINUATION
    elif continuation is not None:
        compiled = re.compile(continuation)
    return _Rules(
        re.compile(start) if start is not None else None,
        compiled,
        int(ml.timeout * 1e9),
        max(1, ml.max_lines),
        compiled is _FAST_CONTINUATION,
    )


class Sorter:
    """Routes records and merges multi-line ones; see the module docstring for the rules."""

    def __init__(self, config: Config, workshops: Mapping[str, Workshop]) -> None:
        self._routes = dict(config.factory.routes)
        self._workshops = workshops
        self._rules: dict[str, _Rules] = {
            name: _rules(ws.multiline)
            for name, ws in config.workshops.items()
            if ws.multiline is not None
        }
        self._by_tag: dict[str, tuple[str, _Rules | None]] = {}
        # stream -> the record its latest line opened, while it is a single line: the next line
        # of the stream either continues it or emits it (at most one per stream)
        self._single: dict[_StreamKey, _Open] = {}
        # stream -> program -> its trace in progress (two lines or more); no empty entries, and
        # each stream's traces in the order they were last extended (the latest last)
        self._traces: dict[_StreamKey, dict[_Program, _Open]] = {}
        # after restore(now_ns=...): open records wait for the first line until then
        self._resume_until: int | None = None

    # -- routing -----------------------------------------------------------------------------
    def _resolve(self, tag: str) -> tuple[str, _Rules | None]:
        name = self._routes.get(tag)
        if name is None:
            if tag not in self._workshops:
                raise DecodeError(f"unknown source tag {tag!r}; add a route under factory.routes")
            name = tag
        hit = (name, self._rules.get(name))
        self._by_tag[tag] = hit
        return hit

    def route(self, record: Record) -> str:
        """The workshop for ``record`` (raises :class:`DecodeError` for an unknown tag)."""
        hit = self._by_tag.get(record.source)
        return (hit or self._resolve(record.source))[0]

    # -- merging -----------------------------------------------------------------------------
    def feed(self, record: Record, position: Position, now_ns: int) -> list[Ready]:
        """Records ready for decoding after ``record`` arrived (none, it, or merged ones), in
        the order of their first lines. Raises :class:`DecodeError` when the record's source
        tag has no workshop."""
        if self._resume_until is not None:
            self._resume(now_ns)
        workshop, rules = self._by_tag.get(record.source) or self._resolve(record.source)
        if rules is None:
            return [(record, position, workshop)]
        line = record.line
        continuation = rules.continuation
        if rules.default:  # DEFAULT_CONTINUATION, the header read once for both questions
            header = _header(line)
            if header is None:
                program: _Program = None
                continues = _without_header(line) is not None
                if continues and line.startswith("["):  # a kernel line (its uptime first)
                    continues = _kernel_without_header(line) is not None
            else:
                program = header.group(1, 2)
                continues = _after_header(line, header.end()) is not None
                if continues and program[1] == "kernel":
                    continues = _after_kernel_header(line, header.end()) is not None
                if not continues and (host := program[0]) is not None and host[-1] == ":":
                    # "Nov 21 10:00:00 a: b: ..." reads as host "a:" or as program "a"
                    continues = _search_continuation(line) is not None
        else:
            header = _header(line)
            program = header.groups() if header is not None else None
            continues = continuation is not None and continuation.search(line) is not None
        meta = record.meta
        stream = (meta.get("path") or meta.get("peer")) if meta else None
        if stream is not None and not isinstance(stream, str):
            stream = str(stream)
        key: _StreamKey = (record.source, record.host, stream)
        if rules.start is not None or continuation is None or continues:
            return self._merge(record, position, now_ns, workshop, rules, key, program, continues)
        # The hot path (continuation rules, and this line is none): its program's trace in
        # progress is complete, the stream's single-line record too (whatever its program),
        # and this line opens the next record, reusing the single-line record's holder.
        out: list[Ready] = []
        traces = self._traces.get(key) if self._traces else None
        if traces is not None and program in traces:
            out.append(self._end_trace(key, program))  # its first line came before the single
        singles = self._single
        single = singles.get(key)
        if (
            single is not None
            and single.program == program
            and rules.default
            and single.lines[0].endswith(_CUT_HERE)
        ):  # the line after its program's "[ cut here ]" line is the report it announces
            return self._merge(record, position, now_ns, workshop, rules, key, program, True)
        if rules.max_lines == 1:
            if single is not None:
                del singles[key]
                out.append(self._ready(single))
            out.append((record, position, workshop))
        elif single is None:
            singles[key] = _Open(
                record, position, workshop, now_ns + rules.timeout_ns, [line], program
            )
        else:
            out.append((single.first, single.position, single.workshop))
            single.first = record
            single.position = position
            single.workshop = workshop
            single.deadline = now_ns + rules.timeout_ns
            single.lines[0] = line
            single.program = program
        return out

    # hot path (every record of a multi-line program): an extra call per record costs throughput
    def _merge(  # noqa: C901
        self,
        record: Record,
        position: Position,
        now_ns: int,
        workshop: str,
        rules: _Rules,
        key: _StreamKey,
        program: _Program,
        continues: bool,
    ) -> list[Ready]:
        out: list[Ready] = []
        single = self._single.get(key)
        traces = self._traces.get(key)
        # its program's record; the one this line would continue: its program's, or for a line
        # without a header the stream's latest (a trace written with raw newlines after a header)
        own = single if single is not None and single.program == program else None
        if own is None and traces is not None:
            own = traces.get(program)
        target = own
        if program is None:
            if single is not None:
                target = single
            elif traces is not None:
                target = traces[next(reversed(traces))]
        line = record.line
        joined: _Open | None = None
        ends: _Open | None = None  # its program's record, ended by this line
        alone = rules.start is not None  # whether a line opening no record passes alone
        if rules.start is not None and rules.start.search(line) is not None:
            ends, alone = own, False
        elif rules.continuation is None or continues:
            joined = target
        else:  # continuation given, not matched
            ends = own
        if ends is not None and ends is not single:
            out.append(self._end_trace(key, ends.program))
        if joined is not None:
            joined.lines.append(line)
            if record.raw is not None:
                if joined.raws is None:
                    joined.raws = {}
                joined.raws[len(joined.lines) - 1] = record.raw
            joined.deadline = now_ns + rules.timeout_ns
            if joined is single:  # a trace begins
                del self._single[key]
                single = None
                traces = self._traces.setdefault(key, {})
            else:
                traces = self._traces[key]
                del traces[joined.program]
            traces[joined.program] = joined  # the latest last
            if len(joined.lines) >= rules.max_lines:
                out.append(self._end_trace(key, joined.program))
            elif len(traces) > MAX_OPEN_PER_STREAM:
                out.append(self._end_trace(key, next(iter(traces))))
        if single is not None:  # the line after it does not continue it
            del self._single[key]
            out.append(self._ready(single))
        if joined is None:
            if alone or rules.max_lines == 1:
                out.append((record, position, workshop))
            else:
                self._single[key] = _Open(
                    record, position, workshop, now_ns + rules.timeout_ns, [line], program
                )
        return out

    def _end_trace(self, key: _StreamKey, program: _Program) -> Ready:
        traces = self._traces[key]
        current = traces.pop(program)
        if not traces:
            del self._traces[key]
        return self._ready(current)

    @staticmethod
    def _ready(current: _Open) -> Ready:
        first = current.first
        if len(current.lines) == 1:
            return first, current.position, current.workshop
        meta: dict[str, Any] = dict(first.meta)
        meta["lines"] = len(current.lines)
        raw: bytes | None = None
        if current.raws is not None or first.raw is not None:
            originals = dict(current.raws or {})
            if first.raw is not None:
                originals[0] = first.raw
            raw = b"\n".join(
                originals[i] if i in originals else line.encode()
                for i, line in enumerate(current.lines)
            )
        merged = Record(
            source=first.source,
            host=first.host,
            received=first.received,
            line="\n".join(current.lines),
            meta=meta,
            raw=raw,
        )
        return merged, current.position, current.workshop

    def _take(self, due: int | None) -> list[Ready]:
        """The open records with a deadline up to ``due`` (None: all), removed, in the order
        of their first lines."""
        out: list[Ready] = []
        for key, current in list(self._single.items()):
            if due is None or current.deadline <= due:
                del self._single[key]
                out.append(self._ready(current))
        for key, traces in list(self._traces.items()):
            for program, current in list(traces.items()):
                if due is None or current.deadline <= due:
                    out.append(self._end_trace(key, program))
        out.sort(key=_first_line_order)
        return out

    def flush_due(self, now_ns: int) -> list[Ready]:
        """Open records idle past their timeout (cheap when nothing is open)."""
        if not self._single and not self._traces:
            return []
        if self._resume_until is not None:  # restored, no line read since: see RESUME_GRACE_NS
            if now_ns < self._resume_until:
                return []
            self._resume_until = None
        return self._take(now_ns)

    def _resume(self, now_ns: int) -> None:
        """The first line after a restore: every open record's timeout counts from now."""
        self._resume_until = None
        held = list(self._single.values())
        held += [c for traces in self._traces.values() for c in traces.values()]
        for current in held:
            rules = self._rules.get(current.workshop)
            if rules is not None:
                current.deadline = max(current.deadline, now_ns + rules.timeout_ns)

    def next_deadline(self) -> int | None:
        """When the earliest open record times out (ns), so the worker wakes just then."""
        deadlines = [c.deadline for c in self._single.values()]
        deadlines += [c.deadline for traces in self._traces.values() for c in traces.values()]
        if not deadlines:
            return None
        if self._resume_until is not None:
            return max(min(deadlines), self._resume_until)
        return min(deadlines)

    def flush_all(self) -> list[Ready]:
        """Every open record, e.g. at shutdown or at the end of a replay."""
        return self._take(None)

    def pending(self) -> int:
        """Input records (lines) held in open records, not yet handed to decoding."""
        return len(self._single) + sum(
            len(c.lines) for traces in self._traces.values() for c in traces.values()
        )

    # -- durability --------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The open records as JSON, to store with the committed input offsets.

        Each stream's records are stored in the order they were last extended (the latest
        last: its single-line record, if any). A record's program is not stored: it is its
        first line's, which :meth:`restore` finds again. So a version 1 snapshot (one record
        per stream, written before records were kept per program) restores as it was.
        """
        held = [(key, c) for key, traces in self._traces.items() for c in traces.values()]
        held += self._single.items()
        pending = [
            _PendingRecord(
                source=key[0],
                host=key[1],
                stream=key[2],
                workshop=current.workshop,
                position=current.position,
                deadline=current.deadline,
                first=current.first,
                lines=current.lines,
                raws=current.raws,
            )
            for key, current in held
        ]
        return _encode(_Snapshot(version=_SNAPSHOT_VERSION, pending=pending))

    def restore(self, data: bytes, now_ns: int | None = None) -> None:
        """Replace the open records by those of a :meth:`snapshot` (``b""``: none). Raises
        ``ValueError`` for data that is not a snapshot, or one of a newer version.

        With ``now_ns`` (a worker taking the partition over, at that time), the open records
        wait for the partition's next line, up to :data:`RESUME_GRACE_NS`, and their timeouts
        count from that line on."""
        self._single, self._traces = {}, {}
        self._resume_until = None if now_ns is None else now_ns + RESUME_GRACE_NS
        if not data:
            return
        try:
            snap = _decode_snapshot(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a sort-stage snapshot: {exc}") from None
        if not 1 <= snap.version <= _SNAPSHOT_VERSION:
            raise ValueError(
                f"sort-stage snapshot version {snap.version} is not one this version of "
                f"logfactory reads (1 to {_SNAPSHOT_VERSION})"
            )
        opened: dict[_StreamKey, dict[_Program, _Open]] = {}
        for p in snap.pending:
            program = _program(p.first.line)
            records = opened.setdefault((p.source, p.host, p.stream), {})
            records.pop(program, None)  # one per program: the later
            records[program] = _Open(
                p.first, p.position, p.workshop, p.deadline, list(p.lines), program,
                dict(p.raws) if p.raws else None,
            )  # fmt: skip
        for key, records in opened.items():
            # the latest, if a single line, is the stream's single-line record; any other
            # (from a snapshot of a version that held several) waits like a trace in progress
            latest = records[next(reversed(records))]
            if len(latest.lines) == 1:
                self._single[key] = records.pop(latest.program)
            if records:
                self._traces[key] = records
