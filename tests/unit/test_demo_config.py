"""examples/demo.yaml: it loads, its regexes compile, and they fit the demo feed's lines, so that
`make run` shows every event type within seconds."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from logfactory.collect.sources.demo import DemoGenerator
from logfactory.config import (
    Config,
    DemoSourceConfig,
    FieldMatch,
    Match,
    SyslogSourceConfig,
    load_config,
)
from logfactory.event import BUILTIN_TYPES
from logfactory.factory.matching import compile_match
from logfactory.factory.model import Decoded, DecodeError, Position
from logfactory.factory.workshops import build_workshops
from logfactory.record import Record

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
SEC = 1_000_000_000
START = 1_795_306_200 * SEC
# the feed's syslog line, split as the syslog workshop's field contract says (kernel: uptime off)
SYSLOG = re.compile(
    r"^<\d+>\w{3} [ \d]\d [\d:]{8} (\S+) ([^\s\[:]+)(?:\[\d+\])?: (?:\[ *[\d.]+\] )?"
)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEMO)


def _matches(config: Config) -> list[tuple[str, Match]]:
    return (
        [(f"mappings.{m.name}", m.when) for m in config.mappings]
        + [(f"alerts.{a.name}", a.when) for a in config.alerts]
        + [(f"rules.{r.name}", r.when) for r in config.rules]
    )


def test_demo_config_has_the_documented_shape(config: Config) -> None:
    assert config.node.name == "demo"
    assert config.node.timezone == "UTC"
    assert config.node.data_dir == "var/demo"
    assert config.bus.type == "local"
    assert config.http.listen == "127.0.0.1:8080"
    assert {s.type for s in config.sources} == {"syslog", "http", "demo"}
    (syslog,) = (s for s in config.sources if isinstance(s, SyslogSourceConfig))
    (demo,) = (s for s in config.sources if isinstance(s, DemoSourceConfig))
    assert syslog.listen == "127.0.0.1:5514"
    assert set(syslog.protocols) == {"udp", "tcp"}
    assert demo.rate == 50
    formats = {name: ws.format for name, ws in config.workshops.items()}
    assert formats == {"syslog": "syslog", "slurm": "slurm", "sce": "kv", "apps": "json",
                       "cluster": "json"}  # fmt: skip
    assert config.workshops["syslog"].delegate == {"slurmctld": "slurm"}
    assert config.workshops["syslog"].multiline is not None
    assert config.workshops["sce"].fields == ["time", "host", "user", "addr", "op", "params"]


def test_every_regex_compiles(config: Config) -> None:
    patterns = []
    for where, match in _matches(config):
        if match.message is not None:
            patterns.append((where, match.message))
        for name, cond in match.fields.items():
            if isinstance(cond, FieldMatch) and cond.regex is not None:
                patterns.append((f"{where}.fields.{name}", cond.regex))
    for name, ws in config.workshops.items():
        if ws.multiline is not None:
            for key in ("start", "continuation"):
                value = getattr(ws.multiline, key)
                if value is not None:
                    patterns.append((f"workshops.{name}.multiline.{key}", value))
    assert patterns
    for where, pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            pytest.fail(f"{where}: {exc}")


def test_types_and_alerts_cover_the_demo_promise(config: Config) -> None:
    mapped = {m.type for m in config.mappings}
    assert {"USER_OP", "ADMIN_OP", "JOB_STATUS", "APP_STATUS", "CLUSTER_STATUS"} <= mapped
    subtypes = {a.subtype for a in config.alerts} | {r.subtype for r in config.rules}
    assert {"OUT_OF_MEMORY", "SEGFAULT", "OVERHEATING", "DISK_FULL", "PASSWORD_ATTACK"} <= subtypes
    assert all(a.reason for a in config.alerts)
    assert config.factory.new_patterns


def test_password_rule_matches_the_feed_and_extracts_account_and_addr(config: Config) -> None:
    rule = next(r for r in config.rules if r.name == "password-attack")
    assert (rule.key, rule.threshold, float(rule.window), float(rule.suppress)) == (
        "account",
        5,
        60.0,
        300.0,
    )
    assert (rule.window.text, rule.suppress.text) == ("60s", "5m")  # as the file wrote them
    assert rule.collect == ["addr"]
    assert rule.when.message is not None
    rx = re.compile(rule.when.message)
    seen: Counter[str] = Counter()
    for tag, _, line in DemoGenerator(5, 8, START).lines(until_ns=START + 60 * SEC):
        if tag != "syslog" or "Failed password" not in line:
            continue
        head = SYSLOG.match(line)
        assert head
        assert head[2] == rule.when.program
        found = rx.search(line[head.end() :])
        assert found, line
        assert found["account"] in line
        assert found["account"] != "invalid"
        assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", found["addr"])
        seen[found["account"]] += 1
    assert max(seen.values()) >= 6  # a burst
    one = rx.search("Failed password for invalid user admin from 192.0.2.7 port 4242 ssh2")
    assert one
    assert (one["account"], one["addr"]) == ("admin", "192.0.2.7")


def _decoded(config: Config, dead: list[str] | None = None) -> list[Decoded]:
    """The first 30 s of the feed decoded; what does not decode goes to ``dead`` (reasons)."""
    workshops = build_workshops(config)
    out: list[Decoded] = []
    for i, (t, tag, host, line) in enumerate(DemoGenerator(6, 8, START).timed()):
        if t >= START + 30 * SEC:
            return out
        record = Record(source=tag, host=host, received=t, line=line)
        try:
            parts = workshops[config.factory.routes.get(tag, tag)].decode(record)
        except DecodeError as exc:
            if dead is None:
                raise AssertionError(f"{line!r}: {exc}") from exc
            dead.append(f"{tag}: {exc}")
            continue
        out.append(Decoded(record=record, position=Position("logs.raw", 0, i),
                           workshop=parts.workshop, time_ns=parts.time_ns,
                           message=parts.message, fields=parts.fields))  # fmt: skip
    raise AssertionError("unreachable")


def test_every_mapping_alert_and_rule_fires_on_the_first_30_seconds_of_the_feed(
    config: Config,
) -> None:
    """The acceptance promise in miniature, with the real workshops and matcher."""
    dead: list[str] = []
    decoded = _decoded(config, dead)
    # the torn heartbeat: the one line of the feed that the dead-letter topic shows
    assert dead == ["cluster: not valid JSON: Input data was truncated"]
    hits: dict[str, list[dict[str, Any]]] = {}
    for where, match in _matches(config):
        matcher = compile_match(match)
        hits[where] = [
            {**d.fields, **got} for d in decoded if (got := matcher.match(d)) is not None
        ]
    assert all(hits.values()), [where for where, found in hits.items() if not found]
    first = {where: found[0] for where, found in hits.items()}
    assert {"user", "op", "params"} <= set(first["mappings.sce-user-operations"])
    assert first["mappings.slurm-job-status"]["event"] in {"submitted", "allocated"}
    assert {"pid", "command"} <= set(first["alerts.out-of-memory"])
    assert {"account", "addr"} <= set(first["rules.password-attack"])
    types = {m.type for m in config.mappings if hits[f"mappings.{m.name}"]}
    assert set(BUILTIN_TYPES) - {"ALERT", "NEW_PATTERN"} <= types
