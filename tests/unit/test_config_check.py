"""What `logfactory check` catches before `run` would: listeners that cannot all bind, source
names used twice (errors), and field names no record carries (warnings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.helpers.configs import source_of

from logfactory.cli import cli
from logfactory.config import (
    Config,
    ConfigError,
    RawSourceConfig,
    SyslogSourceConfig,
    load_config,
    parse_config,
)
from logfactory.config.fields import SYSLOG_FIELDS
from logfactory.factory.workshops import build_workshops
from logfactory.record import make_record

ROOT = Path(__file__).resolve().parents[2]


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml")
    return str(info.value)


# -- listeners -------------------------------------------------------------------------------
SYSLOG_5514 = "  - {type: syslog, name: a, listen: '127.0.0.1:5514'}\n"


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (
            "  - {type: raw, name: b, listen: '127.0.0.1:5514', protocols: [tcp]}\n",
            "c.yaml:3: sources[1].listen: tcp 127.0.0.1:5514 is already taken by "
            "sources[0].listen of source 'a'; give each listener a port of its own",
        ),
        (
            "  - {type: raw, name: b, listen: '0.0.0.0:5514', protocols: [udp]}\n",
            "c.yaml:3: sources[1].listen: udp 0.0.0.0:5514 overlaps udp 127.0.0.1:5514, which "
            "is already taken by sources[0].listen of source 'a'; give each listener a port of "
            "its own",
        ),
        (
            "  - {type: snmp, name: b, listen: ':5514', communities: [public]}\n",
            "c.yaml:3: sources[1].listen: udp :5514 overlaps udp 127.0.0.1:5514",
        ),
        (  # a UDP socket on :: takes IPv4 too
            "  - {type: snmp, name: b, listen: '[::]:5514', communities: [public]}\n",
            "c.yaml:3: sources[1].listen: udp [::]:5514 overlaps udp 127.0.0.1:5514",
        ),
        (
            "  - {type: syslog, name: b, tls_listen: 'localhost:5514'}\n",
            "c.yaml:3: sources[1].tls_listen: tcp localhost:5514 overlaps tcp 127.0.0.1:5514",
        ),
    ],
)
def test_two_listeners_on_one_address_and_protocol_are_an_error(second: str, expected: str) -> None:
    assert _error(f"sources:\n{SYSLOG_5514}{second}").startswith(expected)


def test_a_source_on_the_api_port_is_an_error() -> None:
    text = "http: {listen: '0.0.0.0:8080'}\nsources:\n  - {type: raw, listen: '127.0.0.1:8080'}\n"
    assert _error(text) == (
        "c.yaml:3: sources[0].listen: tcp 127.0.0.1:8080 overlaps tcp 0.0.0.0:8080, which is "
        "already taken by the HTTP API (http.listen); give each listener a port of its own"
    )
    # the API's UDP port is free, and a disabled API takes no port
    parse_config(text.replace("'127.0.0.1:8080'", "'127.0.0.1:8080', protocols: [udp]"))
    parse_config(text.replace("0.0.0.0:8080'", "0.0.0.0:8080', enabled: false"))


@pytest.mark.parametrize(
    "second",
    [
        "  - {type: raw, name: b, listen: '127.0.0.2:5514'}\n",  # another address
        "  - {type: raw, name: b, listen: '127.0.0.1:5515'}\n",  # another port
        "  - {type: raw, name: b, listen: '[::1]:5514'}\n",  # another family
        "  - {type: raw, name: b, tls_listen: '[::]:5514'}\n",  # TCP on :: is IPv6 only
        "  - {type: file, name: b, paths: [x]}\n",
    ],
)
def test_listeners_that_can_all_bind_pass(second: str) -> None:
    config = parse_config(f"sources:\n{SYSLOG_5514}{second}")
    assert config.warnings == ()


def test_one_syslog_source_takes_udp_and_tcp_of_one_port() -> None:
    text = "sources:\n  - {type: syslog, listen: '0.0.0.0:514', protocols: [udp, tcp, udp]}\n"
    assert source_of(parse_config(text), SyslogSourceConfig).listen == "0.0.0.0:514"
    text = (
        "sources:\n  - {type: raw, listen: '0.0.0.0:514', protocols: [udp], tls_listen: ':514'}\n"
    )
    assert (
        source_of(parse_config(text), RawSourceConfig).tls_listen == ":514"
    )  # TLS is TCP: no clash
    assert "is already taken by sources[0].listen" in _error(text.replace("[udp]", "[tcp]"))


def test_an_edge_without_http_source_runs_no_api() -> None:
    text = (
        "bus: {type: http, http: {url: 'http://central:8080/api/v1/ingest'}}\n"
        "sources:\n  - {type: syslog, listen: '127.0.0.1:8080', protocols: [tcp]}\n"
    )
    assert source_of(parse_config(text), SyslogSourceConfig).listen == "127.0.0.1:8080"
    assert "HTTP API" in _error(text + "  - {type: http, name: ingest}\n")


def test_two_sources_with_one_name_are_an_error() -> None:
    text = (
        "sources:\n  - {type: file, name: logs, paths: [a]}\n  - {type: file, paths: [b]}\n"
        "  - {type: file, name: logs, paths: [c]}\n"
    )
    assert _error(text) == (
        "c.yaml:4: sources[2].name: 'logs' is already the name of sources[0]; "
        "give each source a name of its own"
    )


# -- warnings: fields nothing produces --------------------------------------------------------
SITE = """\
workshops:
  syslog: {format: syslog, delegate: {scemw: sce}}
  sce: {format: kv, fields: [time, user, op]}
  app: {format: json}
