"""Owner-only files whatever the umask (issue 15, "Files"; logfactory.owner_only): real
processes started under a permissive umask leave nothing in their data directory that another
account could read: directories 0700, files 0600, a data directory that existed looser made
0700 with a line that says so.

Each test waits until every kind of file the process writes exists (the bus with its -wal and
-shm, positions, stats, the factory's pid file, the lock, the self-signed TLS pair, the SNMP
engine id, the spool) before it walks the directory; a kind that never appears fails the wait,
so the walk cannot pass on a directory that is merely empty.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.helpers.file_modes import not_owner_only
from tests.helpers.nodes import ROOT, NodeProcess, demo_config
from tests.helpers.ports import free_port, free_port_both
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

Start = Callable[..., NodeProcess]

LINES = "".join(f"Nov 22 00:15:{n:02d} web01 app: line {n}\n" for n in range(20))


def _all_exist(data: Path, names: list[str]) -> Callable[[], bool]:
    """Whether every glob of ``names`` matches something under ``data``."""
    return lambda: all(any(data.glob(name)) for name in names)


def _node_config(tmp_path: Path) -> tuple[Path, Path]:
    """The demo's config plus the sources that write files of their own in the data
    directory: a file tail (positions), syslog over TLS without a certificate (the self-signed
    pair) and SNMP (its engine id); and the spool set to always."""
    config, _, _ = demo_config(tmp_path)
    (tmp_path / "in.log").write_text(LINES)
    tls, snmp = free_port(), free_port_both()
    extra = (
        f"  - {{type: file, name: files, tag: syslog, paths: ['{tmp_path / 'in.log'}']}}\n"
        f"  - {{type: syslog, name: tls, tag: syslog, tls_listen: '127.0.0.1:{tls}'}}\n"
        f"  - {{type: snmp, name: traps, tag: snmp, listen: '127.0.0.1:{snmp}', "
        "communities: [public]}\n"
    )
    text = config.read_text().replace("sources:\n", "sources:\n" + extra, 1)
    config.write_text(text + "\ncollector: {spool: always}\n")
    return config, tmp_path / "data"


NODE_FILES = [
    "bus/bus.sqlite3", "bus/bus.sqlite3-wal", "bus/bus.sqlite3-shm", "bus/bus.json",
    "collect/files.positions.json", "stats/node.json", "stats/factory-*.json",
    "factory-0.pid", "node.lock", "tls/node.crt", "tls/node.key", "snmp/traps.json",
]  # fmt: skip


@pytest.mark.timeout(180)
@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_a_node_under_a_loose_umask_writes_only_owner_only_files(
    tmp_path: Path, start_node: Start, umask: int
) -> None:
    config, data = _node_config(tmp_path)
    node = start_node(config, "--quiet", umask=umask)
    wait_for(
        lambda: _all_exist(data, NODE_FILES)() or node.proc.poll() is not None,
        90,
        "every kind of file a node writes",
    )
    assert node.proc.poll() is None, node.output()
    assert not_owner_only(data) == {}
    assert node.stop() == 0
    assert not_owner_only(data) == {}  # what the stop wrote too
    assert "open to other users" not in node.output()  # it made the directory: nothing to fix


@pytest.mark.timeout(180)
def test_a_looser_data_directory_is_made_owner_only_and_said_so(
    tmp_path: Path, start_node: Start
) -> None:
    """A directory made by hand under umask 022 (or by an earlier version), with a file and a
    subdirectory in it that others may read and a link to a file outside, which stays as it is
    (where a link points is the operator's choice)."""
    config, data = _node_config(tmp_path)
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "notes").mkdir()
    (data / "notes").chmod(0o755)
    (data / "notes" / "readme.txt").write_text("left here by hand\n")
    (data / "notes" / "readme.txt").chmod(0o644)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the node's\n")
    outside.chmod(0o644)
    (data / "notes" / "link").symlink_to(outside)
    node = start_node(config, "--quiet", umask=0o022)
    wait_for(
        lambda: _all_exist(data, NODE_FILES)() or node.proc.poll() is not None,
        90,
        "every kind of file a node writes",
    )
    assert node.proc.poll() is None, node.output()
    assert not_owner_only(data) == {}
    assert outside.stat().st_mode & 0o777 == 0o644
    assert node.stop() == 0
    said = [line for line in node.output().splitlines() if "open to other users" in line]
    assert said == [
        f"node.data_dir {data} was open to other users (mode 0755): made it owner-only (0700), "
        "and 2 entries in it (directories 0700, files 0600)"
    ]


@pytest.mark.timeout(120)
def test_collect_alone_with_its_spool_writes_only_owner_only_files(
    tmp_path: Path, start_node: Start
) -> None:
    """An edge collector (``logfactory collect``) whose central node is away: it spools. Its
    data directory existed 0755."""
    data = tmp_path / "edge"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (tmp_path / "in.log").write_text(LINES)
    nowhere = free_port()  # nothing listens there: every shipment fails, the spool takes it
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"node: {{name: edge1, data_dir: '{data}'}}\n"
        f"bus: {{type: http, http: {{url: 'http://127.0.0.1:{nowhere}/api/v1/ingest'}}}}\n"
        "collector: {spool_flush_timeout: 1s}\n"
        "sources:\n"
        f"  - {{type: file, name: files, tag: syslog, paths: ['{tmp_path / 'in.log'}']}}\n"
    )
    edge = start_node(config, "--quiet", role="collect", umask=0o022)
    names = ["spool/collector.db", "collect/files.positions.json", "stats/*.json", "node.lock"]
    wait_for(
        lambda: _all_exist(data, names)() or edge.proc.poll() is not None,
        60,
        "the spool, positions and stats",
    )
    assert edge.proc.poll() is None, edge.output()
    assert not_owner_only(data) == {}
    assert edge.stop() == 0
    assert not_owner_only(data) == {}
    assert f"node.data_dir {data} was open to other users (mode 0755)" in edge.output()


def _cli(tmp_path: Path, *args: str, umask: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logfactory", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, umask=umask,
    )  # fmt: skip


@pytest.mark.timeout(240)
def test_cli_commands_that_write_make_only_owner_only_files(tmp_path: Path) -> None:
    """`patterns learn` into a new data directory (a bus made from nothing), then `bus repair`
    (a new database, the old one kept aside), both under umask 000."""
    config, data = _node_config(tmp_path)
    learned = _cli(
        tmp_path, "patterns", "learn", str(ROOT / "tests/corpora/auth/day1.log"), "-c", str(config),
        umask=0o000,
    )  # fmt: skip
    assert learned.returncode == 0, learned.stderr
    assert (data / "bus" / "bus.sqlite3").exists()
    assert not_owner_only(data) == {}

    (data / "bus" / "bus.sqlite3").write_bytes(b"not a database at all" * 100)
    repaired = _cli(tmp_path, "bus", "repair", "--accept-loss", "-c", str(config), umask=0o000)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert len(list((data / "bus").glob("bus.sqlite3.damaged-*"))) == 1
    assert not_owner_only(data) == {}
