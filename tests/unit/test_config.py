from __future__ import annotations

import pytest

from logfactory.config import ConfigError, parse_config, parse_duration, parse_size


def test_unknown_key_names_file_line_and_key() -> None:
    text = "node:\n  name: x\nsources:\n  - type: file\n    paths: [a]\n    colour: red\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "site.yaml")
    assert str(info.value).startswith("site.yaml:6:")
    assert "colour" in str(info.value)


def test_wrong_type_points_at_value_line() -> None:
    with pytest.raises(ConfigError, match=r"^c.yaml:3: bus.partitions: Expected `int`"):
        parse_config("node: {}\nbus:\n  partitions: two\n", "c.yaml")


def test_cross_checks_report_line() -> None:
    text = "workshops:\n  sys: {format: syslog}\nfactory:\n  routes:\n    syslog: nowhere\n"
    with pytest.raises(ConfigError, match=r"^c.yaml:5: routes to unknown workshop 'nowhere'"):
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


def test_the_api_certificate_needs_its_key() -> None:
    with pytest.raises(ConfigError, match=r"^c.yaml:2: .*tls_cert and tls_key must be given"):
        parse_config("http:\n  tls_cert: /etc/c.pem\n", "c.yaml")
