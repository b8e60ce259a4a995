"""A damaged embedded bus is refused, never started empty, and can be checked and repaired.

The marker (bus.json) proves that a bus lived in a directory: a database truncated to 0 bytes or
deleted is then a loss the bus refuses to open (readers too), not a new empty bus. A database
half overwritten is refused by the node's start check; ``logfactory bus check`` says it is
damaged (exit 1) and ``logfactory bus repair`` copies every readable message into a new
database, at the offsets it had, keeping the damaged file. A lost bus starts anew only with
``--accept-loss``; another bus's file is refused until adopted."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.helpers.bus import V2_LAYOUT
from tests.helpers.bus_damage import HISTORY, fill, overwrite_second_half, readable
from tests.helpers.worker import demo_config_file

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import DamagedBusError, LocalBus
from logfactory.bus.local.marker import LostBusError, SwappedBusError
from logfactory.bus.local.repair import RepairRefused, check, repair
from logfactory.cli import cli

pytestmark = pytest.mark.timeout(120)


def _site(tmp_path: Path) -> tuple[str, Path]:
    """A configuration (the demo's) and its bus directory."""
    return demo_config_file(tmp_path), tmp_path / "d" / "bus"


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _error_line(result: Result) -> str:
    """A command that failed as a person should see it: exit 1, one Error: line, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    return errors[0]


def _marker(bus_dir: Path) -> dict[str, object]:
    doc = json.loads((bus_dir / "bus.json").read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("how", ["truncated to 0 bytes", "deleted"])
def test_a_bus_whose_database_is_gone_is_refused_not_started_empty(
    tmp_path: Path, how: str
) -> None:
    bus_dir = tmp_path / "bus"
    fill(bus_dir, 2_000)
    path = bus_dir / "bus.sqlite3"
    assert isinstance(_marker(bus_dir)["id"], int)
    if how == "deleted":
        path.unlink()
    else:
        os.truncate(path, 0)
    for create in (True, False):  # a node's writer and a reader alike
        with pytest.raises(LostBusError) as caught:
            LocalBus(bus_dir, create=create)
        text = str(caught.value)
        assert f"{path} is missing or empty, but {bus_dir / 'bus.json'} says" in text
        assert "put the database back from a backup" in text
        assert "`logfactory bus repair --accept-loss -c CONFIG`" in text
    assert (path.stat().st_size == 0) if how != "deleted" else not path.exists()


@pytest.mark.parametrize("wait", [False, True])
def test_a_reader_of_a_lost_bus_says_so_in_one_line_and_does_not_wait(
    tmp_path: Path, wait: bool
) -> None:
    config, bus_dir = _site(tmp_path)
    fill(bus_dir, 500)
    (tmp_path / "d" / "collect").mkdir()
    (tmp_path / "d" / "collect" / "app.positions.json").write_text("{}")
    os.truncate(bus_dir / "bus.sqlite3", 0)
    result = _run("tail", HISTORY, "--no-follow", *(["--wait"] if wait else []), "-c", config)
    line = _error_line(result)
    assert f"Error: {bus_dir / 'bus.sqlite3'} is missing or empty" in line
    assert f"`logfactory bus repair --accept-loss -c {config}`" in line
    assert f"{tmp_path / 'd' / 'collect'}/*.positions.json" in line
    assert "--reset-positions" in line


def test_a_half_overwritten_bus_is_refused_checked_and_salvaged(tmp_path: Path) -> None:
    config, bus_dir = _site(tmp_path)
    stored = fill(bus_dir)
    path = bus_dir / "bus.sqlite3"
    overwrite_second_half(path)
    size = path.stat().st_size
    bus = LocalBus(bus_dir)
    with pytest.raises(DamagedBusError, match=r"is damaged \(SQLite's quick_check: .*bus repair"):
        bus.verify()
    bus.close()

    checked = _run("bus", "check", "-c", config)
    assert f"bus      {path}: DAMAGED" in checked.output
    assert f"`logfactory bus repair -c {config}`" in _error_line(checked)

    repaired = _run("bus", "repair", "-c", config)
    assert repaired.exit_code == 0, repaired.output
    found = re.search(r"salvaged ([\d,]+) messages", repaired.output)
    assert found is not None, repaired.output
    salvaged = int(found.group(1).replace(",", ""))
    assert 0 < salvaged < len(stored)
    [kept] = bus_dir.glob("bus.sqlite3.damaged-*[0-9]Z")
    assert kept.stat().st_size == size  # the damaged file, moved aside as it was
    assert str(_marker(bus_dir)["repairs"]).count("salvaged") == 1

    again = _run("bus", "check", "-c", config)
    assert again.exit_code == 0, again.output
    assert f"{HISTORY}: {salvaged:,} messages stored, offsets reach 20,000" in again.output
    got = readable(bus_dir, salvaged)
    assert len(got) == salvaged
    assert got.items() <= stored.items()  # each one the original, at its own offset
    bus = LocalBus(bus_dir)
    bus.verify()
    high = bus.watermarks(HISTORY)
    producer = bus.producer()
    producer.produce(HISTORY, b"after the repair", b"host1")
    producer.flush()
    producer.close()
    after = {p: h for p, (_low, h) in bus.watermarks(HISTORY).items()}
    assert sum(after.values()) == sum(h for _low, h in high.values()) + 1  # offsets go on
    bus.close()


def test_a_lost_bus_starts_anew_only_when_told_and_says_so_in_the_marker(tmp_path: Path) -> None:
    config, bus_dir = _site(tmp_path)
    fill(bus_dir, 500)
    old_id = _marker(bus_dir)["id"]
    positions = tmp_path / "d" / "collect" / "app.positions.json"
    positions.parent.mkdir()
    positions.write_text("{}")
    os.truncate(bus_dir / "bus.sqlite3", 0)

    assert f"bus      {bus_dir / 'bus.sqlite3'}: LOST" in _run("bus", "check", "-c", config).output
    refused = _error_line(_run("bus", "repair", "-c", config))
    assert "pass --accept-loss to start a new empty bus" in refused
    assert (bus_dir / "bus.sqlite3").stat().st_size == 0

    done = _run("bus", "repair", "--accept-loss", "--reset-positions", "-c", config)
    assert done.exit_code == 0, done.output
    assert "started a new empty bus" in done.output
    marker = _marker(bus_dir)
    assert marker["id"] != old_id
    assert f"accepted the loss of bus id {old_id}" in str(marker["repairs"])
    assert not positions.exists()
    assert len(list(positions.parent.glob("app.positions.json.before-repair-*"))) == 1
    assert len(list(bus_dir.glob("bus.sqlite3.lost-*"))) == 1
    bus = LocalBus(bus_dir)
    assert bus.topics() == {}
    bus.close()
    assert _run("bus", "check", "-c", config).exit_code == 0


def test_another_bus_s_database_is_refused_until_adopted(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    LocalBus(ours).close()
    other = LocalBus(theirs)
    other.ensure_topic(TopicSpec("t", 1))
    other.close()
    shutil.copy(theirs / "bus.sqlite3", ours / "bus.sqlite3")
    with pytest.raises(SwappedBusError, match=r"is not the database that .*bus repair --adopt"):
        LocalBus(ours)
    assert check(ours).state == "swapped"
    with pytest.raises(RepairRefused, match="pass --adopt"):
        repair(ours)
    repair(ours, adopt=True)
    assert _marker(ours)["id"] == _marker(theirs)["id"]
    bus = LocalBus(ours)
    assert bus.topics() == {"t": 1}
    bus.close()


def test_a_bus_made_before_markers_is_upgraded_and_marked_by_a_writer_only(
    tmp_path: Path,
) -> None:
    with sqlite3.connect(tmp_path / "bus.sqlite3") as raw:
        raw.executescript(V2_LAYOUT)
    LocalBus(tmp_path, create=False).close()  # a reader writes no marker
    assert not (tmp_path / "bus.json").exists()
    bus = LocalBus(tmp_path)
    assert bus.watermarks("t") == {0: (0, 2)}
    bus.close()
    with sqlite3.connect(tmp_path / "bus.sqlite3") as raw:
        (bus_id,) = raw.execute("SELECT value FROM meta WHERE name='bus_id'").fetchone()
    assert _marker(tmp_path)["id"] == bus_id
    (tmp_path / "bus.json").write_text("{not json")  # an unreadable marker is rewritten
    LocalBus(tmp_path).close()
    assert _marker(tmp_path)["id"] == bus_id


def test_a_file_that_is_no_database_at_all_is_replaced_only_when_told(tmp_path: Path) -> None:
    bus_dir = tmp_path / "bus"
    fill(bus_dir, 500)
    path = bus_dir / "bus.sqlite3"
    size = path.stat().st_size
    path.write_bytes(b"\0garbage" * (size // 8))  # the header is gone: SQLite reads nothing
    with pytest.raises(DamagedBusError, match=rf"{path} is damaged \(SQLite: file is not a data"):
        LocalBus(bus_dir, create=False)
    assert check(bus_dir).state == "damaged"
    with pytest.raises(RepairRefused, match=r"nothing can be salvaged .* pass --accept-loss"):
        repair(bus_dir)
    assert path.read_bytes().startswith(b"\0garbage")  # left where it was
    lines = repair(bus_dir, accept_loss=True)
    assert any(line.startswith("started a new empty bus") for line in lines), lines
    [kept] = bus_dir.glob("bus.sqlite3.damaged-*[0-9]Z")
    assert kept.read_bytes().startswith(b"\0garbage")
    LocalBus(bus_dir).close()
