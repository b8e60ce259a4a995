"""The ``logfactory`` command line.

Client commands (``subscribe``, ``tail``, ``schema``) take ``-c CONFIG``; without it they find
the node that ``make run`` started ($LOGFACTORY_CONFIG, else ./examples/demo.yaml).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import msgspec

from logfactory.config import Config, ConfigError, load_config
from logfactory.errors import LogfactoryError
from logfactory.owner_only import restrict_umask

if TYPE_CHECKING:
    from logfactory.node import Node

__all__ = ["main"]

_F = TypeVar("_F", bound=Callable[..., Any])

_CONFIG_HELP = "configuration file (default: $LOGFACTORY_CONFIG or ./examples/demo.yaml)"


class _ConfigProblem(click.ClickException):
    """A configuration that cannot work: exit 2 from every command, as click's usage errors
    (see docs/architecture.md, exit statuses)."""

    exit_code = 2


def _config(path: str | None) -> Config:
    from logfactory.subscribe import find_config

    try:
        return find_config(path)
    except ConfigError as exc:
        raise _ConfigProblem(str(exc)) from None


def _needs_own_bus(config: Config, role: str) -> Config:
    """An edge that ships over HTTP has no bus to run a factory or serve subscribers from."""
    if config.bus.type == "http":
        raise click.ClickException(
            f"{config.path}: bus type http only ships collected records to "
            f"{config.bus.http.url or 'a central node'}; `logfactory {role}` needs a bus of its "
            "own (type local or kafka): run `logfactory collect` with this configuration"
        )
    return config


def _node_config(path: str | None, role: str | None) -> Config:
    """The configuration of `run`, `collect` or `serve` (``role``: it needs a bus of its own);
    its errors exit 2 (see docs/architecture.md, exit statuses)."""
    try:
        config = _config(path)
        return config if role is None else _needs_own_bus(config, role)
    except click.ClickException as exc:
        raise _ConfigProblem(exc.message) from None


def _run_node(node: Node) -> NoReturn:
    """Run a node and exit with its status: 0 after a clean stop, 1 (one ``Error:`` line, no
    traceback) when it could not start or had to stop, 130 for Ctrl-C before it had started."""
    from logfactory.node import NodeError

    try:
        status = node.run()
    except NodeError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted before the node had started", err=True)
        sys.exit(130)
    sys.exit(status)


class _Cli(click.Group):
    """The top-level group, where exit statuses are decided in one place: a
    :class:`~logfactory.errors.LogfactoryError` that no command turned into its own message
    becomes one ``Error:`` line, no traceback, exit 2 for a ConfigError (a configuration that
    cannot work) and 1 for any other (see docs/architecture.md, exit statuses). Its message is
    already phrased for a person; a traceback would only bury it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise _ConfigProblem(str(exc)) from None
        except LogfactoryError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Cli)
@click.version_option(package_name="logfactory")
def cli() -> None:
    """logfactory: raw logs in, typed events out.

    Exit statuses: 0 done (or a clean stop), 1 the command failed (one Error: line), 2 a
    configuration that cannot work or a wrong option, 130 interrupted before a node started.
    """
    # Before any command runs: whatever it (or a child it starts) creates is owner-only, the
    # data directory's files above all (logfactory.owner_only says why). The roles and the
    # commands that write there also tighten what already exists, where they start.
    restrict_umask()


@cli.command(short_help="Run the all-in-one node: collectors, API, factory, store.")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
@click.option("--no-factory", is_flag=True, help="run collectors and API only (no store)")
@click.option("--quiet", is_flag=True, help="no banner or live summary")
def run(config_path: str | None, no_factory: bool, quiet: bool) -> None:
    """Run the all-in-one node: collectors, HTTP API, the event factory and the log store
    (unless store.enabled is false), until Ctrl-C.

    \b
    Examples:
      logfactory run                          # the demo: examples/demo.yaml
      logfactory run -c site.yaml --quiet     # under a service manager
    """
    from logfactory.node import Node

    config = _node_config(config_path, "run")
    _run_node(Node(config, with_factory=not no_factory, quiet=quiet, command="run"))


