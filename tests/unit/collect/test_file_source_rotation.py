"""The file source's harder cases: idle last lines, gzip'd files read once, copies made by
copytruncate and compress, fast rewrites, deleted files released."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tests.helpers.agent import AgentRunner, Reader, numbered, start, write
from tests.helpers.waiting import wait_for

from logfactory.bus.local import LocalBus
from logfactory.collect.sources.file import FileSource
from logfactory.config import Config, NodeConfig, source_config


def config(tmp_path: Path, pattern: str, **kw: Any) -> Config:
    source = source_config(type="file", name="app", paths=[pattern], **kw)
    return Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=[source])


def source_of(agent: AgentRunner) -> FileSource:
    (src,) = agent.agent.sources
    assert isinstance(src, FileSource)
    return src


def positions(tmp_path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((tmp_path / "data/collect/app.positions.json").read_text())
    return doc


def test_an_unterminated_last_line_is_delivered_after_the_idle_timeout(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    write(app, "first\nno newline yet")
    agent = start(runners, config(tmp_path, str(logs / "*.log"), idle_timeout=0.3), bus)
    reader = Reader(bus)
    records = reader.wait_count(2)
    assert [r.line for r in records] == ["first", "no newline yet"]
    assert records[1].meta == {"path": str(app), "offset": 6}
    write(app, "later\n")  # what follows an idle-delivered line starts a new one
    assert reader.wait_count(3)[-1].line == "later"
    agent.stop()
    assert positions(tmp_path)["files"][0]["offset"] == app.stat().st_size
    assert len(reader.poll()) == 3


def test_gz_files_are_skipped_unless_read_gzip(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    write(logs / "app.log", "plain\n")
    (logs / "app.log.2.gz").write_bytes(gzip.compress(b"zipped\n"))
    agent = start(runners, config(tmp_path, str(logs / "app.log*")), bus)
    reader = Reader(bus)
    reader.wait_count(1)
    write(logs / "app.log", "plain 2\n")
    assert [r.line for r in reader.wait_count(2)] == ["plain", "plain 2"]
    agent.stop()
    assert len(reader.poll()) == 2


def test_gzip_files_are_read_once_whole_and_never_again(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    old = logs / "app.log.2.gz"
    two_members = gzip.compress(numbered("z", 0, 100).encode()) + gzip.compress(
        (numbered("z", 100, 150) + "z tail").encode()
    )
    old.write_bytes(two_members)
    cfg = config(tmp_path, str(logs / "app.log*"), read_gzip=True)
    agent = start(runners, cfg, bus)
    reader = Reader(bus)
    records = reader.wait_count(151)
    assert [r.line for r in records] == [f"z line {i}" for i in range(150)] + ["z tail"]
    assert records[1].meta == {"path": str(old), "offset": len("z line 0\n")}
    later = logs / "app.log.3.gz"
    later.write_bytes(gzip.compress(b"late 1\nlate 2\n"))
    reader.wait_count(153)
    wait_for(lambda: all(t.done for t in source_of(agent)._tails.values()), 10, "done")
    agent.stop()
    entries = {e["path"]: e for e in positions(tmp_path)["files"]}
    assert entries[str(old)]["done"]
    assert entries[str(later)]["done"]
    start(runners, cfg, bus)
    write(logs / "app.log", "fresh\n")
    assert reader.wait_count(154)[-1].line == "fresh"
    assert len(reader.poll()) == 154


def test_a_compressed_rotated_file_continues_where_the_plain_one_stopped(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    write(app, numbered("r", 0, 100))
    cfg = config(tmp_path, str(logs / "app.log*"), read_gzip=True)
    agent = start(runners, cfg, bus)
    reader = Reader(bus)
    reader.wait_count(100)
    agent.stop()
    # while the collector is down: more lines, then logrotate (rename, compress, delete)
    write(app, numbered("r", 100, 130))
    os.rename(app, logs / "app.log.1")
    (logs / "app.log.1.gz").write_bytes(gzip.compress((logs / "app.log.1").read_bytes()))
    (logs / "app.log.1").unlink()
    write(app, numbered("new", 0, 5))
    start(runners, cfg, bus)
    reader.wait_count(135)
    lines = reader.lines()
    assert sorted(lines) == sorted([f"r line {i}" for i in range(130)] + numbered_list("new", 5))
    assert len(reader.poll()) == 135


def numbered_list(prefix: str, n: int) -> list[str]:
    return [f"{prefix} line {i}" for i in range(n)]


def test_a_gz_of_a_file_still_followed_waits_and_adds_nothing(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    rotated = logs / "app.log.1"
    write(rotated, numbered("w", 0, 200))
    agent = start(runners, config(tmp_path, str(logs / "app.log*"), read_gzip=True), bus)
    reader = Reader(bus)
    reader.wait_count(200)
    (logs / "app.log.1.gz").write_bytes(gzip.compress(rotated.read_bytes()))
    rotated.unlink()  # compress done: the plain file goes, the .gz holds the same lines
    src = source_of(agent)
    wait_for(lambda: [t.done for t in src._tails.values()] == [True], 10, "the .gz done")
    agent.stop()
    assert reader.lines() == numbered_list("w", 200)


def test_a_copytruncate_copy_matching_the_glob_adds_only_unread_lines(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    write(app, numbered("c", 0, 100))
    cfg = config(tmp_path, str(logs / "app.log*"))
    agent = start(runners, cfg, bus)
    reader = Reader(bus)
    reader.wait_count(100)
    agent.stop()
    write(app, numbered("c", 100, 120))  # not read yet when the rotation happens
    shutil.copyfile(app, logs / "app.log.1")
    os.truncate(app, 0)
    write(app, numbered("after", 0, 10))
    agent = start(runners, cfg, bus)
    reader.wait_count(130)
    shutil.copyfile(app, logs / "app.log.2")  # and once more while it runs
    os.truncate(app, 0)
    write(app, numbered("third", 0, 3))
    reader.wait_count(133)
    agent.stop()
    expected = numbered_list("c", 120) + numbered_list("after", 10) + numbered_list("third", 3)
    assert sorted(reader.lines()) == sorted(expected)


def test_a_truncated_file_rewritten_past_our_position_is_read_from_zero(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    write(app, numbered("old", 0, 10))
    start(runners, config(tmp_path, str(logs / "*.log")), bus)
    reader = Reader(bus)
    reader.wait_count(10)
    with open(app, "r+b") as f:  # truncated and refilled faster than one poll
        f.write(numbered("fresh", 0, 50).encode())
    records = reader.wait_count(60)
    assert [r.line for r in records[10:]] == numbered_list("fresh", 50)
    assert records[10].meta["offset"] == 0


def test_a_deleted_file_is_released(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    write(app, "one\ntwo")
    agent = start(runners, config(tmp_path, str(logs / "*.log")), bus)
    reader = Reader(bus)
    reader.wait_count(1)
    src = source_of(agent)
    app.unlink()
    wait_for(lambda: not src._tails, 10, "the deleted file to be let go")
    assert not any(p.startswith(str(app)) for p in open_files())
    assert [r.line for r in reader.wait_count(2)] == ["one", "two"]  # its last line delivered


def open_files() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the listing's own descriptor, closed already
            continue
    return out
