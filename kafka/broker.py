#!/usr/bin/env python3
"""Fixed-port Kafka brokers for humans and benchmarks: the body of the ``make kafka*`` targets.

    python kafka/broker.py jars      # fetch the jars (Maven Central -> ~/.m2 -> the lib dir)
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
import os
import signal
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: make `tests.kafka_broker` importable

from tests.kafka_broker import KafkaCluster, ensure_jars, launch  # noqa: E402

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


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else ""
    if cmd == "jars":
        t0 = time.monotonic()
        print(f"Kafka jars in {ensure_jars()} ({time.monotonic() - t0:.1f} s)")
        return 0
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
