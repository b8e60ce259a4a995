"""A reader in another process sees each commit while the writer goes on writing."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.helpers.store_data import positions, sample_docs

from logfactory.store.engines.embedded import EmbeddedWriter

READER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from logfactory.store.engines.embedded import EmbeddedReader
    from logfactory.store.query.tree import MatchAll, Query, Word

    reader = EmbeddedReader(Path(sys.argv[1]))
    want, last = int(sys.argv[2]), -1
    deadline = time.monotonic() + 120
    print("ready", flush=True)
    while time.monotonic() < deadline:
        seen = reader.count(Query(MatchAll()))
        page = reader.search(Query(Word("failed")), 5)  # a search works too, mid-write
        assert page.total is not None
        if seen != last:
            print(seen, flush=True)
            last = seen
        if seen == want:
            break
    """
)


def _line(child: subprocess.Popen[str], deadline: float) -> str:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], max(0.0, deadline - time.monotonic()))
    assert ready, "the reader process said nothing in time"
    line = child.stdout.readline().strip()
    assert line, f"the reader process ended: {child.stderr.read() if child.stderr else ''}"
    return line


def test_a_reader_process_sees_every_commit(store_dir: Path) -> None:
    placed = positions(sample_docs(1000, seed=41, days=2))
    root = Path(__file__).resolve().parents[4]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    with subprocess.Popen(
        [sys.executable, "-c", READER, str(store_dir), str(len(placed))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            deadline = time.monotonic() + 60
            assert _line(child, deadline) == "ready"
            writer = EmbeddedWriter(store_dir, max_age_s=1e9, max_size=0)
            seen = [0]
            for start in range(0, len(placed), 200):
                writer.add(placed[start : start + 200])
                writer.commit()
                while seen[-1] < start + 200:  # the reader sees this commit, in time
                    seen.append(int(_line(child, deadline)))
            writer.close()
            assert child.wait(timeout=60) == 0
        finally:
            if child.poll() is None:
                child.kill()
    assert seen == sorted(seen), "what a reader saw never went back"
    assert seen[-1] == len(placed)
