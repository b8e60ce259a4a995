"""The configuration package's contracts (issue 14, item 1): each source type takes only its own
keys (a tagged union on ``type``) and says which when given another's; durations and sizes are
numbers from the moment the file loads, so no runtime module parses ``"60s"``; and the config
layer imports nothing of the collectors or the factory, which check their own types against the
plain data it publishes (source types, workshop formats)."""

from __future__ import annotations

import ast
from pathlib import Path

import msgspec
import pytest

from logfactory.collect.sources.build import AGENT_TYPES
from logfactory.config import (
    SOURCE_TYPES,
    WORKSHOP_FORMATS,
    ConfigError,
    Duration,
    FileSourceConfig,
    Size,
    SyslogSourceConfig,
    parse_config,
    source_config,
)
from logfactory.factory.workshops import build_workshops

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "logfactory"


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "site.yaml")
    return str(info.value)


# -- one struct per source type ----------------------------------------------------------------
def test_a_key_of_another_source_type_names_file_line_and_the_keys_this_type_takes() -> None:
    text = (
        "sources:\n"
        "  - type: file\n    paths: [/var/log/messages]\n"
        "  - type: syslog\n    listen: 127.0.0.1:5514\n    paths: [/var/log/secure]\n"
    )
    assert _error(text) == (
        "site.yaml:6: sources[1].paths: unknown key 'paths': a syslog source takes only name, "
        "tag, listen, max_frame_bytes, max_connections, connection_idle_timeout, protocols, "
        "tls_listen, tls_cert, tls_key, tls_ca, tls_verify_client, udp_rcvbuf "
        "(see docs/configuration-reference.md)"
    )


@pytest.mark.parametrize(
    ("source", "key", "kind"),
    [
        ("{type: file, paths: [a], listen: '127.0.0.1:1'}", "listen", "file"),
        ("{type: relp, listen: '127.0.0.1:2514', protocols: [tcp]}", "protocols", "relp"),
        ("{type: http, interval: 5s}", "interval", "http"),
        ("{type: demo, topics: [t]}", "topics", "demo"),
        (
            "{type: snmp, listen: '127.0.0.1:162', communities: [p], tls_ca: x.pem}",
            "tls_ca",
            "snmp",
        ),
    ],
)
def test_every_source_type_refuses_keys_it_does_not_take(source: str, key: str, kind: str) -> None:
    message = _error(f"node: {{}}\nsources:\n  - {source}\n")
    assert message.startswith(f"site.yaml:3: sources[0].{key}: unknown key {key!r}: a {kind} ")


def test_an_unknown_or_missing_type_lists_the_types() -> None:
    types = ", ".join(SOURCE_TYPES)
    assert _error("sources:\n  - type: syslgo\n") == (
        f"site.yaml:2: sources[0].type: 'syslgo' is not valid; expected one of {types}"
    )
    assert _error("sources:\n  - name: x\n") == (
        f"site.yaml:2: sources[0]: give its 'type': one of {types}"
    )


def test_the_loaded_source_is_its_types_struct() -> None:
    config = parse_config(
        "sources:\n  - {type: file, paths: [a]}\n  - {type: syslog, listen: '127.0.0.1:5514'}\n"
    )
    file, syslog = config.sources
    assert isinstance(file, FileSourceConfig)
    assert file.type == "file"
    assert isinstance(syslog, SyslogSourceConfig)
    assert syslog.type == "syslog"
    assert not hasattr(syslog, "paths")
    assert not hasattr(file, "listen")


def test_source_config_builds_and_checks_a_source_from_its_keys() -> None:
    made = source_config(type="sql", interval="20ms", connection="DSN=x")
    assert made.type == "sql"
    assert made.interval == 0.02
    with pytest.raises(msgspec.ValidationError, match="unknown field `paths`"):
        source_config(type="kafka", paths=["a"])


