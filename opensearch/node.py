#!/usr/bin/env python3
"""Fixed-port OpenSearch nodes for humans and benchmarks: the ``make opensearch*`` targets.

    python opensearch/node.py jars      # build the launcher and fetch the jars (Maven Central ->
                                        # ~/.m2 -> the lib dir), saying what, where and how big
    python opensearch/node.py single    # 1 node, http 127.0.0.1:9200 (transport 9300)
    python opensearch/node.py cluster   # 3 nodes, http 127.0.0.1:9200,9201,9202 (transport 930x)
    python opensearch/node.py stop      # stop every node started by this script

The nodes run detached (they outlive this script); data, logs and pid files are under
var/opensearch/{single,cluster}/node<N>/, and the data is kept between starts (``make clean``
removes it). ``single`` returns once the node answers with health yellow or green, ``cluster``
once all three have joined and health is green; nodes already running are left as they are.
``single`` and ``cluster`` use the same ports: stop one before starting the other.
Run with the project venv's python (the machinery is tests/opensearch_node.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: make `tests.opensearch_node` importable

from tests.kafka_broker import port_open  # noqa: E402
from tests.opensearch_node import (  # noqa: E402
    POM,
    OpenSearchCluster,
    OpenSearchStartError,
    default_lib_dir,
    ensure_jars,
    jars_ok,
)

STATE_DIR = REPO / "var" / "opensearch"
FIXED = {
    "single": [(9200, 9300)],
    "cluster": [(9200, 9300), (9201, 9301), (9202, 9302)],
}


def running_pids(root: Path) -> dict[Path, int]:
    """pid file -> pid of the nodes under ``root`` that still run.

    A pid counts only while its command line still names that node's home, so a pid reused by
    an unrelated process (after a reboot, say) is never signalled.
    """
    alive: dict[Path, int] = {}
    for pid_file in sorted(root.glob("node*/pid")):
        home = f"-Epath.home={pid_file.parent}"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if home in cmdline.split("\0"):
                alive[pid_file] = pid
    return alive


def stop_dir(root: Path, timeout: float = 30.0) -> list[int]:
    """SIGTERM the nodes under ``root``, SIGKILL what is left after ``timeout``; pids stopped."""
    alive = running_pids(root)
    for pid in alive.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in alive.values():
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
    for pid_file in root.glob("node*/pid"):
        pid_file.unlink()
    return list(alive.values())


def start_fixed(kind: str) -> int:
    ports = FIXED[kind]
    root = STATE_DIR / kind
    other = next(k for k in FIXED if k != kind)
    if running_pids(STATE_DIR / other):
        print(f"OpenSearch {other} is running on the same ports: make opensearch-stop first",
              file=sys.stderr)  # fmt: skip
        return 1
    t0 = time.monotonic()
    try:
        ensure_jars(out=sys.stdout)
        cluster = OpenSearchCluster(root, ports, detach=True)
        if len(running_pids(root)) == len(ports):
            cluster.wait_ready(timeout=120)
            print(f"OpenSearch {kind} already running")
        else:
            stop_dir(root)  # a partial cluster from an earlier run: start afresh (data is kept)
            busy = [p for pair in ports for p in pair if port_open(p)]
            if busy:
                print(f"ports {busy} in use by something else; free them first", file=sys.stderr)
                return 1
            try:
                cluster.start_all(wait=True)
            except OpenSearchStartError:
                cluster.stop_all(timeout=10.0)  # no half-started cluster left behind
                raise
            print(f"OpenSearch {kind} ready in {time.monotonic() - t0:.1f} s")
    except OpenSearchStartError as exc:
        print(f"opensearch {kind}: {exc}", file=sys.stderr)
        return 1
    health = cluster.health() or {}
    print(f"health {health.get('status')}, {health.get('number_of_nodes')} node(s);"
          f" logs: {root}/node*/node.log")  # fmt: skip
    print(f"URLS={','.join(cluster.urls)}")
    return 0


def announcement(lib: Path) -> str:
    """What the jars step is about to do and what it costs, printed before it starts."""
    version = re.search(r"<opensearch\.version>([^<]+)<", POM.read_text())
    # measured into an empty local repository: 541 files, 85 MB, ~7 s on a fast link
    return "\n".join([
        f"Building the OpenSearch {version[1] if version else ''} node for the OpenSearch tests"
        " and `make opensearch` (first run, or opensearch/pom.xml or its launcher changed):",
        "  Maven downloads about 85 MB (some 540 files) from Maven Central into ~/.m2/repository,"
        " kept for later runs,",
        f"  compiles the launcher and copies the ~90 jars the node needs (50 MB) into {lib}",
    ])  # fmt: skip


def jars(out: TextIO = sys.stdout) -> int:
    """The ``jars`` command: announce, build with a download count, report where."""
    t0 = time.monotonic()
    lib = default_lib_dir()
    if not jars_ok(lib):
        print(announcement(lib), file=out, flush=True)
    try:
        ensure_jars(lib, out=out)
    except OpenSearchStartError as exc:
        print(f"opensearch jars: {exc}", file=sys.stderr)
        return 1
    n = len(list(lib.glob("*.jar")))
    print(f"OpenSearch jars in {lib} ({n} jars; {time.monotonic() - t0:.1f} s)", file=out)
    return 0


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else ""
    if cmd == "jars":
        return jars()
    if cmd == "stop":
        pids = [pid for kind in FIXED for pid in stop_dir(STATE_DIR / kind)]
        print(
            f"stopped {len(pids)} OpenSearch node(s)" if pids else "no OpenSearch node was running"
        )
        return 0
    if cmd in FIXED:
        return start_fixed(cmd)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
