"""The CLI's offline commands: check, schema, tail and subscribe against a bus on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from logfactory.bus.local import LocalBus
from logfactory.cli import cli
from logfactory.config import load_config
from logfactory.event import Event, Header, encode_event

ROOT = Path(__file__).resolve().parents[2]


def test_check_accepts_the_demo_config() -> None:
    result = CliRunner().invoke(cli, ["check", str(ROOT / "examples" / "demo.yaml")])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_check_names_file_line_and_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("node:\n  name: x\nbus:\n  partitons: 3\n")
    result = CliRunner().invoke(cli, ["check", str(bad)])
    assert result.exit_code == 2  # a configuration that cannot work, as for run
    assert f"{bad}:4:" in result.output
    assert "partitons" in result.output


def test_schema_prints_json_schema_and_rejects_unknown_types() -> None:
    runner = CliRunner()
    demo = str(ROOT / "examples" / "demo.yaml")
    result = runner.invoke(cli, ["schema", "ALERT", "-c", demo])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["properties"]["header"]["properties"]["type"]["const"] == "ALERT"
    result = runner.invoke(cli, ["schema", "NOPE", "-c", demo])
    assert result.exit_code == 1
    assert "unknown event type" in result.output


def _config_with_events(tmp_path: Path, n: int) -> Path:
    text = (ROOT / "examples" / "demo.yaml").read_text().replace("var/demo", str(tmp_path / "d"))
    path = tmp_path / "c.yaml"
    path.write_text(text)
    config = load_config(path)
    bus = LocalBus(Path(config.node.data_dir) / "bus")
    producer = bus.producer()
    for i in range(n):
        event = Event(
            header=Header(id=f"e-{i}", time="2026-11-22T00:00:00.000000Z", type="ALERT"),
            body={"i": i},
        )
        producer.produce("events.ALERT", encode_event(event), f"k{i}".encode())
    producer.flush()
    producer.close()
    bus.close()
    return path


def test_subscribe_count_and_group_resume(tmp_path: Path) -> None:
    config = str(_config_with_events(tmp_path, 6))
    runner = CliRunner()
    args = ["subscribe", "--types", "ALERT", "--from", "earliest", "--group", "g", "-c", config]
    first = runner.invoke(cli, [*args, "--count", "4"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, [*args, "--count", "2"])
    ids = [json.loads(x)["header"]["id"] for x in (first.output + second.output).splitlines()]
    assert sorted(ids) == sorted(f"e-{i}" for i in range(6))


def test_subscribe_unknown_type_is_a_clear_error(tmp_path: Path) -> None:
    config = str(_config_with_events(tmp_path, 1))
    result = CliRunner().invoke(cli, ["subscribe", "--types", "NOPE", "--count", "1", "-c", config])
    assert result.exit_code == 1
    assert "unknown event type" in result.output


def test_tail_prints_json_lines(tmp_path: Path) -> None:
    config = str(_config_with_events(tmp_path, 3))
    result = CliRunner().invoke(cli, ["tail", "events.ALERT", "--no-follow", "-c", config])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 3
    result = CliRunner().invoke(cli, ["tail", "nosuch.topic", "--no-follow", "-c", config])
    assert result.exit_code == 1
    assert "no topic" in result.output


# -- readers never create a bus nor wait silently for a node that is not running -------------
@pytest.mark.timeout(60)  # the old readers created the bus and waited on it forever
def test_readers_of_a_missing_bus_say_so_and_create_nothing(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "demo.yaml").read_text()
    config = tmp_path / "c.yaml"
    config.write_text(text.replace("var/demo", str(tmp_path / "nowhere")))
    for args in (
        ["subscribe", "--types", "ALERT"],
        ["tail", "logs.raw"],
        ["tail", "logs.raw", "--no-follow"],
    ):
        result = CliRunner().invoke(cli, [*args, "-c", str(config)])
        assert result.exit_code == 1, result.output
        where = f"no bus in {tmp_path / 'nowhere' / 'bus'} (node.data_dir of {config})"
        assert where in result.stderr
        assert f"`logfactory run -c {config}`, or pass --wait" in result.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.timeout(60)  # the old readers waited on a stopped node's bus forever
def test_readers_of_a_stopped_node_read_what_is_stored_then_say_so(tmp_path: Path) -> None:
    config = str(_config_with_events(tmp_path, 3))  # no node process left any stats
    runner = CliRunner()
    result = runner.invoke(cli, ["subscribe", "--types", "ALERT", "-c", config])
    # from the latest: nothing can come
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"no node is running on {tmp_path / 'd' / 'bus'}" in result.stderr
    assert "or pass --wait to wait for one" in result.stderr
    result = runner.invoke(cli, ["tail", "events.ALERT", "-c", config])
    assert result.exit_code == 1
    assert "no node is running" in result.stderr
    ids = sorted(json.loads(x)["header"]["id"] for x in result.stdout.splitlines())
    assert ids == ["e-0", "e-1", "e-2"]  # all that is stored, then the error
    # what can be answered from what is stored is answered, with exit 0
    args = ["subscribe", "--types", "ALERT", "--from", "earliest", "--count", "3", "-c", config]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3


@pytest.mark.timeout(60)  # the old tail --from latest followed on after its count
def test_tail_from_latest_with_a_count_exits_after_that_many(tmp_path: Path) -> None:
    config = str(_config_with_events(tmp_path, 3))
    args = ["tail", "events.ALERT", "--from", "latest", "--count", "2", "-c", config]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    ids = {json.loads(x)["header"]["id"] for x in result.stdout.splitlines()}
    assert len(ids) == 2
    assert ids <= {"e-0", "e-1", "e-2"}
