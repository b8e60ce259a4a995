"""``workshops`` (one per log format), ``factory`` and ``event_types``."""

from __future__ import annotations

import re
import typing
from typing import Literal

from logfactory.config.base import PathKey, Problems, Section
from logfactory.config.units import Duration

__all__ = [
    "WORKSHOP_FORMATS",
    "EventTypeConfig",
    "FactoryConfig",
    "MultilineConfig",
    "WorkshopConfig",
    "regex_problems",
]

WorkshopFormat = Literal["syslog", "kv", "slurm", "json"]
# plain data for the factory's registry (factory/workshops/__init__.py); a test holds the two equal
WORKSHOP_FORMATS: tuple[str, ...] = typing.get_args(WorkshopFormat)


def regex_problems(at: PathKey, pattern: str | None) -> Problems:
    """A regular expression that does not compile, at its key."""
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except re.error as exc:
        yield (at, f"invalid regular expression {pattern!r}: {exc}")


class MultilineConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``workshops.NAME.multiline``: records of several lines, merged before decoding.

    Lines matching ``start`` open a record; lines matching ``continuation`` (or not matching
    ``start`` when ``continuation`` is absent) join it; the record flushes after ``timeout``.

    Attributes:
        start: a regex: a line matching it opens a record
        continuation: a regex: a line matching it joins the open record
        timeout: a record with no new line for this long is flushed
        max_lines: lines of one record at most; then it is flushed
    """

    start: str | None = None
    continuation: str | None = None
    timeout: Duration = Duration("1s")
    max_lines: int = 500

    def problems(self) -> Problems:
        yield from regex_problems(("start",), self.start)
        yield from regex_problems(("continuation",), self.continuation)


class WorkshopConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``workshops.NAME``: one log format and its decoder's options.

    ``mine``: whether the pattern library mines this workshop's messages into templates (and
    announces new ones). Unset: free text (``syslog``) is mined, structured formats (``kv``,
    ``slurm``, ``json``) are not: their messages vary by field values, so every user or job id
    would become a template nobody wants to review; mappings classify them. A workshop listed
    in ``factory.pattern_workshops`` is mined unless it says false.

    Attributes:
        format: syslog, kv (delimited middleware logs), slurm or json
        mine: whether the pattern library mines its messages (default: syslog yes, others no)
        multiline: merge records of several lines before decoding
        delegate: syslog: program -> the workshop that decodes that program's message
        timezone: the time zone of times without one (default: node.timezone)
        separator: kv: the column separator
        fields: kv: the names of the delimited columns
        pair_separator: kv: between key=value pairs of the last column
        kv_separator: kv: between a key and its value
        time_field: kv: the column holding the time
        time_format: kv: its strptime format (default: ISO 8601 and common forms)
        message_field: json: the key holding the message
    """

    format: WorkshopFormat
    mine: bool | None = None
    multiline: MultilineConfig | None = None
    delegate: dict[str, str] = {}
    timezone: str | None = None
    separator: str = "|"
    fields: list[str] = []
    pair_separator: str = " "
    kv_separator: str = "="
    time_field: str | None = None
    time_format: str | None = None
    message_field: str = "message"

    def problems(self) -> Problems:
        if self.multiline is not None:
            for path, what in self.multiline.problems():
                yield (("multiline", *path), what)
        if self.format == "kv" and not self.fields:
            yield (("fields",), "a kv workshop needs 'fields': the names of the delimited columns")


class EventTypeConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``event_types[]``: a site-defined event type.

    Attributes:
        name: the type's name (an events.<name> topic carries its events)
        description: what an event of it says
        required: the body fields every event of it carries
    """

    name: str
    description: str = ""
    required: list[str] = []


class FactoryConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``factory``: the event factory's consumer group and routing.

    Attributes:
        group: the consumer group of the factory's workers
        batch_size: records taken from the bus at once
        routes: record tag -> workshop
        new_patterns: announce templates never seen before as NEW_PATTERN events
        pattern_workshops: only these workshops announce new templates (default: every mined
            one)
    """

    group: str = "factory"
    batch_size: int = 500
    routes: dict[str, str] = {}
    new_patterns: bool = True
    pattern_workshops: list[str] | None = None