@cli.command(short_help="Run only the collectors (an edge host).")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
@click.option("--quiet", is_flag=True, help="no banner or live summary")
def collect(config_path: str | None, quiet: bool) -> None:
    """Run only the collectors (an edge host); with an http source, also its ingest API.

    \b
    Examples:
      logfactory collect -c site.yaml
      logfactory collect -c examples/edge.yaml   # ships to a central node over HTTP
    """
    from logfactory.node import Node

    config = _node_config(config_path, None)
    if not config.sources:
        raise _ConfigProblem(
            f"{config.path}: no sources: `logfactory collect` has nothing to do; add some under "
            '`sources:` (docs/configuration.md: "Pointing it at real logs")'
        )
    with_api = any(src.type == "http" for src in config.sources)
    _run_node(Node(config, with_factory=False, with_api=with_api, quiet=quiet, command="collect"))


@cli.command(short_help="Run only the HTTP API.")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
@click.option("--quiet", is_flag=True, help="no banner or live summary")
def serve(config_path: str | None, quiet: bool) -> None:
    """Run only the HTTP API: status, metrics, ingest and subscriptions.

    \b
    Examples:
      logfactory serve -c site.yaml
    """
    from logfactory.node import Node

    config = _node_config(config_path, "serve")
    _run_node(Node(config, with_factory=False, with_collectors=False, quiet=quiet, command="serve"))


@cli.command(short_help="Run one event-factory worker.")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
@click.option(
    "--worker-id",
    default="0",
    show_default=True,
    help="unique among this node's workers, stable across restarts (names Kafka transactions)",
)
def factory(config_path: str | None, worker_id: str) -> None:
    """Run one event-factory worker (a member of the consumer group) until stopped.

    \b
    Examples:
      logfactory factory -c site.yaml --worker-id 2
    """
    from logfactory.node import run_factory

    sys.exit(run_factory(_needs_own_bus(_config(config_path), "factory"), worker_id))


@cli.command(short_help="Run the log store role.")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def store(config_path: str | None) -> None:
    """Run the log store role: logs.parsed and every events.* topic into the store, until
    stopped. `logfactory run` starts it as a child unless `store.enabled: false`.

    \b
    Examples:
      logfactory store -c site.yaml
    """
    from logfactory.store.runner import run_store

    sys.exit(run_store(_needs_own_bus(_config(config_path), "store")))