"""


def _warnings(text: str) -> list[str]:
    return list(parse_config(SITE + text, "c.yaml").warnings)


def test_a_template_field_nothing_produces_is_a_warning() -> None:
    found = _warnings(
        "mappings:\n"
        "  - name: m\n    type: USER_OP\n    when: {workshop: sce}\n"
        "    body: {user: '{usr}', op: '{op} by {user} on {host} at {time}',\n"
        "           facility: '{facility}'}\n"
    )
    assert found == [
        "c.yaml:9: mappings[0].body.user: {usr} renders empty: no record this matches has 'usr' "
        "(workshop sce gives facility, host, level, msgid, op, pid, program, sd, time, uptime, "
        "user); check its spelling"
    ]


def test_named_groups_of_the_message_regex_are_known() -> None:
    found = _warnings(
        "alerts:\n  - name: a\n    subtype: X\n"
        "    when: {workshop: syslog, message: 'x (?P<what>\\S+)'}\n"
        "    reason: '{what} on {host} by {program}: {wat}'\n"
    )
    assert len(found) == 1
    assert found[0].startswith("c.yaml:9: alerts[0].reason: {wat} renders empty")
    assert "when.message captures what" in found[0]


def test_a_rule_key_and_collect_nothing_produces_are_warnings() -> None:
    found = _warnings(
        "rules:\n  - name: r\n    subtype: S\n    threshold: 3\n"
        "    when: {workshop: syslog, message: 'fail (?P<acct>\\S+) from (?P<addr>\\S+)'}\n"
        "    key: account\n    collect: [addr, port]\n"
        "    reason: '{count} {account} {acct} {addrs} {ports} {window} {nope}'\n"
    )
    assert [w.split(": ", 2)[1] for w in found] == [
        "rules[0].key",
        "rules[0].collect[1]",
        "rules[0].reason",
    ]
    assert (
        "so the rule never counts; check its spelling or capture it with (?P<account>" in found[0]
    )
    assert "so ports stays empty" in found[1]
    assert "{nope} renders empty" in found[2]


def test_a_field_condition_nothing_produces_is_a_warning() -> None:
    found = _warnings(
        "mappings:\n  - name: m\n    type: USER_OP\n"
        "    when: {workshop: sce, fields: {usr: bob, host: h, message: m}}\n"
    )
    assert found == [
        "c.yaml:8: mappings[0].when.fields.usr: no record of workshop sce has a field 'usr' "
        "(they have facility, host, level, msgid, op, pid, program, sd, time, uptime, user), "
        "so this never matches; check its spelling"
    ]


@pytest.mark.parametrize(
    "when",
    [
        "{workshop: app}",  # json: any key
        "{workshop: [sce, app]}",
        "{}",  # every workshop, json among them
    ],
)
def test_records_of_open_formats_are_never_warned_about(when: str) -> None:
    text = (
        f"mappings:\n  - name: m\n    type: USER_OP\n    when: {when}\n    body: {{x: '{{x}}'}}\n"
    )
    assert _warnings(text) == []


def test_the_syslog_field_set_is_what_the_workshop_produces() -> None:
    """SYSLOG_FIELDS is a copy: if the workshop ever sets another field, warnings would lie."""
    workshops = build_workshops(parse_config("workshops: {s: {format: syslog}}\n"))
    lines = [
        "<38>Nov 21 22:38:28 login01 sshd[4242]: Accepted password for u",
        "<4>Nov 21 22:38:28 cn01 kernel: [12345.678901] Out of memory",
        '<165>1 2026-11-21T22:38:28Z h app 77 ID47 [ex@1 a="b"] msg',
        "Nov 21 22:38:28 host prog: plain",
        "no header at all",
    ]
    seen: set[str] = set()
    for line in lines:
        seen |= set(workshops["s"].decode(make_record("s", "h", line)).fields)
    assert seen == SYSLOG_FIELDS


def test_the_examples_load_without_warnings() -> None:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        config: Config = load_config(path)
        assert config.warnings == (), path


# -- the check command and run ------------------------------------------------------------
def test_check_prints_warnings_and_still_says_ok(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        SITE + "mappings:\n  - name: m\n    type: USER_OP\n    when: {workshop: sce}\n"
        "    body: {user: '{usr}'}\n"
    )
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert f"Warning: {path}:9: mappings[0].body.user: {{usr}} renders empty" in result.output
    assert f"{path}: OK — 0 sources, 3 workshops, 1 mappings, 0 alerts, 0 rules (1 warning)" in (
        result.output
    )


def test_run_refuses_what_check_refuses(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(f"node: {{data_dir: '{tmp_path / 'd'}'}}\nsources:\n{SYSLOG_5514}{SYSLOG_5514}")
    for args in (["check", str(path)], ["run", "-c", str(path)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output  # the same status from both
        assert f"Error: {path}:4: sources[1].name: 'a' is already the name of sources[0]" in (
            result.output
        )
    assert not (tmp_path / "d").exists()  # nothing was started
