"""``logfactory patterns learn``: history through the factory's own sort, decode and observe.

Live templates are mined from what a workshop decodes (a syslog line's message without its
header, a delegated program's message as its target workshop decodes it, a merged multi-line
record), so history has to take the same path, or nothing learned would ever match a live
record. Each line becomes a :class:`Record` as the file source makes it, and then goes
through the worker's own objects: the :class:`Sorter` (multi-line merging), the workshops
:func:`build_workshops` wires (delegation included) and the filter stage's observe step (which
mines only the workshops :func:`mined_workshops` names). A line that does not decode is
counted and reported, never fatal: one bad line must not cost a day of history.
"""

from __future__ import annotations

import gzip
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from logfactory.config import Config
from logfactory.errors import LearnError
from logfactory.factory.filter import FilterStage, mined_workshops
from logfactory.factory.model import Decoded, DecodeError, Position
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.sort import Ready, Sorter
from logfactory.factory.workshops import Workshop, build_workshops
from logfactory.record import make_record, now_ns

__all__ = ["LearnError", "LearnSummary", "Learner"]

_EXAMPLES = 3  # undecoded lines quoted in the summary


@dataclass
class LearnSummary:
    """``lines`` read (empty ones skipped, as the file source does), ``records`` decoded (after
    multi-line merging), ``mined`` of them observed into the library; ``not_mined`` counts
    decoded records per workshop that is not mined (e.g. lines delegated to a structured
    workshop); ``undecoded`` lines are counted, with the first few as ``FILE:LINE: reason``."""

    lines: int = 0
    records: int = 0
    mined: int = 0
    workshops: set[str] = field(default_factory=set)
    not_mined: Counter[str] = field(default_factory=Counter)
    undecoded: int = 0
    examples: list[str] = field(default_factory=list)


class Learner:
    """Feeds the lines of files to the library as a factory worker would see them arrive
    through a file source tagged with ``workshop``. Raises :class:`LearnError` for a workshop
    that the configuration does not have, or does not mine."""

    def __init__(
        self, config: Config, workshop: str, library: PatternLibrary, host: str | None = None
    ) -> None:
        where = config.path or "the configuration"
        if workshop not in config.workshops:
            names = ", ".join(config.workshops) or "none"
            raise LearnError(
                f"no workshop {workshop!r} in {where} (its workshops: {names}); "
                "give --workshop the one its source's records go to"
            )
        if workshop not in mined_workshops(config):
            fmt = config.workshops[workshop].format
            raise LearnError(
                f"workshop {workshop!r} is not mined (format {fmt}: its records are classified "
                f"by mappings, not templates); to learn its templates add 'mine: true' under "
                f"workshops.{workshop} in {where}"
            )
        self._tag = workshop
        self._host = host or socket.gethostname()
        self._workshops: dict[str, Workshop] = build_workshops(config)
        # records carry the workshop's own name as their tag: no route may send them elsewhere
        unrouted = msgspec.structs.replace(
            config, factory=msgspec.structs.replace(config.factory, routes={})
        )
        self._sorter = Sorter(unrouted, self._workshops)
        self._filter = FilterStage(config, library)
        self.summary = LearnSummary()

    def feed_file(self, path: str, progress: Callable[[int], None] | None = None) -> None:
        """Every line of ``path`` (``*.gz`` read through gzip, as rotated logs are stored);
        ``progress`` gets the bytes of the file read since its last call. Raises OSError
        (and gzip's BadGzipFile, an OSError) if the file cannot be read."""
        with open(path, "rb") as raw:
            fh: Iterable[bytes] = raw
            if path.endswith(".gz"):
                fh = gzip.GzipFile(fileobj=raw)
            done = 0
            for line_no, line in enumerate(fh, 1):
                self.feed(line.rstrip(b"\n"), path, line_no)
                if progress is not None and line_no % 1024 == 0:
                    at = raw.tell()
                    progress(at - done)
                    done = at
            if progress is not None:
                progress(raw.tell() - done)

    def feed(self, data: bytes, path: str, line_no: int) -> None:
        """One line of ``path`` (its bytes without the line terminator)."""
        if data.endswith(b"\r"):
            data = data[:-1]
        if not data:
            return
        self.summary.lines += 1
        now = now_ns()
        record = make_record(self._tag, self._host, data, {"path": path}, received=now)
        position = Position(path, 0, line_no)
        try:
            ready = self._sorter.feed(record, position, now)
        except DecodeError as exc:  # unreachable with routes cleared; kept like the worker
            self._undecoded(position, exc.reason)
            return
        self._handle(ready)

    def finish(self) -> LearnSummary:
        """Decode what multi-line merging still holds; the summary of the whole run."""
        self._handle(self._sorter.flush_all())
        return self.summary

    def _handle(self, ready: list[Ready]) -> None:
        summary = self.summary
        for record, position, name in ready:
            try:
                parts = self._workshops[name].decode(record)
            except DecodeError as exc:
                self._undecoded(position, exc.reason)
                continue
            except Exception as exc:  # a workshop bug costs one record, as in the worker
                self._undecoded(position, f"workshop {name} failed: {exc!r}")
                continue
            summary.records += 1
            decoded = Decoded(
                record=record, position=position, workshop=parts.workshop,
                time_ns=parts.time_ns, message=parts.message, fields=parts.fields,
            )  # fmt: skip
            if self._filter.observe(decoded) is None:
                summary.not_mined[parts.workshop] += 1
            else:
                summary.mined += 1
                summary.workshops.add(parts.workshop)

    def _undecoded(self, position: Position, reason: str) -> None:
        summary = self.summary
        summary.undecoded += 1
        if len(summary.examples) < _EXAMPLES:
            summary.examples.append(f"{position.topic}:{position.offset}: {reason}")
