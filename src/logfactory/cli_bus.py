"""``logfactory bus``: check and repair the embedded bus's database.

A node refuses to start on a damaged or lost bus and says so in one line; these commands are
the way on from there (see docs/operations.md, "Damaged bus"). ``check`` only reads and may
run beside a node; ``repair`` needs the bus to itself: it refuses while a node runs on the data
directory and holds the directory's lock meanwhile, so no node starts on a bus being replaced.
"""

from __future__ import annotations

import click

from logfactory.config import Config

__all__ = ["bus"]

_SHOWN = 5  # problems printed by `bus check`: the first few say what kind of damage it is
_CONFIG_HELP = "configuration file (default: $LOGFACTORY_CONFIG or ./examples/demo.yaml)"


class _ConfigProblem(click.ClickException):
    """A configuration that cannot work: exit 2, as in every other command."""

    exit_code = 2


def _local_config(config_path: str | None) -> Config:
    from logfactory.config import ConfigError
    from logfactory.subscribe import find_config

    try:
        config = find_config(config_path)
    except ConfigError as exc:
        raise _ConfigProblem(str(exc)) from None
    if config.bus.type != "local":
        raise click.ClickException(
            f"{config.path}: bus type {config.bus.type}: `logfactory bus` checks and repairs "
            "the embedded bus (type local); a Kafka cluster has its own tools"
        )
    return config


def _with_config(text: str, config: Config) -> str:
    """The library's messages say ``-c CONFIG``; here the configuration is known."""
    return text.replace("-c CONFIG", f"-c {config.path}")


@click.group(short_help="Check or repair the embedded bus's database.")
def bus() -> None:
    """Check or repair the embedded bus's database (<data_dir>/bus/bus.sqlite3)."""


@bus.command(short_help="Check the bus: integrity, marker, counts per topic.")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def check(config_path: str | None) -> None:
    """Check the bus database: SQLite's integrity check, the marker that says a bus lived here
    (bus.json), the schema, and the messages stored per topic. Only reads; a node may run.

    Exit status 0 when the bus is healthy, 1 when it is damaged, lost or not this directory's
    (the last line says what to do).

    \b
    Examples:
      logfactory bus check
      logfactory bus check -c site.yaml
    """
    from logfactory.bus.base import BusError
    from logfactory.bus.local.repair import PROBLEMS_LISTED
    from logfactory.bus.local.repair import check as check_bus
    from logfactory.readers import bus_directory

    config = _local_config(config_path)
    try:
        report = check_bus(bus_directory(config))
    except BusError as exc:
        raise click.ClickException(str(exc)) from None
    marker = report.marker
    click.echo(f"bus      {report.path}: {report.state.upper()}")
    if marker is not None and marker.id is not None:
        click.echo(f"marker   {marker.path}: bus id {marker.id}, created {marker.created}")
        for done in marker.repairs:
            click.echo(f"         repaired {done.get('time', '?')}: {done.get('what', '?')}")
    elif marker is None:
        click.echo("marker   none (a bus made before markers gets one at its next start)")
    if report.bus_id is not None:
        click.echo(f"database bus id {report.bus_id}, schema {report.schema}")
    for problem in report.problems[:_SHOWN]:
        click.echo(f"problem  {problem}")
    if len(report.problems) > _SHOWN:
        more = len(report.problems) - _SHOWN
        click.echo(f"         and {more} more (a check stops at {PROBLEMS_LISTED})")
    for t in report.topics:
        if t.problem is not None:
            click.echo(f"topic    {t.name}: unreadable ({t.problem})")
        else:
            click.echo(f"topic    {t.name}: {t.stored:,} messages stored, offsets reach "
                       f"{t.end:,} over {t.partitions} partition(s)")  # fmt: skip
    for note in report.notes:
        click.echo(f"note     {note}")
    advice = {
        "healthy": None,
        "none": "no node has run with this configuration here: nothing to check",
        "damaged": f"stop every node on it, then `logfactory bus repair -c {config.path}` "
        "copies what is readable into a new database (the damaged file is kept)",
        "lost": "the database is missing or empty: restore it from a backup, or run "
        f"`logfactory bus repair --accept-loss -c {config.path}` to start a new empty bus",
        "swapped": "the database is not the one the marker names: put the right file back, "
        f"or run `logfactory bus repair --adopt -c {config.path}`",
    }[report.state]
    if advice is not None:
        raise click.ClickException(advice)


@bus.command(short_help="Salvage a damaged bus into a new database.")
@click.option(
    "--accept-loss",
    is_flag=True,
    help="when the database is gone or unreadable: start a new empty bus (recorded)",
)
@click.option("--adopt", is_flag=True, help="take a database the marker does not name as this bus")
@click.option(
    "--reset-positions",
    is_flag=True,
    help="also move file and SQL sources' saved positions aside (they re-read their input)",
)
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def repair(accept_loss: bool, adopt: bool, reset_positions: bool, config_path: str | None) -> None:
    """Repair the bus as `bus check` found it. Damaged: every readable message is copied into
    a new database (same offsets, the groups' committed offsets too) and the damaged file is
    kept as bus.sqlite3.damaged-<time>. Lost, or nothing readable: only with --accept-loss is
    a new empty bus started. Every repair is recorded in the marker (bus.json). No node may
    run on the data directory meanwhile.

    \b
    Examples:
      logfactory bus repair -c site.yaml
      logfactory bus repair --accept-loss -c site.yaml
      logfactory bus repair --accept-loss --reset-positions -c site.yaml
      logfactory bus repair --adopt -c site.yaml   # a backup put back in place
    """
    from logfactory.bus.base import BusError
    from logfactory.bus.local.repair import repair as repair_bus
    from logfactory.node_start import DataDirLock, NodeError
    from logfactory.owner_only import make_owner_only
    from logfactory.readers import bus_directory, node_running

    config = _local_config(config_path)
    if node_running(config):
        raise click.ClickException(
            f"a node runs on {config.data_dir} (node.data_dir of {config.path}): stop it first"
        )
    make_owner_only(config.data_dir)  # the new database and what is moved aside: owner-only
    try:
        lock = DataDirLock(config, "bus repair").acquire()
    except NodeError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        lines = repair_bus(
            bus_directory(config),
            accept_loss=accept_loss,
            adopt=adopt,
            reset_positions=reset_positions,
        )
    except (BusError, OSError) as exc:
        raise click.ClickException(_with_config(str(exc), config)) from None
    finally:
        lock.release()
    for line in lines:
        click.echo(line)