@cli.command(short_help="Validate a configuration file.")
@click.argument("config_path", type=click.Path(dir_okay=False))
def check(config_path: str) -> None:
    """Validate a configuration file without starting anything.

    Errors (exit 2) are what `run` would refuse to start on; warnings (exit 0) are what
    starts but looks wrong, e.g. a template field that no record carries.

    \b
    Examples:
      logfactory check examples/demo.yaml
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise _ConfigProblem(str(exc)) from None
    for warning in config.warnings:
        click.echo(f"Warning: {warning}", err=True)
    n = len(config.warnings)
    noted = f" ({n} warning{'s' * (n > 1)})" if n else ""
    click.echo(
        f"{config_path}: OK — {len(config.sources)} sources, {len(config.workshops)} workshops, "
        f"{len(config.mappings)} mappings, {len(config.alerts)} alerts, {len(config.rules)} rules"
        f"{noted}"
    )


@cli.command(short_help="Print the JSON Schema of an event type.")
@click.argument("event_type")
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def schema(event_type: str, config_path: str | None) -> None:
    """Print the JSON Schema of an event type's envelope (site types from the config too).

    \b
    Examples:
      logfactory schema ALERT
      logfactory schema SSH_LOGIN -c examples/demo.yaml
    """
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


def _from_option(default: str, what: str) -> Callable[[_F], _F]:
    """``--from earliest|latest`` of a bus reader."""
    return click.option(
        "--from",
        "start",
        type=click.Choice(["earliest", "latest"]),
        default=default,
        show_default=True,
        help=what,
    )


@contextlib.contextmanager
def _reading(config: Config, wait: bool) -> Iterator[None]:
    """How a bus reader (subscribe, tail) talks: it says that it waits when told to wait for a
    node that is not running, its errors are one line and exit 1, Ctrl-C and a closed pipe end
    it quietly."""
    from logfactory.bus.base import BusError
    from logfactory.readers import NoNodeError, node_running

    if wait and not node_running(config):
        click.echo(f"no node is running with {config.path} yet; waiting for one (--wait)", err=True)
    try:
        yield
    except NoNodeError as exc:
        raise click.ClickException(f"{exc.text}, or pass --wait to wait for one") from None
    except (BusError, ValueError) as exc:  # a damaged bus's message says -c CONFIG
        raise click.ClickException(str(exc).replace("-c CONFIG", f"-c {config.path}")) from None
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        sys.stderr.close()


@cli.command(short_help="Print events of some types as they happen.")
@click.option("--types", "types_", required=True, help="comma-separated event types, e.g. ALERT")
@click.option("--count", type=int, default=None, help="stop after N events")
@_from_option("latest", "where a group with nothing committed starts")
@click.option("--group", default=None, help="consumer group: resume where it left off")
@click.option(
    "--wait", is_flag=True, help="wait for a node to start (default: exit 1 when none runs)"
)
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def subscribe(
    types_: str,
    count: int | None,
    start: str,
    group: str | None,
    wait: bool,
    config_path: str | None,
) -> None:
    """Print one JSON envelope per line as events of the chosen types happen.

    \b
    Examples:
      logfactory subscribe --types ALERT,JOB_STATUS
      logfactory subscribe --types ALERT --from earliest --count 5
      logfactory subscribe --types USER_OP --group billing   # resumes where it left off
    """
    from logfactory.subscribe import Subscriber

    types = [t.strip() for t in types_.split(",") if t.strip()]
    config = _config(config_path)
    seen = 0
    with (
        _reading(config, wait),
        Subscriber(
            types,
            config=config,
            group=group,
            start="earliest" if start == "earliest" else "latest",
            wait=wait,
        ) as sub,
    ):
        for envelope in sub:
            _emit(envelope)
            seen += 1
            if count is not None and seen >= count:
                sub.commit()
                break


@cli.command(short_help="Print a topic's messages (like kcat -C).")
@click.argument("topic")
@click.option(
    "--count", type=int, default=None, help="print N messages (with --from latest: the last N)"
)
@_from_option("earliest", "the topic's start, or only what comes next (and the last --count)")
@click.option("--no-follow", is_flag=True, help="stop at the end of the topic")
@click.option(
    "--wait", is_flag=True, help="wait for a node to start (default: exit 1 when none runs)"
)
@click.option("-c", "--config", "config_path", default=None, help=_CONFIG_HELP)
def tail(
    topic: str,
    count: int | None,
    start: str,
    no_follow: bool,
    wait: bool,
    config_path: str | None,
) -> None:
    """Print a topic's messages, one JSON object per line (like kcat -C). Topics: logs.raw,
    logs.parsed, logs.deadletter, events.TYPE, patterns.library, factory.state.

    \b
    Examples:
      logfactory tail logs.deadletter --count 1
      logfactory tail logs.parsed --from latest --count 10
      logfactory tail logs.raw -c site.yaml --no-follow
    """
    from functools import partial

    from logfactory.readers import open_reader, require_node
    from logfactory.subscribe import tail as tail_topic

    config = _config(config_path)
    with _reading(config, wait):
        bus = open_reader(config, wait=wait)
        try:
            if topic not in bus.topics():
                topics = ", ".join(sorted(bus.topics()))
                raise click.ClickException(f"no topic {topic!r}; topics: {topics}")
            for msg in tail_topic(
                bus,
                topic,
                start="earliest" if start == "earliest" else "latest",
                count=count,
                follow=not no_follow,
                on_idle=None if wait else partial(require_node, config),
            ):
                try:
                    value: Any = msgspec.json.decode(msg.value)
                except msgspec.DecodeError:
                    value = msg.value.decode("utf-8", "replace")
                _emit(value)
        finally:
            bus.close()


def _register_groups() -> None:
    from logfactory.cli_access import audit, token, tokens, users
    from logfactory.cli_bus import bus
    from logfactory.cli_patterns import patterns
    from logfactory.cli_search import histogram, search, top

    cli.add_command(patterns)
    cli.add_command(bus)
    for command in (token, users, tokens, audit, search, top, histogram):
        cli.add_command(command)


_register_groups()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
