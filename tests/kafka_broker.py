"""Real Apache Kafka brokers (KRaft) started from the project's own files.

Used by the pytest fixtures (tests/kafka_fixtures.py), by benchmarks and by ``make kafka`` /
``make kafka-cluster`` / ``make kafka-stop`` (kafka/broker.py). The broker is the
genuine ``kafka.Kafka`` from Maven Central jars (kafka/pom.xml), run with plain ``java -cp``: no
tarball, no container, no mock. Every node is a combined broker+controller, so a 3-node cluster is
also a 3-voter KRaft quorum that survives the loss of any one node.

Contract: :func:`launch` returns only once every node serves metadata and a real acks=all
produce/consume round trip has succeeded, or raises :class:`KafkaStartError` with the tail of the
failing node's log. Nodes started by this process (``detach=False``) are killed when it exits.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
POM = REPO / "kafka" / "pom.xml"
LOG4J2 = REPO / "kafka" / "log4j2.xml"
# TieredStopAtLevel=1 (C1 only): three brokers on two cores spent about one core for minutes in
# C2 compiler threads, starving the brokers themselves (measured: latency p50 1.4 s with C2,
# 0.44 s without, same load). C1 compiles in a fraction of that; a test broker never runs long
# enough for C2's better code to pay back.
JVM_OPTS = ("-Xms256m", "-Xmx512m", "-XX:TieredStopAtLevel=1", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true")  # fmt: skip
READY_TIMEOUT = 120.0
_TOOL_OPTS = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")  # short-lived JVM
_STAMP = ".pom-sha256"
_MAKE_PORTS = {9092, 9093, 19092, 19093, 29092, 29093, 39092, 39093}  # kafka/broker.py's
_live: list[subprocess.Popen[bytes]] = []


class KafkaStartError(RuntimeError):
    """A node could not be prepared, started or found ready within the deadline."""


def default_lib_dir() -> Path:
    """Jar directory kept between runs (outside var/ so `make clean` does not force a re-copy)."""
    env = os.environ.get("LOGFACTORY_KAFKA_LIB")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "logfactory" / "kafka-lib"


def ensure_jars(lib_dir: Path | None = None) -> Path:
    """Make ``lib_dir`` hold the broker classpath for the current kafka/pom.xml.

    Cheap when up to date (one hash of pom.xml); otherwise runs Maven once, under a file lock so
    parallel test sessions do not race, into a temp dir that is renamed into place when complete.
    """
    lib = lib_dir or default_lib_dir()
    want = hashlib.sha256(POM.read_bytes()).hexdigest()
    if _stamp_ok(lib, want) and _cds_tried(lib):
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with open(lib.parent / f".{lib.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _stamp_ok(lib, want):
            _fetch(lib, want)
        if not _cds_tried(lib):
            _build_cds(lib)
    return lib


def _fetch(lib: Path, want: str) -> None:
    if shutil.which("mvn") is None:
        raise KafkaStartError("mvn not found: Maven 3.8+ is needed to fetch the Kafka jars")
    tmp = lib.with_name(f"{lib.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not list(tmp.glob("kafka_2.13-*.jar")):
        raise KafkaStartError(f"mvn failed ({done.returncode}):\n{done.stdout[-3000:]}")
    (tmp / _STAMP).write_text(want)
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)


def cds_archive(lib: Path) -> Path:
    """The archive is only valid for the JVM build that wrote it: key it by that ``java``."""
    java = Path(os.path.realpath(shutil.which("java") or "java"))
    with contextlib.suppress(OSError):
        java_id = f"{java}:{java.stat().st_mtime_ns}"
        return lib / f"kafka-{hashlib.sha256(java_id.encode()).hexdigest()[:12]}.jsa"
    return lib / "kafka-unknown-java.jsa"


def _cds_tried(lib: Path) -> bool:
    archive = cds_archive(lib)
    return archive.exists() or archive.with_suffix(".failed").exists()


def _build_cds(lib: Path) -> None:
    """Class-data-sharing archive of the classes a broker loads: halves JVM start-up on 2 cores.

    Recorded from one real single-node start, stop and round trip; if anything fails the brokers
    simply run without it (a ``.failed`` marker with the reason stops further attempts).
    """
    classlist = lib / "kafka.classlist"
    archive = cds_archive(lib)
    tmp_jsa = archive.with_suffix(f".tmp{os.getpid()}")
    try:
        with tempfile.TemporaryDirectory(prefix="kafka-cds") as tmp:
            flat = free_ports(2)
            cluster = KafkaCluster(Path(tmp), [(flat[0], flat[1])], lib, cds=False)
            cluster.record_classes = classlist
            cluster.format()
            try:
                cluster.start_all(wait=True)
            finally:
                cluster.stop_all()
        cmd = ["java", "-Xshare:dump", f"-XX:SharedClassListFile={classlist}",
               f"-XX:SharedArchiveFile={tmp_jsa}", "-cp", classpath(lib)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KafkaStartError(f"-Xshare:dump failed:\n{done.stdout[-2000:]}")
        tmp_jsa.rename(archive)
    except Exception as exc:  # best effort: any failure only costs start-up speed
        archive.with_suffix(".failed").write_text(str(exc))


def classpath(lib: Path) -> str:
    """Explicit, sorted jar list: the CDS archive is only used with the identical class path."""
    return ":".join(sorted(str(jar) for jar in lib.glob("*.jar")))


def _stamp_ok(lib: Path, want: str) -> bool:
    try:
        return (lib / _STAMP).read_text() == want
    except OSError:
        return False


def free_ports(count: int) -> list[int]:
    """Ports that bind now, chosen below the kernel's ephemeral range.

    Below that range no outgoing client connection can be handed the port while a stopped node
    is down, so ``start(i)`` can always bind its old ports again. The fixed ports of ``make
    kafka``/``make kafka-cluster`` are never chosen, so a developer's brokers cannot clash.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(max(1024, low - 12000), low)
        if port in ports or port in _MAKE_PORTS:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def cluster_id() -> str:
    """Random cluster id in the format `kafka-storage random-uuid` prints."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class Node:
    """One combined broker+controller; ``index`` is 0-based, ``node_id`` is index + 1."""

    index: int
    port: int
    controller_port: int
    home: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def node_id(self) -> int:
        return self.index + 1

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "pid"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def broker_properties(node: Node, voters: str, size: int) -> str:
    """server.properties for ``node`` in a cluster of ``size`` nodes.

    Replication of internal topics follows the cluster size (1 on a single node, which is what
    makes consumer groups and transactions work there); min ISR is 2 on 3 nodes, 1 otherwise.
    The timeouts are shortened so failover and group joins happen in seconds, not tens of them.
    """
    rf = min(size, 3)
    min_isr = 2 if rf >= 3 else 1
    parts = max(rf, 1)
    return f"""\
