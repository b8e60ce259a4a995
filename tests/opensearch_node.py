"""Real OpenSearch nodes started from the project's own files.

Used by the pytest fixtures (tests/opensearch_fixtures.py), by benchmarks and by ``make
opensearch`` / ``make opensearch-cluster`` / ``make opensearch-stop`` (opensearch/node.py). The
node is the genuine OpenSearch 2.19.6 server from Maven Central jars, started by a small launcher
(opensearch/src/.../NodeMain.java) that loads the distribution's modules as classpath plugins:
no tarball, no container, no mock. Both are built once by Maven (opensearch/pom.xml) into a
cache directory outside the checkout.

The machinery lives here rather than in opensearch/node.py because a top-level ``opensearch``
package already exists in the venv (opensearch-py's protobuf messages): the repository's folder
must never shadow it, so it is not importable, and the script imports this module instead.

Contract: :func:`launch` returns only once every node answers HTTP and the cluster reports the
wanted health (yellow or better for one node, green with every node joined for several), or raises
:class:`OpenSearchStartError` with the tail of the failing node's log. Nodes started by this
process (``detach=False``) are killed when it exits. No security plugin is loaded: plain HTTP, no
authentication, bound to 127.0.0.1 only.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tests.kafka_broker import free_ports, port_open

REPO = Path(__file__).resolve().parents[1]
OS_DIR = REPO / "opensearch"
POM = OS_DIR / "pom.xml"
LOG4J2 = OS_DIR / "log4j2.properties"
MAIN_CLASS = "logfactory.opensearch.NodeMain"
LAUNCHER_JAR = "opensearch-node.jar"
# Heap 512 MB, fixed (Xms = Xmx, as OpenSearch's own jvm.options does, so the heap never resizes).
# The log4j flags are those of the distribution's jvm.options.
JVM_OPTS = ("-Xms512m", "-Xmx512m", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true", "-Dfile.encoding=UTF-8",
            "-Dlog4j.shutdownHookEnabled=false", "-Dlog4j2.disable.jmx=true",
            "-Dlog4j2.formatMsgNoLookups=true")  # fmt: skip
# The test fixtures' nodes compile with C1 only: on two shared cores C2's compiler threads compete
# with the nodes themselves while they start (measured: a 3-node start 14-22 s with C1, 18-70 s
# without, under the same load), and a test node never runs long enough for C2's faster code
# to pay back. `make opensearch*` and the benchmarks keep full JIT (bulk ingest speed).
TEST_JVM_OPTS = (*JVM_OPTS, "-XX:TieredStopAtLevel=1")
READY_TIMEOUT = 180.0
CLUSTER_NAME = "logfactory"
_STAMP = ".build-sha256"
_live: list[subprocess.Popen[bytes]] = []


class OpenSearchStartError(RuntimeError):
    """Java or Maven missing, a build that failed, or a node not ready within the deadline."""


# -- jars: built once per version of opensearch/pom.xml and the launcher's source ------------------


def default_lib_dir() -> Path:
    """Jar directory kept between runs (outside var/ so `make clean` does not force a rebuild)."""
    env = os.environ.get("LOGFACTORY_OPENSEARCH_LIB")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "logfactory" / "opensearch-lib"


def build_hash() -> str:
    """Hash of what the jars are built from: the pom and the launcher's Java source."""
    digest = hashlib.sha256()
    for path in [POM, *sorted((OS_DIR / "src").rglob("*.java"))]:
        digest.update(path.relative_to(OS_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def jars_ok(lib: Path) -> bool:
    """Whether ``lib`` holds a complete build of the current pom and launcher."""
    try:
        return (lib / _STAMP).read_text() == build_hash() and (lib / LAUNCHER_JAR).is_file()
    except OSError:
        return False


def ensure_jars(lib_dir: Path | None = None, out: TextIO | None = None) -> Path:
    """Make ``lib_dir`` hold the launcher and the node's classpath; cheap when up to date.

    Otherwise runs Maven once, under a file lock so parallel sessions do not race, into a temp dir
    renamed into place when complete. With ``out``, Maven's downloads are counted there as they go.
    """
    lib = lib_dir or default_lib_dir()
    if jars_ok(lib):
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with open(lib.parent / f".{lib.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not jars_ok(lib):
            build(lib, out)
    return lib


def check_tools() -> None:
    """Java 17+ and Maven on the PATH, or an error that says what to install."""
    if shutil.which("java") is None:
        raise OpenSearchStartError(
            "java not found: OpenSearch 2.19 needs Java 17 or newer;"
            " on Debian or Ubuntu: sudo apt-get install openjdk-17-jre-headless"
        )
    version = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    found = re.search(r'version "(\d+)', version.stderr)
    if found is None or int(found[1]) < 17:
        raise OpenSearchStartError(
            f"OpenSearch 2.19 needs Java 17 or newer; `java -version` says:\n{version.stderr}"
        )
    if shutil.which("mvn") is None:
        raise OpenSearchStartError(
            "mvn not found: Maven 3.8+ builds the OpenSearch launcher and fetches its jars;"
            " on Debian or Ubuntu: sudo apt-get install maven"
        )


# "Downloaded from central: URL (9.8 MB at 12 MB/s)"; the speed is left out when it took no time
_DOWNLOADED = re.compile(r"Downloaded from [^:]+: (\S+) \(([\d.]+) (B|kB|MB|GB)(?: at [^)]*)?\)")
_UNIT = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9}


@dataclass
class DownloadCount:
    """Files and bytes Maven reports as downloaded, from its batch-mode ``Downloaded`` lines."""

    files: int = 0
    size: float = 0.0
    last: str = ""

    def feed(self, line: str) -> bool:
        """Count ``line`` if it reports a finished download; True if it did."""
        found = _DOWNLOADED.search(line)
        if found is None:
            return False
        url, amount, unit = found.groups()
        self.files += 1
        self.size += float(amount) * _UNIT[unit]
        self.last = url.rsplit("/", 1)[-1]
        return True

    def __str__(self) -> str:
        return f"{self.files} files, {self.size / 1e6:.1f} MB"


def build(
    lib: Path, out: TextIO | None, mvn_args: Sequence[str] = (), every_s: float = 2.0
) -> DownloadCount:
    """``mvn package`` into a temp dir, the launcher jar moved beside the classpath jars.

    Maven's own transfer lines are one per file (some 540 on a first run): too many for a log,
    so with ``out`` they are counted instead, one line every ``every_s`` seconds at most, then
    the total. Raises OpenSearchStartError (Java or Maven missing, or the end of Maven's output).
    """
    check_tools()
    tmp = lib.with_name(f"{lib.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mvn", "-B", "-Dstyle.color=never", *mvn_args, "-f", str(POM), "package",
           f"-Dlf.build={tmp}"]  # fmt: skip
    count, tail = DownloadCount(), deque[str](maxlen=40)
    shown = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as mvn:
        assert mvn.stdout is not None
        for line in mvn.stdout:  # Maven prints a line per file: counted, not echoed
            tail.append(line.rstrip())
            if count.feed(line) and out is not None and time.monotonic() - shown >= every_s:
                print(f"  downloaded {count} so far (last: {count.last})", file=out, flush=True)
                shown = time.monotonic()
    built = tmp / "lib"
    if mvn.returncode != 0 or not (tmp / LAUNCHER_JAR).is_file() or not built.is_dir():
        raise OpenSearchStartError(f"mvn failed ({mvn.returncode}):\n" + "\n".join(tail))
    if out is not None:
        done = f"downloaded {count}" if count.files else "every file was already in ~/.m2"
        print(f"  Maven done: {done}", file=out, flush=True)
    (tmp / LAUNCHER_JAR).rename(built / LAUNCHER_JAR)
    (built / _STAMP).write_text(build_hash())
    shutil.rmtree(lib, ignore_errors=True)
    built.rename(lib)
    shutil.rmtree(tmp, ignore_errors=True)
    return count


def classpath(lib: Path) -> str:
    return ":".join(sorted(str(jar) for jar in lib.glob("*.jar")))


# -- nodes ---------------------------------------------------------------------------------------


@dataclass
class Node:
    """One OpenSearch node (cluster-manager eligible and data); ``index`` is 0-based."""

    index: int
    http_port: int
    transport_port: int
    home: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    wanted: bool = False
    """Started and not since stopped on purpose: an exit is then a failure."""

    @property
    def name(self) -> str:
        return f"node{self.index + 1}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> Path:
        return self.home / "node.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "pid"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def get_json(url: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """GET ``url`` and decode its JSON body (error statuses too); None if nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:  # 503 while no cluster manager, 408 on a health timeout
        body = exc.read()
    except (OSError, ValueError):
        return None
    with contextlib.suppress(ValueError):
        decoded = json.loads(body)
        if isinstance(decoded, dict):
            return decoded
    return None


_RANK = {"red": 0, "yellow": 1, "green": 2}


class OpenSearchCluster:
    """Processes, settings and data of ``len(ports)`` nodes under ``root`` (one JVM each).

    ``ports`` holds one (http, transport) pair per node. With one node the cluster is a
    ``discovery.type=single-node`` one; with several, every node is cluster-manager eligible and
    they bootstrap together. With ``detach=True`` the JVMs run in their own session and outlive
    this process (``make opensearch``; opensearch/node.py stops them). Data under a node's home
    is kept between starts.
    """

    def __init__(
        self,
        root: Path,
        ports: Sequence[tuple[int, int]],
        lib_dir: Path | None = None,
        detach: bool = False,
        jvm_opts: Sequence[str] = JVM_OPTS,
    ) -> None:
        self.root = root
        self.lib_dir = lib_dir or default_lib_dir()
        self.detach = detach
        self.jvm_opts = tuple(jvm_opts)
        self.nodes = [Node(i, hp, tp, root / f"node{i + 1}") for i, (hp, tp) in enumerate(ports)]

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def settings(self, node: Node) -> list[str]:
        """The node's ``-E`` settings.

        Disk watermarks are off: on a developer's nearly full disk they would leave replicas
        unassigned (85 %) or make every index read-only (95 %), which is not what a test or trial
        node is for; the store's own retention bounds the space it uses.
        """
        args = [
            f"path.home={node.home}",
            f"cluster.name={CLUSTER_NAME}",
            f"node.name={node.name}",
            "network.host=127.0.0.1",
            f"http.port={node.http_port}",
            f"transport.port={node.transport_port}",
            "cluster.routing.allocation.disk.threshold_enabled=false",
        ]
        if self.size == 1:
            args.append("discovery.type=single-node")
        else:
            seeds = ",".join(f"127.0.0.1:{n.transport_port}" for n in self.nodes)
            managers = ",".join(n.name for n in self.nodes)
            args += [f"discovery.seed_hosts={seeds}",
                     f"cluster.initial_cluster_manager_nodes={managers}"]  # fmt: skip
        return [f"-E{a}" for a in args]

    def command(self, node: Node) -> list[str]:
        return ["java", *self.jvm_opts, f"-Djava.io.tmpdir={node.home / 'tmp'}",
                "-cp", classpath(self.lib_dir), MAIN_CLASS, *self.settings(node)]  # fmt: skip

    def start(self, i: int, wait: bool = True, timeout: float = READY_TIMEOUT) -> None:
        """Start node ``i`` on its existing data.

        With ``wait``, return once it answers HTTP, has joined the others that run, and every
        primary shard is assigned (health yellow or better): its indices take writes again.
        """
        node = self.nodes[i]
        if self.is_running(i):
            raise OpenSearchStartError(f"{node.name} is already running")
        (node.home / "tmp").mkdir(parents=True, exist_ok=True)
        (node.home / "config").mkdir(exist_ok=True)
        shutil.copyfile(LOG4J2, node.home / "config" / "log4j2.properties")
        with open(node.log, "ab") as log:
            node.proc = subprocess.Popen(
                self.command(node),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=self.detach,
            )  # fmt: skip
        node.wanted = True
        node.pid_file.write_text(str(node.proc.pid))
        if not self.detach:
            _live.append(node.proc)
        if wait:
            deadline = time.monotonic() + timeout
            self.wait_node(i, deadline)
            self.wait_status("yellow", sum(n.wanted for n in self.nodes), deadline)

    def is_running(self, i: int) -> bool:
        proc = self.nodes[i].proc
        return proc is not None and proc.poll() is None

    def stop(self, i: int, timeout: float = 30.0) -> None:
        """Clean shutdown (SIGTERM); SIGKILL if it has not exited after ``timeout``."""
        self._signal([i], signal.SIGTERM, timeout)

    def kill(self, i: int) -> None:
        """Crash node ``i`` (SIGKILL): the others must notice by fault detection."""
        self._signal([i], signal.SIGKILL, 10.0)

    def start_all(self, wait: bool = True, timeout: float = READY_TIMEOUT) -> None:
        for i in range(self.size):
            self.start(i, wait=False)
        if wait:
            self.wait_ready(timeout)

    def stop_all(self, timeout: float = 30.0) -> None:
        """SIGTERM every node at once (then SIGKILL after ``timeout``)."""
        self._signal(range(self.size), signal.SIGTERM, timeout)

    def _signal(self, indexes: Sequence[int] | range, sig: int, timeout: float) -> None:
        for i in indexes:
            self.nodes[i].wanted = False
        procs = [p for i in indexes if (p := self.nodes[i].proc) is not None and p.poll() is None]
        for proc in procs:
            proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for i in indexes:
            with contextlib.suppress(FileNotFoundError):
                self.nodes[i].pid_file.unlink()

    def _check_alive(self, node: Node) -> None:
        proc = node.proc
        if node.wanted and proc is not None and proc.poll() is not None:
            raise OpenSearchStartError(
                f"OpenSearch {node.name} exited with {proc.returncode}:\n{node.log_tail()}"
            )

    def wait_node(self, i: int, deadline: float) -> None:
        """Until node ``i`` answers ``GET /`` with its own name."""
        node = self.nodes[i]
        while True:
            self._check_alive(node)
            if port_open(node.http_port):
                info = get_json(node.url)
                if info is not None and info.get("name") == node.name:
                    return
            if time.monotonic() > deadline:
                raise OpenSearchStartError(
                    f"OpenSearch {node.name} not answering in time:\n{node.log_tail()}"
                )
            time.sleep(0.2)

    def health(self, i: int | None = None, query: str = "") -> dict[str, Any] | None:
        """``GET /_cluster/health`` from node ``i`` (default: the first running node)."""
        nodes = [self.nodes[i]] if i is not None else self.nodes
        for node in nodes:
            if node.proc is None or node.proc.poll() is None:  # None: started by another process
                found = get_json(f"{node.url}/_cluster/health{query}", timeout=10.0)
                if found is not None and "status" in found:
                    return found
        return None

    def wait_status(self, status: str, nodes: int, deadline: float) -> dict[str, Any]:
        """Until the cluster is at least ``status`` with exactly ``nodes`` nodes joined."""
        query = f"?wait_for_status={status}&wait_for_nodes={nodes}&timeout=2s"
        last: dict[str, Any] | None = None
        while True:
            for node in self.nodes:
                self._check_alive(node)
            found = self.health(query=query)
            if found is not None:
                last = found
                ok = _RANK.get(str(found["status"]), -1) >= _RANK[status]
                if ok and found.get("number_of_nodes") == nodes:
                    return found
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n.name}:\n{n.log_tail(15)}" for n in self.nodes)
                raise OpenSearchStartError(
                    f"cluster not {status} with {nodes} node(s) in time (last health: {last})\n"
                    + tails
                )
            time.sleep(0.2)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Every node answers, then health: yellow or better for one node, green for several."""
        deadline = time.monotonic() + timeout
        for i in range(self.size):
            self.wait_node(i, deadline)
        return self.wait_status("yellow" if self.size == 1 else "green", self.size, deadline)


def launch(
    root: Path,
    size: int = 1,
    ports: Sequence[tuple[int, int]] | None = None,
    lib_dir: Path | None = None,
    detach: bool = False,
    timeout: float = READY_TIMEOUT,
    jvm_opts: Sequence[str] = JVM_OPTS,
) -> OpenSearchCluster:
    """Build the jars if needed, start and ready-check ``size`` nodes under ``root``.

    Without ``ports`` free ones are picked, and a start that fails (e.g. a port taken meanwhile)
    is retried once on new ports.
    """
    lib = ensure_jars(lib_dir)
    attempts = 1 if ports is not None else 2
    for attempt in range(attempts):
        chosen = ports
        if chosen is None:
            flat = free_ports(2 * size)
            chosen = list(zip(flat[::2], flat[1::2], strict=True))
        cluster = OpenSearchCluster(root, chosen, lib, detach=detach, jvm_opts=jvm_opts)
        try:
            cluster.start_all(wait=True, timeout=timeout)
        except OpenSearchStartError as exc:
            cluster.stop_all(timeout=5.0)
            if attempt + 1 == attempts:
                raise
            print(f"OpenSearch start on {cluster.urls} failed, again on new ports: {exc}")
            shutil.rmtree(root, ignore_errors=True)
            continue
        return cluster
    raise AssertionError("unreachable")


@atexit.register
def _kill_leftovers() -> None:
    for proc in _live:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
