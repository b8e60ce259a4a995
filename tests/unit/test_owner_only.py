"""logfactory.owner_only: the umask it sets, the directory it makes, what it tightens and what it
leaves alone, and the line that says so. Each test runs under a permissive umask of its own and
puts the process's back afterwards."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.helpers.file_modes import modes, not_owner_only

from logfactory.cli import cli
from logfactory.owner_only import OWNER_ONLY_UMASK, make_owner_only, restrict_umask


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    before = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_restrict_umask_makes_new_files_and_directories_owner_only(tmp_path: Path) -> None:
    restrict_umask()
    os.close(os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY, 0o666))
    (tmp_path / "d").mkdir(mode=0o777)
    assert (_mode(tmp_path / "f"), _mode(tmp_path / "d")) == (0o600, 0o700)
    assert os.umask(OWNER_ONLY_UMASK) == 0o077


def test_a_missing_data_directory_is_made_0700_and_nothing_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "var" / "data"
    assert make_owner_only(data) == []
    assert _mode(data) == 0o700
    assert caplog.records == []


def test_what_others_may_read_is_tightened_and_said_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    (data / "bus").mkdir(parents=True, mode=0o755)
    data.chmod(0o755)
    (data / "bus" / "bus.sqlite3").write_bytes(b"x")
    (data / "bus" / "bus.sqlite3").chmod(0o644)
    (data / "run.sh").write_text("#!/bin/sh\n")
    (data / "run.sh").chmod(0o775)  # the owner's bits stay: executable for the owner
    (data / "mine").write_text("already right\n")
    (data / "mine").chmod(0o400)
    with caplog.at_level(logging.WARNING, logger="logfactory.owner_only"):
        changed = make_owner_only(data)
    assert changed[0] == data
    assert sorted(changed[1:]) == [data / "bus", data / "bus" / "bus.sqlite3", data / "run.sh"]
    assert modes(data) == {
        ".": 0o700, "bus": 0o700, "bus/bus.sqlite3": 0o600, "run.sh": 0o700, "mine": 0o400,
    }  # fmt: skip
    assert [r.getMessage() for r in caplog.records] == [
        f"node.data_dir {data} was open to other users (mode 0755): made it owner-only (0700), "
        "and 3 entries in it (directories 0700, files 0600)"
    ]


def test_entries_inside_an_owner_only_directory_are_tightened_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """E.g. a file copied in with ``cp -p`` from a looser place."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "stats").mkdir(mode=0o700)
    (data / "stats" / "node.json").write_text("{}")
    (data / "stats" / "node.json").chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="logfactory.owner_only"):
        assert make_owner_only(data) == [data / "stats" / "node.json"]
    assert not_owner_only(data) == {}
    assert [r.getMessage() for r in caplog.records] == [
        f"node.data_dir {data}: 1 entry in it was open to other users: made owner-only "
        "(directories 0700, files 0600)"
    ]


def test_links_are_not_followed_but_a_linked_data_directory_is_protected(
    tmp_path: Path,
) -> None:
    """Where a link inside points is the operator's choice; a data directory that is itself a
    link (``/var/lib/logfactory -> /srv/lf``) is the directory the node writes to."""
    real = tmp_path / "srv" / "lf"
    real.mkdir(parents=True, mode=0o755)
    real.chmod(0o755)
    outside = tmp_path / "shared.txt"
    outside.write_text("someone else's\n")
    outside.chmod(0o644)
    (real / "shared").symlink_to(outside)
    data = tmp_path / "data"
    data.symlink_to(real)
    assert make_owner_only(data) == [real]
    assert (_mode(real), _mode(outside)) == (0o700, 0o644)


def test_an_entry_that_cannot_be_changed_is_named_and_the_rest_still_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another owner's file (or a read-only mount) is a warning, not a refused start."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    for name in ("theirs", "ours"):
        (data / name).write_text("x")
        (data / name).chmod(0o644)
    chmod = Path.chmod

    def refuse_theirs(self: Path, mode: int, **kwargs: bool) -> None:
        if self.name == "theirs":
            raise PermissionError(1, "Operation not permitted")
        chmod(self, mode, **kwargs)

    monkeypatch.setattr(Path, "chmod", refuse_theirs)
    with caplog.at_level(logging.WARNING, logger="logfactory.owner_only"):
        assert make_owner_only(data) == [data / "ours"]
    assert (_mode(data / "ours"), _mode(data / "theirs")) == (0o600, 0o644)
    assert caplog.records[-1].getMessage() == (
        f"node.data_dir {data}: could not make 1 entry owner-only, e.g. {data / 'theirs'}: "
        "Operation not permitted"
    )


def test_every_command_runs_under_the_owner_only_umask(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("node: {name: n}\n")
    result = CliRunner().invoke(cli, ["check", str(config)])
    assert result.exit_code == 0, result.output
    assert os.umask(0o000) == OWNER_ONLY_UMASK
