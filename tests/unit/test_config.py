from __future__ import annotations

import pytest

from logfactory.config import ConfigError, parse_config, parse_duration, parse_size


def test_unknown_key_names_file_line_and_key() -> None:
    text = "node:\n  name: x\nsources:\n  - type: file\n    paths: [a]\n    colour: red\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "site.yaml")
    assert str(info.value).startswith("site.yaml:6: sources[0].colour: unknown key 'colour'")


def test_wrong_type_points_at_value_line() -> None:
    with pytest.raises(ConfigError, match=r"^c.yaml:3: bus.partitions: Expected `int`"):
        parse_config("node: {}\nbus:\n  partitions: two\n", "c.yaml")


def test_cross_checks_report_line() -> None:
    text = "workshops:\n  sys: {format: syslog}\nfactory:\n  routes:\n    syslog: nowhere\n"
    with pytest.raises(
        ConfigError, match=r"^c.yaml:5: factory.routes.syslog: routes to unknown workshop 'nowhere'"
    ):
        parse_config(text, "c.yaml")


def test_bad_yaml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("a: [", "c.yaml")


def test_durations_and_sizes() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("5m") == 300
    assert parse_duration(3) == 3.0
    assert parse_size("2KiB") == 2048
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_an_http_bus_needs_the_central_nodes_url() -> None:
    text = "node: {name: edge}\nbus:\n  type: http\n  http: {token: abcdefgh}\n"
    with pytest.raises(ConfigError, match=r"^c.yaml:3: .*ships to a central node.*url"):
        parse_config(text, "c.yaml")
    ok = parse_config("bus: {type: http, http: {url: 'https://central:8080/api/v1/ingest'}}\n")
    assert ok.bus.http.url == "https://central:8080/api/v1/ingest"


def test_an_edges_client_certificate_needs_an_https_url() -> None:
    text = (
        "bus:\n  type: http\n  http:\n    url: 'http://central:8080/api/v1/ingest'\n"
        "    client_cert: /etc/e.pem\n    client_key: /etc/e.key\n"
    )
    with pytest.raises(ConfigError, match=r"^c.yaml:5: .*client_cert: .*https:// only"):
        parse_config(text, "c.yaml")
    ok = parse_config(text.replace("http://", "https://"))
    assert ok.bus.http.client_cert == "/etc/e.pem"
    alone = text.replace("http://", "https://").replace("    client_key: /etc/e.key\n", "")
    together = r"^c.yaml:\d+: bus.http.client_key: client_cert and client_key must be given"
    with pytest.raises(ConfigError, match=together):
        parse_config(alone, "c.yaml")


def test_the_api_certificate_needs_its_key() -> None:
    with pytest.raises(ConfigError, match=r"^c.yaml:2: .*tls_cert and tls_key must be given"):
        parse_config("http:\n  tls_cert: /etc/c.pem\n", "c.yaml")


# -- readable key paths and messages (issue 12, item 7) --------------------------------------
def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml")
    return str(info.value)


def test_an_enum_error_lists_the_valid_values_under_the_dict_key() -> None:
    text = "workshops:\n  sys: {format: syslog}\n  syslog:\n    format: sylog\n"
    assert _error(text) == (
        "c.yaml:4: workshops.syslog.format: 'sylog' is not valid; "
        "expected one of syslog, kv, slurm, json"
    )
    text = "sources:\n  - type: syslog\n    listen: 127.0.0.1:5514\n    protocols: [udp, sctp]\n"
    assert _error(text) == (
        "c.yaml:4: sources[0].protocols[1]: 'sctp' is not valid; expected one of udp, tcp"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the failing entry of a dict is named, not "....", and its own line is given
        (
            "factory:\n  routes:\n    a: sys\n    b: 1\n",
            "c.yaml:4: factory.routes.b: Expected `str`",
        ),
        (
            "mappings:\n  - name: m\n    type: ALERT\n    when:\n      fields:\n"
            "        ok: y\n        f: {equals: x, foo: 1}\n",
            "c.yaml:7: mappings[0].when.fields.f.foo: unknown key 'foo'",
        ),
        (
            "bus:\n  kafka:\n    client.id: x\n    bootstrap.servers: [a]\n",
            'c.yaml:4: bus.kafka["bootstrap.servers"]: Expected `bool | int | str`, got `array`',
        ),
        (
            "workshops:\n  sys: {format: syslog}\n  1: {format: json}\n",
            "c.yaml:3: workshops: the name 1 is not text",
        ),
        (
            "workshops:\n  a:\n    format: syslog\n    delegate:\n      postfix/smtpd: b\n",
            'c.yaml:5: workshops.a.delegate["postfix/smtpd"]: delegates to unknown workshop',
        ),
    ],
)
def test_every_error_names_its_key_path_readably(text: str, expected: str) -> None:
    message = _error(text)
    assert message.startswith(expected), message
    assert "..." not in message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("sources:\n  - type: syslog\n    listen: 5514\n", "c.yaml:3: sources[0].listen: 5514"),
        ("sources:\n  - type: raw\n    listen: '5514'\n", "c.yaml:3: sources[0].listen: 5514"),
        (
            "sources:\n  - type: raw\n    tls_listen: 6514\n",
            "c.yaml:3: sources[0].tls_listen: 6514",
        ),
        ("http:\n  listen: 8080\n", "c.yaml:2: http.listen: 8080"),
    ],
)
def test_a_bare_port_says_write_host_port(text: str, where: str) -> None:
    port = where.rsplit(" ", 1)[1]
    assert _error(text) == (
        f"{where} is a port without a host; write it as HOST:PORT, e.g. 127.0.0.1:{port} "
        f"(this machine only) or 0.0.0.0:{port} (every interface)"
    )


@pytest.mark.parametrize("port", [0, 65536, 99999])
def test_ports_outside_1_to_65535_are_refused(port: int) -> None:
    text = f"sources:\n  - {{type: snmp, communities: [p], listen: '127.0.0.1:{port}'}}\n"
    assert _error(text).startswith(f"c.yaml:2: sources[0].listen: port {port} of ")
    assert _error(f"http: {{listen: 'localhost:{port}'}}\n").endswith("is outside 1-65535")


def test_the_loader_owns_path_and_warnings() -> None:
    assert _error("node: {}\nwarnings: [x]\n").startswith("c.yaml:2: warnings: unknown key")
