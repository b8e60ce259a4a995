#!/usr/bin/env python3
"""Fixed-port Kafka brokers for humans and benchmarks: the body of the ``make kafka*`` targets.

    python kafka/broker.py jars      # fetch the jars (Maven Central -> ~/.m2 -> the lib dir),
                                     # saying what, where and how big first, then a count
    python kafka/broker.py single    # 1 node, bootstrap 127.0.0.1:9092 (controller :9093)
    python kafka/broker.py cluster   # 3 nodes, 127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092
    python kafka/broker.py stop      # stop every node started by this script

The nodes run detached (they outlive this script); state, logs and pid files are under
var/kafka/{single,cluster}/node<N>/. ``single``/``cluster`` return once the brokers pass the same
readiness check as the test fixtures, and leave nodes that are already running as they are.
Run with the project venv's python (readiness uses confluent-kafka).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: make `tests.kafka_broker` importable

from tests.kafka_broker import (  # noqa: E402
    POM,
    KafkaCluster,
    KafkaStartError,
    _cds_tried,
    _stamp_ok,
    default_lib_dir,
    ensure_jars,
    launch,
)

STATE_DIR = REPO / "var" / "kafka"
FIXED = {
    "single": [(9092, 9093)],
    "cluster": [(19092, 19093), (29092, 29093), (39092, 39093)],
}


def running_pids(root: Path) -> dict[Path, int]:
    """pid file -> pid of the nodes under ``root`` that still run.

    A pid counts only while its command line still names that node's config, so a pid reused by
    an unrelated process (after a reboot, say) is never signalled.
    """
    alive: dict[Path, int] = {}
    for pid_file in sorted(root.glob("**/node*/pid")):
        config = str(pid_file.parent / "server.properties")
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if config in cmdline.split("\0"):
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
    for pid_file in root.glob("**/node*/pid"):
        pid_file.unlink()
    return list(alive.values())


def _in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_fixed(kind: str) -> int:
    ports = FIXED[kind]
    root = STATE_DIR / kind
    t0 = time.monotonic()
    if len(running_pids(root)) == len(ports):
        cluster = KafkaCluster(root, ports)
        cluster.wait_ready(timeout=60)
        print(f"Kafka {kind} already running")
    else:
        stop_dir(root)  # a partial cluster from an earlier run: start afresh
        busy = [p for pair in ports for p in pair if _in_use(p)]
        if busy:
            print(f"ports {busy} in use by something else; free them first", file=sys.stderr)
            return 1
        cluster = launch(root, len(ports), ports=ports, detach=True)
        print(f"Kafka {kind} ready in {time.monotonic() - t0:.1f} s; logs: {root}/node*/server.log")
    print(f"BOOTSTRAP={cluster.bootstrap}")
    return 0


# -- jars: the first run downloads for a while, so it says what, where, how big, and how far ------
# Sizes measured for Kafka 4.1.1 (kafka/pom.xml) into an empty ~/.m2: 356 files, 65 MB.
# "Downloaded from central: URL (9.8 MB at 12 MB/s)"; the speed is left out when it took no time
_DOWNLOADED = re.compile(r"Downloaded from [^:]+: (\S+) \(([\d.]+) (B|kB|MB|GB)(?: at [^)]*)?\)")
_UNIT = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9}


def announcement(lib: Path, *, fetch: bool, cds: bool) -> str:
    """What the jars step is about to do and what it costs, printed before it starts."""
    version = re.search(r"<kafka\.version>([^<]+)<", POM.read_text())
    lines = []
    if fetch:
        lines += [
            f"Fetching the Apache Kafka {version[1] if version else ''} broker jars for the Kafka"
            " tests and `make kafka` (first run, or kafka/pom.xml changed):",
            "  Maven downloads about 65 MB (some 350 files) from Maven Central into"
            " ~/.m2/repository, kept for later runs,",
            f"  then copies the 46 jars the broker needs (43 MB) into {lib}",
        ]
    if cds:
        lines.append(
            f"{'  then' if fetch else 'Kafka jars:'} one broker start records a class-data-sharing"
            f" archive (about 70 MB, under a minute) in {lib}: it halves every later broker start"
        )
    return "\n".join(lines)


@dataclass
class DownloadCount:
    """Files and bytes Maven reports as downloaded, from its batch-mode ``Downloaded`` lines."""

    files: int = 0
    jars: int = 0
    size: float = 0.0
    last: str = ""

    def feed(self, line: str) -> bool:
        """Count ``line`` if it reports a finished download; True if it did."""
        found = _DOWNLOADED.search(line)
        if found is None:
            return False
        url, amount, unit = found.groups()
        self.files += 1
        self.jars += url.endswith(".jar")
        self.size += float(amount) * _UNIT[unit]
        self.last = url.rsplit("/", 1)[-1]
        return True

    def __str__(self) -> str:
        return f"{self.files} files ({self.jars} jars), {self.size / 1e6:.1f} MB"


def download(out: TextIO, mvn_args: Sequence[str] = (), every_s: float = 2.0) -> DownloadCount:
    """Let Maven resolve kafka/pom.xml into its local repository, printing a count as it goes.

    Maven's own transfer lines are one per file (some 700 on a first run): too many for a log,
    so they are counted instead, one line to ``out`` every ``every_s`` seconds at most. The copy
    into the lib dir that follows (:func:`ensure_jars`) then finds every file in ~/.m2.
    Raises KafkaStartError with the end of Maven's output when it fails.
    """
    if shutil.which("mvn") is None:
        raise KafkaStartError(
            "mvn not found: Maven 3.8+ (and Java 17+) fetch the Kafka jars;"
            " on Debian or Ubuntu: sudo apt-get install maven"
        )
    cmd = ["mvn", "-B", "-Dstyle.color=never", *mvn_args, "-f", str(POM), "dependency:resolve"]
    count, tail = DownloadCount(), deque[str](maxlen=40)
    shown = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as mvn:
        assert mvn.stdout is not None
        for line in mvn.stdout:
            tail.append(line.rstrip())
            if count.feed(line) and time.monotonic() - shown >= every_s:
                print(f"  downloaded {count} so far (last: {count.last})", file=out, flush=True)
                shown = time.monotonic()
    if mvn.returncode != 0:
        raise KafkaStartError(f"mvn failed ({mvn.returncode}):\n" + "\n".join(tail))
    done = f"downloaded {count}" if count.files else "every file was already in ~/.m2"
    print(f"  Maven done: {done}", file=out, flush=True)
    return count


def jars(out: TextIO = sys.stdout) -> int:
    """The ``jars`` command: announce, download with a count, copy, record the CDS archive."""
    t0 = time.monotonic()
    lib = default_lib_dir()
    fetch = not _stamp_ok(lib, hashlib.sha256(POM.read_bytes()).hexdigest())
    cds = fetch or not _cds_tried(lib)
    if fetch or cds:
        print(announcement(lib, fetch=fetch, cds=cds), file=out, flush=True)
    try:
        if fetch:
            download(out)
        ensure_jars(lib)
    except KafkaStartError as exc:
        print(f"kafka jars: {exc}", file=sys.stderr)
        return 1
    n = len(list(lib.glob("*.jar")))
    print(f"Kafka jars in {lib} ({n} jars; {time.monotonic() - t0:.1f} s)", file=out)
    return 0


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else ""
    if cmd == "jars":
        return jars()
    if cmd == "stop":
        pids = [pid for kind in FIXED for pid in stop_dir(STATE_DIR / kind)]
        print(f"stopped {len(pids)} Kafka node(s)" if pids else "no Kafka node was running")
        return 0
    if cmd in FIXED:
        return start_fixed(cmd)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
