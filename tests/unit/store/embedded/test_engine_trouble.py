"""A store that cannot write (disk full, I/O error) says StoreUnavailable, keeps what it had
committed, and takes the same batch again once it can write: nothing lost, nothing twice."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from tests.helpers.store_data import positions, sample_docs
    from logfactory.errors import StoreUnavailable
    from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter
    from logfactory.store.query.tree import MatchAll, Query

    root = Path(sys.argv[1])
    placed = positions(sample_docs(6000, seed=51, days=1))
    writer = EmbeddedWriter(root, max_age_s=1e9, max_size=0)
    writer.add(placed[:1000])
    writer.commit()
    # no file may now grow past 64 kB: tantivy's next segment cannot be written, as on a
    # full disk (the signal is ignored so the write fails with EFBIG instead)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, hard))
    try:
        writer.add(placed[1000:])
        writer.commit()
        print("no failure")
        sys.exit(1)
    except StoreUnavailable as exc:
        print("unavailable:", exc)
    assert EmbeddedReader(root).count(Query(MatchAll())) == 1000  # the commit before holds
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    assert writer.add(placed[1000:]) == 5000  # what failed was not taken
    writer.close()
    ids = [doc.id for doc in EmbeddedReader(root).scan(Query(MatchAll()), 10_000, 60.0)]
    assert len(ids) == len(set(ids)) == 6000, len(ids)
    print("recovered")
    """
)


def test_a_full_disk_is_unavailable_then_recovers(store_dir: Path) -> None:
    root = Path(__file__).resolve().parents[4]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(store_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stdout + child.stderr
    lines = child.stdout.splitlines()
    assert lines[0].startswith("unavailable: the store could not")
    assert lines[-1] == "recovered"
