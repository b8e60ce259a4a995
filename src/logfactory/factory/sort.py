"""Sort stage: route each record to its workshop, and merge multi-line records before decoding.

Routing: ``factory.routes[tag]``, else the workshop named like the tag, else a
:class:`DecodeError` (the record is dead-lettered with the reason).

Merging, per workshop with ``multiline:``, per stream ``(source tag, host, meta path or peer)``:

* a line matching ``start`` opens a record (emitting the open one);
* with ``continuation``, a line matching it joins the open record; any other line emits the
  open record and then either opens a new one (no ``start``: every line may be followed by
  continuations) or passes alone (``start`` given: only ``start`` lines open records);
* with ``start`` only, every other line joins the open record (or passes alone if none is open);
* ``max_lines`` caps a record; an open record idle for ``timeout`` is emitted by
  :meth:`Sorter.flush_due`, which the worker calls on every poll.

``multiline: {}`` (neither ``start`` nor ``continuation``) uses :data:`DEFAULT_CONTINUATION`, which
recognises Java stack traces, Python tracebacks and kernel oopses, raw or inside syslog framing.

A merged record keeps the first line's record (host, received, meta) with ``line`` = the lines
joined by ``\\n`` and ``meta["lines"]`` = their count; its position is the first line's, so the
deterministic event id does not depend on how many lines followed. Open records are part of the
worker's durable state: :meth:`Sorter.snapshot` is stored with the committed input offsets.
``now_ns`` must be wall-clock time (:func:`logfactory.record.now_ns`): deadlines survive a restart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from logfactory.config import Config, MultilineConfig, parse_duration
from logfactory.factory.model import DecodeError, Position
from logfactory.factory.workshops.base import Workshop
from logfactory.record import Record

__all__ = ["DEFAULT_CONTINUATION", "Ready", "Sorter"]

Ready = tuple[Record, Position, str]
"""A record ready for decoding, the position of its first line, and its workshop's name."""

# The header a syslog daemon puts in front of every line of a trace sent line by line.
_SYSLOG_HEADER = (
    r"(?:<\d{1,3}>)?"
    r"(?:[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\dT\S+) +"
    r"(?:\S+ +)?[^\s\[\]:]+(?:\[\d*\])?: "
)
_KERNEL_UPTIME = r"\[ *\d+\.\d+\] "
_EXCEPTION_NAME = (
    r"[A-Za-z_$][\w$]*(?:\.[\w$]+)*(?:Error|Exception|Exit|Interrupt|Throwable)(?::|$)"
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
        r"|(?:IP|RIP|RSP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d{1,2}|FS|CS|CR2|Code|Stack|Call Trace"
        r"|Modules linked in|Hardware name|Workqueue|#PF):"
        r"|(?:PGD|P4D|PUD|PMD|PTE) [0-9a-f]+|Oops: |CPU: \d+ PID: |---\[ end "
        r"|Kernel panic - not syncing|</?(?:IRQ|TASK|NMI|EOI)>"
        r"|$)"
    )


_TRACE_BODY = _trace_body(_EXCEPTION_NAME)
DEFAULT_CONTINUATION = rf"^(?:{_SYSLOG_HEADER})?(?:{_KERNEL_UPTIME})?{_TRACE_BODY}"
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
    rf"^(?:{_FAST_HEADER})?(?:{_FAST_UPTIME})?+{_trace_body(_FAST_EXCEPTION_NAME)}"
)


class _Rules(NamedTuple):
    start: re.Pattern[str] | None
    continuation: re.Pattern[str] | None
    timeout_ns: int
    max_lines: int


class _Open:
    """An open multi-line record: its first record and position, and all its lines."""

    __slots__ = ("deadline", "first", "lines", "position", "workshop")

    def __init__(
        self, first: Record, position: Position, workshop: str, deadline: int, lines: list[str]
    ) -> None:
        self.first = first
        self.position = position
        self.workshop = workshop
        self.deadline = deadline
        self.lines = lines


class _PendingRecord(msgspec.Struct, frozen=True):
    source: str
    host: str
    stream: str | None
    workshop: str
    position: Position
    deadline: int
    first: Record
    lines: list[str]


class _Snapshot(msgspec.Struct, frozen=True):
    version: int
    pending: list[_PendingRecord]


