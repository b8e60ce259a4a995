"""``logfactory patterns``: build, inspect, review and move the pattern library.

The library's home is the compacted bus topic ``patterns.library`` (every factory worker
re-learns it from there at start); these commands read it from the bus of ``-c CONFIG`` and
write changes back to it, or work on readable JSON-lines files.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from logfactory.bus.base import Bus
from logfactory.config import Config
from logfactory.factory.patterns.diff import (
    LibraryDiff,
    LibraryFileError,
    diff_libraries,
    read_library_file,
)
from logfactory.factory.patterns.entry import PatternEntry
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.patterns.topic import load_library, save_changes

if TYPE_CHECKING:  # the factory's stages load only when learn runs
    from logfactory.factory.patterns.learn import LearnSummary

__all__ = ["load_library", "patterns", "save_changes"]

_CONFIG_HELP = "configuration file (default: $LOGFACTORY_CONFIG or ./examples/demo.yaml)"


def _load(config_path: str | None) -> Config:
    from logfactory.config import ConfigError
    from logfactory.subscribe import find_config

    try:
        return find_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _bus(config: Config) -> Bus:
    """The bus, its topics made: these commands write to it, and an embedded bus lives in the
    data directory, so that is made owner-only first (logfactory.owner_only)."""
    from logfactory.bus import open_bus
    from logfactory.owner_only import make_owner_only
    from logfactory.topics import ensure_topics

    if config.bus.type == "local":
        make_owner_only(config.data_dir)
    bus = open_bus(config)
    ensure_topics(bus, config)
    return bus


def _open(config_path: str | None) -> Bus:
    return _bus(_load(config_path))


def _when(ns: int) -> str:
    """ISO 8601 UTC to the second (``-`` for never): what people read in lists and diffs."""
    if not ns:
        return "-"
    stamp = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


_ID_WIDTH = 22  # "p-" and 20 hex digits
_LIST_HEADER = (
    f"{'ID':<{_ID_WIDTH}}  {'WORKSHOP':<10} {'COUNT':>9}  {'LAST SEEN':<20}  {'STATUS':<8}  "
    "TEMPLATE"
)


def _entry_line(e: PatternEntry) -> str:
    status = e.status if e.status != "alert" else f"alert({e.severity or 'high'}): {e.reason}"
    return (
        f"{e.id:<{_ID_WIDTH}}  {e.workshop:<10} {e.count:>9}  {_when(e.last_seen):<20}  "
        f"{status:<8}  {e.template}"
    )


_HEX = frozenset("0123456789abcdef")
_SHOWN_CANDIDATES = 10


def _resolve(library: PatternLibrary, given: str) -> str:
    """The one id ``given`` names: a whole id (an old one finds its successor) or any unique
    prefix, with or without ``p-``; a trailing ellipsis, as the README abbreviates ids, is
    ignored. Unknown or ambiguous: a ClickException that says what to give instead."""
    text = given.strip().rstrip("\u2026.").lower()
    if text and not text.startswith("p-") and set(text) <= _HEX:
        text = "p-" + text
    if len(text) <= 2:
        raise click.ClickException(
            f"{given!r} is no pattern id; give an id or its first characters, e.g. p-41d0 "
            "(`logfactory patterns list` shows them)"
        )
    exact = library.get(text)
    if exact is not None:
        return exact.id
    found = library.ids_with_prefix(text)
    if not found:
        raise click.ClickException(
            f"no pattern {given!r} in the library; `logfactory patterns list` shows the ids"
        )
    if len(found) > 1:
        lines = []
        for pid in found[:_SHOWN_CANDIDATES]:
            entry = library.get(pid)
            lines.append(f"  {pid}  {entry.template if entry is not None else ''}")
        if len(found) > _SHOWN_CANDIDATES:
            lines.append(f"  ... and {len(found) - _SHOWN_CANDIDATES} more")
        raise click.ClickException(
            f"{given!r} is ambiguous: {len(found)} patterns start with it; give more "
            "characters of one of:\n" + "\n".join(lines)
        )
    return found[0]


@click.group(short_help="The pattern library: learn, review, move it.")
def patterns() -> None:
    """The pattern library: learn it from history, review it, export and import it."""


@patterns.command(short_help="Mine a file of messages into a file of templates.")
@click.option(
    "--input",
    "input_",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="messages, one per line (no syslog header: see learn for whole log lines)",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="JSON lines written here"
)
@click.option("--workshop", default="default", help="workshop name the ids are derived with")
def parse(input_: str, out: str, workshop: str) -> None:
    """One online pass over INPUT (a message per line) -> OUT.jsonl, one template per line
    ({"line": N, "pattern": ID, "template": TEXT}), for benchmarks and offline study.

    \b
    Examples:
      logfactory patterns parse --input messages.txt --out templates.jsonl
    """
    from logfactory.factory.patterns.parse_file import parse_file

    summary = parse_file(Path(input_), Path(out), workshop)
    click.echo(
        f"{summary.lines} lines, {summary.templates} templates, "
        f"{summary.lines / max(summary.seconds, 1e-9):,.0f} lines/s",
        err=True,
    )


@patterns.command(short_help="Build or extend the library from historical logs.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--workshop",
    default="syslog",
    show_default=True,
    help="the workshop that decodes these lines, as for the source they come from",
)
@click.option("--top", default=10, show_default=True, help="how many top templates to show")
@click.option("--out", type=click.Path(dir_okay=False), help="write a file instead of the bus")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def learn(
    files: tuple[str, ...], workshop: str, top: int, out: str | None, config_path: str | None
) -> None:
    """Build or extend the library from historical logs (*.gz too).

    Each line is decoded by the workshop exactly as the factory decodes a file source's
    records (multi-line merging, delegation such as slurmctld -> slurm), so the templates
    learned are the ones live records match. Only mined workshops' messages become
    templates; lines that do not decode are counted and reported.

    \b
    Examples:
      logfactory patterns learn /var/log/messages /var/log/secure --workshop syslog
      logfactory patterns learn old/*.gz --out learned.jsonl   # a file, not the bus
    """
    from logfactory.factory.patterns.learn import Learner, LearnError

    config = _load(config_path)
    bus = None if out else _bus(config)
    try:
        library = load_library(bus) if bus is not None else PatternLibrary()
        try:
            learner = Learner(config, workshop, library)
        except LearnError as exc:
            raise click.ClickException(str(exc)) from exc
        before = len(library)
        for name in files:
            size = Path(name).stat().st_size
            with click.progressbar(length=size, label=Path(name).name, file=sys.stderr) as bar:
                try:
                    learner.feed_file(name, bar.update)
                except OSError as exc:
                    raise click.ClickException(f"{name}: cannot read it: {exc}") from exc
        summary = learner.finish()
        if out:
            library.export_jsonl(out)
            where = out
        else:
            assert bus is not None
            save_changes(bus, library)
            where = "the bus (patterns.library)"
    finally:
        if bus is not None:
            bus.close()
    _print_learned(summary, library, before, where, top)


def _print_learned(
    summary: LearnSummary, library: PatternLibrary, before: int, where: str, top: int
) -> None:
    entries = [e for e in library.entries() if e.workshop in summary.workshops]
    click.echo(
        f"{summary.lines} lines, {summary.mined} messages mined: {len(entries)} templates "
        f"({len(library) - before} new) -> {where}"
    )
    for name, n in sorted(summary.not_mined.items()):
        click.echo(
            f"{n} records decoded by workshop {name} were not mined (its records are classified "
            "by mappings; 'mine: true' under its workshop mines them)",
            err=True,
        )
    if summary.undecoded:
        click.echo(f"{summary.undecoded} lines did not decode and were skipped, e.g.", err=True)
        for example in summary.examples:
            click.echo(f"  {example}", err=True)
    for e in sorted(entries, key=lambda e: -e.count)[:top]:
        click.echo(f"{e.count:>9}  {e.template}")


@patterns.command(name="list", short_help="The library's templates, one per line.")
@click.option("--workshop", default=None, help="only this workshop's templates")
@click.option(
    "--status",
    type=click.Choice(["new", "normal", "alert"]),
    default=None,
    help="only templates with this review status (new: not reviewed yet)",
)
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def list_(workshop: str | None, status: str | None, config_path: str | None) -> None:
    """The library's templates: id, workshop, count, last seen (UTC), status, template.

    Any unique prefix of an id names it in show and mark.

    \b
    Examples:
      logfactory patterns list --status new      # what people should review
      logfactory patterns list --workshop syslog
    """
    bus = _open(config_path)
    try:
        chosen = [
            e for e in load_library(bus).entries(workshop) if status is None or e.status == status
        ]
    finally:
        bus.close()
    click.echo(_LIST_HEADER)
    for e in chosen:
        click.echo(_entry_line(e))
    if not chosen:
        click.echo("no templates" + (" with these options" if workshop or status else ""), err=True)


@patterns.command(short_help="One template in full, as JSON.")
@click.argument("pattern_id")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def show(pattern_id: str, config_path: str | None) -> None:
    """One template in full, as JSON (times ISO 8601 UTC). PATTERN_ID: an id or its prefix.

    \b
    Examples:
      logfactory patterns show p-41d0
    """
    import msgspec

    bus = _open(config_path)
    try:
        library = load_library(bus)
    finally:
        bus.close()
    entry = library.get(_resolve(library, pattern_id))
    assert entry is not None  # _resolve returns active ids only
    shown = msgspec.to_builtins(entry)
    for key in ("first_seen", "last_seen"):
        if key in shown:
            shown[key] = _when(shown[key])
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))


@patterns.command(short_help="Review a template: normal, or an alert with its reason.")
@click.argument("pattern_id")
@click.option("--normal", "as_normal", is_flag=True, help="known and harmless: not distributed")
@click.option("--alert", "reason", default=None, help="an ALERT with this reason")
@click.option(
    "--severity",
    type=click.Choice(["info", "low", "medium", "high", "critical"]),
    help="of the ALERT (default high)",
)
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def mark(
    pattern_id: str,
    as_normal: bool,
    reason: str | None,
    severity: str | None,
    config_path: str | None,
) -> None:
    """Review a template: --normal, or --alert REASON [--severity S]. PATTERN_ID: an id or
    its prefix. Every factory worker applies the review within a second.

    \b
    Examples:
      logfactory patterns mark p-41d0 --alert "RAID controller resets" --severity high
      logfactory patterns mark p-77aa --normal
    """
    if as_normal == (reason is not None):
        raise click.UsageError("give exactly one of --normal or --alert REASON")
    bus = _open(config_path)
    try:
        library = load_library(bus)
        pid = _resolve(library, pattern_id)
        if as_normal:
            library.set_status(pid, "normal")
        else:
            library.set_status(pid, "alert", reason, severity or "high")
        save_changes(bus, library)
    finally:
        bus.close()
    click.echo(f"{pid}: {'normal' if as_normal else 'alert: ' + str(reason)}")


@patterns.command(name="export", short_help="Write the library to a readable file.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def export_(file: str, config_path: str | None) -> None:
    """Write the library to FILE (JSON lines with a version header; readable, diffable).

    \b
    Examples:
      logfactory patterns export lib.jsonl
    """
    bus = _open(config_path)
    try:
        n = load_library(bus).export_jsonl(file)
    finally:
        bus.close()
    click.echo(f"{n} templates -> {file}")


@patterns.command(name="import", short_help="Merge an exported file into the library.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def import_(file: str, config_path: str | None) -> None:
    """Merge an exported FILE into the library on the bus.

    \b
    Examples:
      logfactory patterns import lib.jsonl -c site.yaml
    """
    bus = _open(config_path)
    try:
        library = load_library(bus)
        try:
            n = library.import_jsonl(file)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        save_changes(bus, library)
    finally:
        bus.close()
    click.echo(f"{n} templates imported from {file}")


class _BadInput(click.ClickException):
    """Exit status 2, as ``diff`` uses for trouble (1 means "they differ")."""

    exit_code = 2


def _review_text(e: PatternEntry) -> str:
    if e.status != "alert":
        return e.status
    return f"alert({e.severity or 'high'}): {e.reason}"


def _print_diff(result: LibraryDiff) -> None:
    def group(title: str, lines: list[str]) -> None:
        if lines:
            click.echo(f"{title} ({len(lines)}):")
            for line in lines:
                click.echo(f"  {line}")

    group("added", [f"+ {e.id}  {e.workshop}  {e.status}  {e.template}" for e in result.added])
    group("removed", [f"- {e.id}  {e.workshop}  {e.template}" for e in result.removed])
    generalised = []
    for c in result.generalised:
        line = f"~ {c.old.id} -> {c.new.id}  {c.new.workshop}  {c.old.template} -> {c.new.template}"
        if _review_text(c.old) != _review_text(c.new):
            line += f"  [{_review_text(c.old)} -> {_review_text(c.new)}]"
        generalised.append(line)
    group("generalised", generalised)
    group(
        "status changed",
        [
            f"! {c.new.id}  {c.new.workshop}  {_review_text(c.old)} -> {_review_text(c.new)}"
            f"  {c.new.template}"
            for c in result.status_changed
        ],
    )
    group(
        "counts changed",
        [
            f"# {c.new.id}  {c.new.workshop}  count {c.old.count} -> {c.new.count}, "
            f"last seen {_when(c.old.last_seen)} -> {_when(c.new.last_seen)}  {c.new.template}"
            for c in result.counts_changed
        ],
    )
    click.echo(result.summary())


@patterns.command(name="diff", short_help="What changed between two exported libraries.")
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@click.option("--counts", is_flag=True, help="also report count, first_seen and last_seen changes")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead")
def diff(old: str, new: str, counts: bool, as_json: bool) -> None:
    """What changed from OLD to NEW (files written by export). Exit 0: same, 1: different,
    2: bad input.

    \b
    Examples:
      logfactory patterns diff last-week.jsonl today.jsonl
      logfactory patterns diff old.jsonl new.jsonl --counts --json
    """
    try:
        before, after = read_library_file(old), read_library_file(new)
    except LibraryFileError as exc:
        raise _BadInput(str(exc)) from exc
    result = diff_libraries(before, after, counts=counts)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        _print_diff(result)
    if result:
        click.get_current_context().exit(1)