# -- units, parsed once ---------------------------------------------------------------------
def test_durations_and_sizes_are_numbers_once_loaded_and_keep_their_spelling() -> None:
    config = parse_config(
        "http: {connection_idle_timeout: 90}\n"
        "bus: {retention: {max_age: 2d, max_bytes_per_partition: 512MiB}}\n"
        "collector: {spool_max_bytes: 1GB, spool_flush_timeout: 250ms}\n"
        "sources:\n  - {type: http, max_body_bytes: 1KiB}\n"
        "  - {type: file, paths: [a], idle_timeout: 1.5}\n"
        "workshops: {s: {format: syslog, multiline: {start: x, timeout: 2m}}}\n"
        "rules:\n  - {name: r, when: {}, key: k, threshold: 2, subtype: S, reason: R,"
        " window: 1h, suppress: 0}\n"
    )
    http, file = config.sources
    assert http.type == "http"
    assert file.type == "file"
    ml = config.workshops["s"].multiline
    assert ml is not None
    rule = config.rules[0]
    numbers = {
        "http.connection_idle_timeout": (config.http.connection_idle_timeout, 90.0, "90s"),
        "retention.max_age": (config.bus.retention.max_age, 172800.0, "2d"),
        "retention.max_bytes": (config.bus.retention.max_bytes_per_partition, 2**29, "512MiB"),
        "spool_max_bytes": (config.collector.spool_max_bytes, 10**9, "1GB"),
        "spool_flush_timeout": (config.collector.spool_flush_timeout, 0.25, "250ms"),
        "max_body_bytes": (http.max_body_bytes, 1024, "1KiB"),
        "idle_timeout": (file.idle_timeout, 1.5, "1.5s"),
        "multiline.timeout": (ml.timeout, 120.0, "2m"),
        "window": (rule.window, 3600.0, "1h"),
        "suppress": (rule.suppress, 0.0, "0s"),
    }
    for key, (value, number, text) in numbers.items():
        assert isinstance(value, Duration | Size), key
        assert value == number, key
        assert value.text == text, key
        assert str(value) == str(number), key
    assert isinstance(config.collector.spool_max_bytes, int)  # sizes are whole bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "sources:\n  - {type: sql, interval: soon}\n",
            "site.yaml:2: sources[0].interval: 'soon' is not a duration; "
            "write e.g. 250ms, 60s, 5m, 2h or 7d",
        ),
        (
            "sources:\n  - type: http\n    max_body_bytes: lots\n",
            "site.yaml:3: sources[0].max_body_bytes: 'lots' is not a size; write e.g. 512MiB",
        ),
        (
            "http:\n  connection_idle_timeout: [1]\n",
            "site.yaml:2: http.connection_idle_timeout: expected a duration, got [1]",
        ),
        (
            "collector:\n  spool_max_bytes: 1.5\n",
            "site.yaml:2: collector.spool_max_bytes: expected a size, got 1.5",
        ),
    ],
)
def test_a_bad_duration_or_size_is_refused_at_its_line(text: str, expected: str) -> None:
    assert _error(text).startswith(expected)


#: the modules beside the config package that read a duration a person gives, not one of the
#: configuration (issue 15), with the configuration's own grammar: the ``expires_in`` a client
#: sends for a user or token, and the credential commands' ``--expires``, ``--in``, ``--since``
PERSON_DURATIONS = {Path("api") / "expiry.py", Path("cli_access.py")}


def test_no_runtime_module_parses_durations_or_sizes() -> None:
    """Only the config package turns "60s" into seconds (and, for what a person types or a
    client sends, the modules above with its grammar); everything else reads numbers."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if (SRC / "config") in path.parents or path.relative_to(SRC) in PERSON_DURATIONS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
            if name in ("parse_duration", "parse_size", "Duration", "Size"):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")  # type: ignore[attr-defined]
    assert offenders == []


# -- the layer's imports --------------------------------------------------------------------
def _source(module: str) -> Path:
    """The file of a logfactory module or package (which may not exist)."""
    path = SRC.parent / (module.replace(".", "/") + ".py")
    return path if path.exists() else SRC.parent / module.replace(".", "/") / "__init__.py"


def _logfactory_imports(module: str) -> set[str]:
    """The logfactory modules ``module``'s source imports (at any depth of its code)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(_source(module).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            sub = [f"{node.module}.{a.name}" for a in node.names]
            out |= {m for m in sub if _source(m).exists()}
    return {m for m in out if m.startswith("logfactory.")}


def test_the_config_layer_imports_nothing_of_the_collectors_or_the_factory() -> None:
    """Everything the config package's modules import, followed through logfactory, stays in
    the bottom layer: config itself, errors, event, and the SQL settings parser."""
    todo = [f"logfactory.config.{p.stem}" for p in sorted((SRC / "config").glob("*.py"))]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += sorted(_logfactory_imports(module))
    assert "logfactory.config.reference" in seen
    assert "logfactory.sqlconn" in seen
    allowed = ("logfactory.config", "logfactory.errors", "logfactory.event", "logfactory.sqlconn")
    assert sorted(m for m in seen if not m.startswith(allowed)) == []


def test_the_sql_settings_parser_imports_nothing_of_logfactory() -> None:
    tree = ast.parse((SRC / "sqlconn.py").read_text(encoding="utf-8"))
    imported = [
        getattr(node, "module", None) or node.names[0].name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert imported
    assert not [m for m in imported if m.startswith("logfactory")]


def test_the_collectors_and_the_factory_cover_the_types_the_config_offers() -> None:
    assert AGENT_TYPES | {"http", "demo"} == set(SOURCE_TYPES)  # http: the API; demo: the node
    workshops = "\n".join(
        f"  w{i}: {{format: {f}, fields: [a]}}" for i, f in enumerate(WORKSHOP_FORMATS)
    )
    built = build_workshops(parse_config(f"workshops:\n{workshops}\n"))
    assert len(built) == len(WORKSHOP_FORMATS) == 4
