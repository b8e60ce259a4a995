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

import click

from logfactory.bus.base import Bus
from logfactory.factory.patterns.diff import (
    LibraryDiff,
    LibraryFileError,
    diff_libraries,
    read_library_file,
)
from logfactory.factory.patterns.entry import PatternEntry
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.patterns.topic import load_library, save_changes
from logfactory.record import now_ns

__all__ = ["load_library", "patterns", "save_changes"]

_CONFIG_HELP = "configuration file (default: $LOGFACTORY_CONFIG or ./examples/demo.yaml)"


def _open(config_path: str | None) -> Bus:
    from logfactory.config import ConfigError
    from logfactory.subscribe import find_config, open_bus
    from logfactory.topics import ensure_topics

    try:
        config = find_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    bus = open_bus(config)
    ensure_topics(bus, config)
    return bus


def _entry_line(e: PatternEntry) -> str:
    status = e.status if e.status != "alert" else f"alert({e.severity or 'high'}): {e.reason}"
    return f"{e.id}  {e.workshop:<10} {e.count:>9}  {status:<8}  {e.template}"


@click.group()
def patterns() -> None:
    """The pattern library: learn it from history, review it, export and import it."""


@patterns.command()
@click.option("--input", "input_", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--workshop", default="default", help="workshop name the ids are derived with")
def parse(input_: str, out: str, workshop: str) -> None:
    """One online pass over INPUT (a message per line) -> OUT.jsonl, one template per line."""
    from logfactory.factory.patterns.parse_file import parse_file

    summary = parse_file(Path(input_), Path(out), workshop)
    click.echo(
        f"{summary.lines} lines, {summary.templates} templates, "
        f"{summary.lines / max(summary.seconds, 1e-9):,.0f} lines/s",
        err=True,
    )


@patterns.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--workshop", default="syslog", show_default=True)
@click.option("--top", default=10, show_default=True, help="how many top templates to show")
@click.option("--out", type=click.Path(dir_okay=False), help="write a file instead of the bus")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def learn(
    files: tuple[str, ...], workshop: str, top: int, out: str | None, config_path: str | None
) -> None:
    """Build or extend the library from historical logs (one message per line)."""
    bus = None if out else _open(config_path)
    library = load_library(bus) if bus is not None else PatternLibrary()
    before = len(library.entries(workshop))
    total = 0
    for name in files:
        size = Path(name).stat().st_size
        with (
            open(name, encoding="utf-8", errors="replace") as fh,
            click.progressbar(length=size, label=Path(name).name, file=sys.stderr) as bar,
        ):
            for line in fh:
                text = line.rstrip("\r\n")
                if text:
                    library.observe(workshop, text, now_ns())
                    total += 1
                bar.update(len(line))
    entries = library.entries(workshop)
    if out:
        library.export_jsonl(out)
        where = out
    else:
        assert bus is not None
        save_changes(bus, library)
        bus.close()
        where = "the bus (patterns.library)"
    click.echo(
        f"{total} messages, {len(entries)} templates ({len(entries) - before} new) -> {where}"
    )
    for e in sorted(entries, key=lambda e: -e.count)[:top]:
        click.echo(f"{e.count:>9}  {e.template}")


@patterns.command(name="list")
@click.option("--workshop", default=None)
@click.option("--status", type=click.Choice(["new", "normal", "alert"]), default=None)
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def list_(workshop: str | None, status: str | None, config_path: str | None) -> None:
    """The library's templates: id, workshop, count, status, template."""
    bus = _open(config_path)
    try:
        for e in load_library(bus).entries(workshop):
            if status is None or e.status == status:
                click.echo(_entry_line(e))
    finally:
        bus.close()


@patterns.command()
@click.argument("pattern_id")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def show(pattern_id: str, config_path: str | None) -> None:
    """One template in full, as JSON."""
    import msgspec

    bus = _open(config_path)
    try:
        entry = load_library(bus).get(pattern_id)
    finally:
        bus.close()
    if entry is None:
        raise click.ClickException(f"no pattern {pattern_id!r}")
    click.echo(json.dumps(msgspec.to_builtins(entry), indent=2, ensure_ascii=False))


@patterns.command()
@click.argument("pattern_id")
@click.option("--normal", "as_normal", is_flag=True, help="known and harmless: not distributed")
@click.option("--alert", "reason", default=None, help="an ALERT with this reason")
@click.option("--severity", type=click.Choice(["info", "low", "medium", "high", "critical"]))
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def mark(
    pattern_id: str,
    as_normal: bool,
    reason: str | None,
    severity: str | None,
    config_path: str | None,
) -> None:
    """Review a template: --normal, or --alert REASON [--severity S]."""
    if as_normal == (reason is not None):
        raise click.UsageError("give exactly one of --normal or --alert REASON")
    bus = _open(config_path)
    try:
        library = load_library(bus)
        try:
            if as_normal:
                library.set_status(pattern_id, "normal")
            else:
                library.set_status(pattern_id, "alert", reason, severity or "high")
        except KeyError as exc:
            raise click.ClickException(f"no pattern {pattern_id!r}") from exc
        save_changes(bus, library)
    finally:
        bus.close()
    click.echo(f"{pattern_id}: {'normal' if as_normal else 'alert: ' + str(reason)}")


@patterns.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def export_(file: str, config_path: str | None) -> None:
    """Write the library to FILE (JSON lines with a version header; readable, diffable)."""
    bus = _open(config_path)
    try:
        n = load_library(bus).export_jsonl(file)
    finally:
        bus.close()
    click.echo(f"{n} templates -> {file}")


@patterns.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def import_(file: str, config_path: str | None) -> None:
    """Merge an exported FILE into the library on the bus."""
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


def _when(ns: int) -> str:
    if not ns:
        return "-"
    stamp = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


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


@patterns.command(name="diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@click.option("--counts", is_flag=True, help="also report count, first_seen and last_seen changes")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead")
def diff(old: str, new: str, counts: bool, as_json: bool) -> None:
    """What changed from OLD to NEW (files written by export). Exit 0: same, 1: different,
    2: bad input."""
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