_StreamKey = tuple[str, str, str | None]
_encode = msgspec.json.Encoder().encode
_decode_snapshot = msgspec.json.Decoder(_Snapshot).decode


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
        int(parse_duration(ml.timeout) * 1e9),
        max(1, ml.max_lines),
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
        self._open: dict[_StreamKey, _Open] = {}

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
        """Records ready for decoding after ``record`` arrived (none, it, or merged ones).
        Raises :class:`DecodeError` when the record's source tag has no workshop."""
        workshop, rules = self._by_tag.get(record.source) or self._resolve(record.source)
        if rules is None:
            return [(record, position, workshop)]
        continuation = rules.continuation
        if (
            rules.start is not None
            or continuation is None
            or record.raw is not None
            or continuation.search(record.line) is not None
        ):
            return self._merge(record, position, now_ns, workshop, rules)
        # The hot path (continuation rules, and this line is none): the stream's open record
        # is complete and this line opens the next one, reusing the open record's holder.
        meta = record.meta
        stream = (meta.get("path") or meta.get("peer")) if meta else None
        if stream is not None and not isinstance(stream, str):
            stream = str(stream)
        key: _StreamKey = (record.source, record.host, stream)
        opened = self._open
        current = opened.pop(key, None)
        if current is None:
            current = _Open(record, position, workshop, now_ns + rules.timeout_ns, [record.line])
            out: list[Ready] = []
        else:
            lines = current.lines
            if len(lines) == 1:  # the usual: the open record was a single line
                out = [(current.first, current.position, current.workshop)]
                lines[0] = record.line
            else:
                out = [self._ready(current)]
                current.lines = [record.line]
            current.first = record
            current.position = position
            current.workshop = workshop
            current.deadline = now_ns + rules.timeout_ns
        if rules.max_lines == 1:
            out.append((record, position, workshop))
        else:
            opened[key] = current
        return out

    def _merge(
        self, record: Record, position: Position, now_ns: int, workshop: str, rules: _Rules
    ) -> list[Ready]:
        meta = record.meta
        stream = (meta.get("path") or meta.get("peer")) if meta else None
        if stream is not None and not isinstance(stream, str):
            stream = str(stream)
        key: _StreamKey = (record.source, record.host, stream)
        out: list[Ready] = []
        current = self._open.get(key)
        if record.raw is not None:  # undecodable bytes: never merged, dead-lettered alone
            if current is not None:
                out.append(self._close(key))
            out.append((record, position, workshop))
            return out
        line = record.line
        if rules.start is not None and rules.start.search(line) is not None:
            if current is not None:
                out.append(self._close(key))
            current = None
            opens = True
        elif rules.continuation is None or rules.continuation.search(line) is not None:
            opens = current is None and rules.start is None
            if current is None and not opens:
                out.append((record, position, workshop))
                return out
        else:  # continuation given, not matched
            if current is not None:
                out.append(self._close(key))
            current = None
            opens = rules.start is None
            if not opens:
                out.append((record, position, workshop))
                return out
        if current is None:
            current = _Open(record, position, workshop, 0, [line])
            self._open[key] = current
        else:
            current.lines.append(line)
        current.deadline = now_ns + rules.timeout_ns
        if len(current.lines) >= rules.max_lines:
            out.append(self._close(key))
        return out

    def _close(self, key: _StreamKey) -> Ready:
        return self._ready(self._open.pop(key))

    @staticmethod
    def _ready(current: _Open) -> Ready:
        first = current.first
        if len(current.lines) == 1:
            return first, current.position, current.workshop
        meta: dict[str, Any] = dict(first.meta)
        meta["lines"] = len(current.lines)
        merged = Record(
            source=first.source,
            host=first.host,
            received=first.received,
            line="\n".join(current.lines),
            meta=meta,
        )
        return merged, current.position, current.workshop

    def flush_due(self, now_ns: int) -> list[Ready]:
        """Open records idle past their timeout (cheap when nothing is open)."""
        if not self._open:
            return []
        due = [key for key, current in self._open.items() if current.deadline <= now_ns]
        return [self._close(key) for key in due]

    def next_deadline(self) -> int | None:
        """When the earliest open record times out (ns), so the worker wakes just then."""
        if not self._open:
            return None
        return min(current.deadline for current in self._open.values())

    def flush_all(self) -> list[Ready]:
        """Every open record, e.g. at shutdown or at the end of a replay."""
        return [self._close(key) for key in list(self._open)]

    def pending(self) -> int:
        """Input records (lines) held in open records, not yet handed to decoding."""
        return sum(len(current.lines) for current in self._open.values())

    # -- durability --------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The open records as JSON, to store with the committed input offsets."""
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
            )
            for key, current in self._open.items()
        ]
        return _encode(_Snapshot(version=1, pending=pending))

    def restore(self, data: bytes) -> None:
        """Replace the open records by those of a :meth:`snapshot` (``b""``: none). Raises
        ``ValueError`` for data that is not a snapshot."""
        if not data:
            self._open = {}
            return
        try:
            snap = _decode_snapshot(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a sort-stage snapshot: {exc}") from None
        self._open = {
            (p.source, p.host, p.stream): _Open(
                p.first, p.position, p.workshop, p.deadline, list(p.lines)
            )
            for p in snap.pending
        }
