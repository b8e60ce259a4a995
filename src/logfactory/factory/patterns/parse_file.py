"""``logfactory patterns parse``: one pass of the online miner over a file of messages.

Contract (the accuracy benchmark depends on it): the input holds one message per line (content
without header); the output holds one JSON object per input line, in order,
``{"line": N, "pattern": ID, "template": TEXT}`` with N counted from 1. The miner learns online in
input order, in one pass; ID and TEXT are the line's template *as it stands at the end of the
run*: a template that later generalised, or merged into another, is reported as its successor
(the lineage the library keeps), so lines are grouped by what the miner finally believes.
IDs are :func:`~logfactory.factory.patterns.entry.pattern_id` of the workshop and final text,
the same ids the library gives.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import msgspec

from logfactory.factory.patterns.entry import pattern_id
from logfactory.factory.patterns.miner_accurate import AccurateMiner, Cluster

__all__ = ["ParseSummary", "parse_file", "parse_messages"]


class ParseSummary(NamedTuple):
    lines: int
    templates: int
    seconds: float


class _Line(msgspec.Struct):
    line: int
    pattern: str
    template: str


def parse_messages(messages: Iterable[str], workshop: str = "default") -> list[tuple[str, str]]:
    """(pattern id, template) per message, as at the end of one online pass over them."""
    miner = AccurateMiner()
    add = miner.add
    clusters: list[Cluster] = [add(workshop, message)[0] for message in messages]
    final: dict[int, tuple[str, str]] = {}
    out: list[tuple[str, str]] = []
    for cluster in clusters:
        got = final.get(cluster.handle)
        if got is None:
            text = miner.current(cluster).text
            got = final[cluster.handle] = (pattern_id(workshop, text), text)
        out.append(got)
    return out


def _read_lines(path: Path) -> list[str]:
    # bytes that are not UTF-8 become U+FFFD: the line is still a message, and the output stays
    # valid UTF-8 JSON
    with path.open("r", encoding="utf-8", errors="replace", newline="\n") as fh:
        return [line.rstrip("\r\n") for line in fh]


def parse_file(input: Path, output: Path, workshop: str = "default") -> ParseSummary:
    """Parse ``input`` into ``output`` (see the module docstring). Raises OSError if a file
    cannot be read or written."""
    start = time.perf_counter()
    messages = _read_lines(Path(input))
    parsed = parse_messages(messages, workshop)
    encode = msgspec.json.Encoder().encode
    with Path(output).open("wb") as fh:
        for n, (pid, text) in enumerate(parsed, 1):
            fh.write(encode(_Line(n, pid, text)))
            fh.write(b"\n")
    templates = len({pid for pid, _ in parsed})
    return ParseSummary(len(parsed), templates, time.perf_counter() - start)
