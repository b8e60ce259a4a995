"""The ``logfactory`` command line.

Client commands (``subscribe``, ``tail``, ``schema``) take ``-c CONFIG``; without it they find
the node that ``make run`` started ($LOGFACTORY_CONFIG, else ./examples/demo.yaml).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import msgspec

from logfactory.config import Config, ConfigError, load_config

__all__ = ["main"]

_CONFIG_HELP = "configuration file (default: $LOGFACTORY_CONFIG or ./examples/demo.yaml)"


def _config(path: str | None) -> Config:
    from logfactory.subscribe import find_config

    try:
        return find_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _needs_own_bus(config: Config, role: str) -> Config:
    """An edge that ships over HTTP has no bus to run a factory or serve subscribers from."""
    if config.bus.type == "http":
        raise click.ClickException(
            f"{config.path}: bus type http only ships collected records to "
            f"{config.bus.http.url or 'a central node'}; `logfactory {role}` needs a bus of its "
            "own (type local or kafka): run `logfactory collect` with this configuration"
        )
    return config


@click.group()
@click.version_option(package_name="logfactory")
def cli() -> None:
    """logfactory: raw logs in, typed events out."""


@cli.command()
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
@click.option("--no-factory", is_flag=True, help="run collectors and API only")
@click.option("--quiet", is_flag=True, help="no banner or live summary")
def run(config_path: str | None, no_factory: bool, quiet: bool) -> None:
    """Run the all-in-one node: collectors, HTTP API and the event factory."""
    from logfactory.node import Node

    config = _needs_own_bus(_config(config_path), "run")
    sys.exit(Node(config, with_factory=not no_factory, quiet=quiet).run())


@cli.command()
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
@click.option("--quiet", is_flag=True, help="no banner or live summary")
def collect(config_path: str | None, quiet: bool) -> None:
    """Run only the collectors (an edge host); with an http source, also its ingest API."""
    from logfactory.node import Node

    config = _config(config_path)
    with_api = any(src.type == "http" for src in config.sources)
    sys.exit(Node(config, with_factory=False, with_api=with_api, quiet=quiet).run())


@cli.command()
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
@click.option("--quiet", is_flag=True, help="no banner or live summary")
def serve(config_path: str | None, quiet: bool) -> None:
    """Run only the HTTP API: status, metrics, ingest and subscriptions."""
    from logfactory.node import Node

    config = _needs_own_bus(_config(config_path), "serve")
    sys.exit(Node(config, with_factory=False, with_collectors=False, quiet=quiet).run())


@cli.command()
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
@click.option(
    "--worker-id",
    default="0",
    show_default=True,
    help="unique among this node's workers, stable across restarts (names Kafka transactions)",
)
def factory(config_path: str | None, worker_id: str) -> None:
    """Run one event-factory worker (a member of the consumer group) until stopped."""
    from logfactory.node import run_factory

    sys.exit(run_factory(_needs_own_bus(_config(config_path), "factory"), worker_id))


@cli.command()
@click.argument("config_path", type=click.Path(dir_okay=False))
def check(config_path: str) -> None:
    """Validate a configuration file without starting anything."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{config_path}: OK — {len(config.sources)} sources, {len(config.workshops)} workshops, "
        f"{len(config.mappings)} mappings, {len(config.alerts)} alerts, {len(config.rules)} rules"
    )


@cli.command()
@click.argument("event_type")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def schema(event_type: str, config_path: str | None) -> None:
    """Print the JSON Schema of an event type's envelope."""
    from logfactory.schemas import known_types, schema_for

    config: Config | None = None
    try:
        config = _config(config_path)
    except click.ClickException:
        if config_path is not None:
            raise
    types = known_types(config)
    if event_type not in types:
        raise click.ClickException(f"unknown event type {event_type!r}; known: {', '.join(types)}")
    click.echo(json.dumps(schema_for(event_type, config), indent=2))


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


@cli.command()
@click.option("--types", "types_", required=True, help="comma-separated event types, e.g. ALERT")
@click.option("--count", type=int, default=None, help="stop after N events")
@click.option("--from", "start", type=click.Choice(["earliest", "latest"]), default="latest")
@click.option("--group", default=None, help="consumer group: resume where it left off")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def subscribe(
    types_: str, count: int | None, start: str, group: str | None, config_path: str | None
) -> None:
    """Print one JSON envelope per line as events of the chosen types happen."""
    from logfactory.subscribe import Subscriber

    types = [t.strip() for t in types_.split(",") if t.strip()]
    seen = 0
    try:
        with Subscriber(
            types,
            config=_config(config_path),
            group=group,
            start="earliest" if start == "earliest" else "latest",
        ) as sub:
            for envelope in sub:
                _emit(envelope)
                seen += 1
                if count is not None and seen >= count:
                    sub.commit()
                    break
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        sys.stderr.close()


@cli.command()
@click.argument("topic")
@click.option(
    "--count", type=int, default=None, help="print N messages (with --from latest: the last N)"
)
@click.option("--from", "start", type=click.Choice(["earliest", "latest"]), default="earliest")
@click.option("--no-follow", is_flag=True, help="stop at the end of the topic")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def tail(
    topic: str, count: int | None, start: str, no_follow: bool, config_path: str | None
) -> None:
    """Print a topic's messages, one JSON object per line (like kcat -C)."""
    from logfactory.subscribe import open_bus
    from logfactory.subscribe import tail as tail_topic

    config = _config(config_path)
    bus = open_bus(config)
    if topic not in bus.topics():
        raise click.ClickException(f"no topic {topic!r}; topics: {', '.join(sorted(bus.topics()))}")
    try:
        for msg in tail_topic(
            bus,
            topic,
            start="earliest" if start == "earliest" else "latest",
            count=count,
            follow=not no_follow,
        ):
            try:
                value: Any = msgspec.json.decode(msg.value)
            except msgspec.DecodeError:
                value = msg.value.decode("utf-8", "replace")
            _emit(value)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        sys.stderr.close()
    finally:
        bus.close()


def _register_groups() -> None:
    from logfactory.cli_patterns import patterns

    cli.add_command(patterns)


_register_groups()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