process.roles=broker,controller
node.id={node.node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={node.home / "data"}
num.partitions=1
default.replication.factor={rf}
min.insync.replicas={min_isr}
auto.create.topics.enable=false
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions={parts}
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions={parts}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=500
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
replica.lag.time.max.ms=10000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
"""


class KafkaCluster:
    """Processes, configs and data of ``len(ports)`` KRaft nodes under ``root``.

    ``ports`` holds one (broker, controller) pair per node. With ``detach=True`` the JVMs run in
    their own session and outlive this process (``make kafka``; kafka/broker.py stops them).
    """

    def __init__(
        self,
        root: Path,
        ports: Sequence[tuple[int, int]],
        lib_dir: Path | None = None,
        detach: bool = False,
        cds: bool = True,
    ) -> None:
        self.root = root
        self.lib_dir = lib_dir or default_lib_dir()
        self.detach = detach
        self.record_classes: Path | None = None
        archive = cds_archive(self.lib_dir)
        self._share = (f"-XX:SharedArchiveFile={archive}",) if cds and archive.exists() else ()
        self.nodes = [Node(i, bp, cp, root / f"node{i + 1}") for i, (bp, cp) in enumerate(ports)]
        self.voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def size(self) -> int:
        return len(self.nodes)

    def _java(self, main: str, *args: str, heap: Sequence[str] = JVM_OPTS) -> list[str]:
        return ["java", *heap, *self._share, f"-Dlog4j2.configurationFile={LOG4J2}",
                "-cp", classpath(self.lib_dir), main, *args]  # fmt: skip

    def format(self) -> None:
        """Fresh storage for every node, all with one new cluster id (formatted in parallel)."""
        cid = cluster_id()
        procs = []
        for node in self.nodes:
            shutil.rmtree(node.home, ignore_errors=True)
            node.home.mkdir(parents=True)
            node.config.write_text(broker_properties(node, self.voters, self.size))
            args = ("format", "-t", cid, "-c", str(node.config))
            cmd = self._java("kafka.tools.StorageTool", *args, heap=_TOOL_OPTS)
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            procs.append((node, proc))
        failed: list[str] = []
        try:
            for node, proc in procs:  # every one is reaped, whichever failed
                out, _ = proc.communicate(timeout=READY_TIMEOUT)
                if proc.returncode != 0:
                    tail = out.decode(errors="replace")[-2000:]
                    failed.append(f"format of node {node.node_id} failed:\n{tail}")
        finally:
            for _node, proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        if failed:
            raise KafkaStartError("\n".join(failed))

    def start(self, i: int, wait: bool = True, timeout: float = READY_TIMEOUT) -> None:
        """Start node ``i`` on its existing storage; with ``wait``, return once it serves again."""
        node = self.nodes[i]
        if self.is_running(i):
            raise KafkaStartError(f"node {node.node_id} is already running")
        cmd = self._java("kafka.Kafka", str(node.config))
        if self.record_classes is not None:
            cmd.insert(1, f"-XX:DumpLoadedClassList={self.record_classes}")
        with open(node.log, "ab") as log:
            node.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=self.detach,
            )  # fmt: skip
        node.pid_file.write_text(str(node.proc.pid))
        if not self.detach:
            _live.append(node.proc)
        if wait:
            self.wait_node(i, time.monotonic() + timeout)

    def is_running(self, i: int) -> bool:
        proc = self.nodes[i].proc
        return proc is not None and proc.poll() is None

    def stop(self, i: int, timeout: float = 30.0) -> None:
        """Controlled shutdown (SIGTERM); SIGKILL if it has not exited after ``timeout``."""
        self._signal([i], signal.SIGTERM, timeout)

    def kill(self, i: int) -> None:
        """Crash node ``i`` (SIGKILL): no controlled shutdown, the quorum must notice by itself."""
        self._signal([i], signal.SIGKILL, 10.0)

    def start_all(self, wait: bool = True, timeout: float = READY_TIMEOUT) -> None:
        for i in range(self.size):
            self.start(i, wait=False)
        if wait:
            self.wait_ready(timeout)

    def stop_all(self, timeout: float = 20.0) -> None:
        """SIGTERM every node at once (then SIGKILL after ``timeout``)."""
        self._signal(range(self.size), signal.SIGTERM, timeout)

    def _signal(self, indexes: Sequence[int] | range, sig: int, timeout: float) -> None:
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

    def wait_node(self, i: int, deadline: float) -> None:
        """Until node ``i`` answers metadata itself and lists itself as an unfenced broker."""
        node = self.nodes[i]
        while True:
            proc = node.proc
            if proc is not None and proc.poll() is not None:
                raise KafkaStartError(
                    f"node {node.node_id} exited with {proc.returncode}:\n{node.log_tail()}"
                )
            if port_open(node.port) and _serves(f"127.0.0.1:{node.port}", node.node_id):
                return
            if time.monotonic() > deadline:
                raise KafkaStartError(f"node {node.node_id} not ready in time:\n{node.log_tail()}")
            time.sleep(0.1)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Every node serves, then a real acks=all write with replication = size is read back."""
        deadline = time.monotonic() + timeout
        for i in range(self.size):
            self.wait_node(i, deadline)
        round_trip(self.bootstrap, min(self.size, 3), deadline)


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port`` now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def quiet(conf: dict[str, Any]) -> dict[str, Any]:
    """librdkafka config that does not print connection errors to stderr while brokers start."""
    return {"log_level": 0, "error_cb": lambda _err: None, **conf}


def _serves(bootstrap: str, node_id: int) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        meta = AdminClient(quiet({"bootstrap.servers": bootstrap})).list_topics(timeout=2)
    except Exception:
        return False
    return node_id in meta.brokers and meta.controller_id >= 0


def round_trip(bootstrap: str, replication: int, deadline: float) -> None:
    """Create a topic, write one record with acks=all, read it back, delete the topic."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic  # the admin module does not re-export it for mypy

    left = max(1.0, deadline - time.monotonic())
    topic = f"__logfactory_ready_{uuid.uuid4().hex[:8]}"
    admin = AdminClient(quiet({"bootstrap.servers": bootstrap}))
    try:
        admin.create_topics([NewTopic(topic, 1, replication)])[topic].result(left)
        producer = Producer(quiet({"bootstrap.servers": bootstrap, "acks": "all",
                                   "message.timeout.ms": int(left * 1000)}))  # fmt: skip
        errors: list[object] = []
        producer.produce(topic, b"ready", on_delivery=lambda err, _msg: errors.append(err))
        producer.flush(left)
        if errors != [None]:
            raise KafkaStartError(f"round-trip write to {bootstrap} failed: {errors}")
        consumer = Consumer(quiet({"bootstrap.servers": bootstrap, "group.id": topic,
                                   "enable.auto.commit": False}))  # fmt: skip
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None and msg.value() == b"ready":
                    return
            raise KafkaStartError(f"round-trip read from {bootstrap} timed out")
        finally:
            consumer.close()
    except KafkaStartError:
        raise
    except Exception as exc:
        raise KafkaStartError(f"round trip on {bootstrap} failed: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics([topic])[topic].result(10)


def launch(
    root: Path,
    size: int = 1,
    ports: Sequence[tuple[int, int]] | None = None,
    lib_dir: Path | None = None,
    detach: bool = False,
    timeout: float = READY_TIMEOUT,
) -> KafkaCluster:
    """Fetch jars if needed, format, start and ready-check ``size`` nodes under ``root``.

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
        cluster = KafkaCluster(root, chosen, lib, detach=detach)
        try:
            cluster.format()
            cluster.start_all(wait=True, timeout=timeout)
        except KafkaStartError as exc:
            cluster.stop_all(timeout=5.0)
            if attempt + 1 == attempts:
                raise
            print(f"Kafka start on {cluster.bootstrap} failed, again on new ports: {exc}")
            continue
        return cluster
    raise AssertionError("unreachable")


@atexit.register
def _kill_leftovers() -> None:
    for proc in _live:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
