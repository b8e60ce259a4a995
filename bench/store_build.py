"""The kept 10M store: built once through the real ``EmbeddedWriter``, reused by later runs.

Building it takes minutes (the factory makes ~45,000 demo lines/s into records and events, the
writer indexes them), so the store is kept in ``~/.cache/logfactory/bench-store/`` (shared by the
checkouts of one machine, like the Kafka and OpenSearch jars) under a name that carries the
generator's :data:`~bench.store_data.VERSION`, the line count and a hash of the engine's
on-disk layout (:data:`LAYOUT_FILES`): a change of any builds a new one (delete old ones by
hand: ~2 GB each). ``manifest.json`` is written last, so a build cut short is simply
built again.

Two child processes make the batches (taking turns) and hand them over queues, so the two
cores share the work as they would in a node (the factory in one process, the store in
another). The
build's rate is reported twice: documents per second of wall time (generator and writer
together) and per second of the writer's own calls (``add`` and ``commit``), which is the
store's ingest cost without the bus.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing as mp
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.store_data import (
    BATCH_LINES,
    START_NS,
    VERSION,
    Batch,
    BatchMaker,
    end_ns,
    to_docs,
)
from logfactory.store.engines.embedded import EmbeddedWriter
from logfactory.topics import PARSED

__all__ = ["ROOT_DIR", "disk_bytes", "ensure_store", "store_dir"]

ROOT_DIR = Path.home() / ".cache" / "logfactory" / "bench-store"
ENGINE = Path(__file__).resolve().parent.parent / "src/logfactory/store/engines/embedded"
LAYOUT_FILES = ("schema.py", "partitions.py", "blob.py")  # what decides the files on disk
TEN_YEARS_S = 3650 * 86_400.0  # the kept data is from a fixed past week: retention must not drop it
MAKERS = 2  # batch-making processes: the factory's work is most of the build's
ADD_CHUNK = 5000  # documents per add(), the store role's default batch_size
QUERY_HOST = "cn042"  # one of the HOSTS compute nodes
_JOB = re.compile(r"_slurm_rpc_submit_batch_job: JobId=(\d+) ")


def layout_key() -> str:
    """A short hash of the engine's on-disk layout (its schema and partitioning code): a store
    built by another layout is not reused."""
    digest = hashlib.sha256()
    for name in LAYOUT_FILES:
        digest.update((ENGINE / name).read_bytes())
    return digest.hexdigest()[:10]


def store_dir(root: Path, lines: int) -> Path:
    return root / f"v{VERSION}-{lines}-{layout_key()}"


def disk_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (what ``du -b`` counts, without directories)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _produce(lines: int, first: int, step: int, queue: Any) -> None:
    """Batches ``first``, ``first + step``, ... into ``queue``."""
    maker = BatchMaker(lines)
    try:
        for k in range(first, maker.batches, step):
            queue.put(maker.make(k))
    finally:
        maker.close()
        queue.put(None)


def _batches_in_order(lines: int) -> Iterator[Batch]:
    """Every batch in index order, made by :data:`MAKERS` child processes taking turns."""
    ctx = mp.get_context("fork")
    queues: list[Any] = [ctx.Queue(maxsize=2) for _ in range(MAKERS)]
    children = [
        ctx.Process(target=_produce, args=(lines, i, MAKERS, q), daemon=True)
        for i, q in enumerate(queues)
    ]
    for child in children:
        child.start()
    try:
        turn = 0
        while (batch := queues[turn % MAKERS].get()) is not None:
            yield batch
            turn += 1
    finally:
        for child in children:
            child.kill()
            child.join(10)


def _picks(batch: Batch) -> dict[str, Any]:
    """What the latency queries look for, taken from the middle batch: a job id (a rare word:
    a job's few lines and events) and the first log's id (the anchor of the context query)."""
    first_log = next(value for topic, _key, value in batch.messages if topic == PARSED)
    job = next(m.group(1) for _t, _k, v in batch.messages if (m := _JOB.search(v.decode())))
    anchor = json.loads(first_log)["position"]
    return {"rare_word": job, "context_id": anchor, "host": QUERY_HOST}


def build(path: Path, lines: int) -> dict[str, Any]:
    """Build the store in ``path/embedded``; returns the manifest (also written)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    counts = {"lines": 0, "raw_bytes": 0, "logs": 0, "events": 0}
    offsets: dict[str, int] = {}
    picks: dict[str, Any] = {}
    writer_s = 0.0
    load_before = os.getloadavg()
    start = time.perf_counter()
    batches = _batches_in_order(lines)
    first = next(batches)  # the makers are forked before the writer's threads start
    writer = EmbeddedWriter(path / "embedded", max_age_s=TEN_YEARS_S, max_size=0)
    middle = (lines // BATCH_LINES) // 2
    for batch in itertools.chain([first], batches):
        docs = to_docs(batch.messages, offsets)
        counts["lines"] += batch.lines
        counts["raw_bytes"] += batch.raw_bytes
        logs = sum(1 for _pos, doc in docs if doc.kind == "log")
        counts["logs"] += logs
        counts["events"] += len(docs) - logs
        if batch.index == middle:
            picks = _picks(batch)
        t0 = time.perf_counter()
        for i in range(0, len(docs), ADD_CHUNK):
            writer.add(docs[i : i + ADD_CHUNK])
        writer.commit()
        writer_s += time.perf_counter() - t0
        if batch.index % 20 == 0:
            print(f"store bench: batch {batch.index} stored, {counts}", flush=True)
    t0 = time.perf_counter()
    writer.close()
    writer_s += time.perf_counter() - t0
    wall = time.perf_counter() - start
    docs_total = counts["logs"] + counts["events"]
    manifest = {
        "version": VERSION,
        "window": {"start_ns": START_NS, "end_ns": end_ns(lines)},
        **counts,
        "docs": docs_total,
        "picks": picks,
        "build": {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(wall, 1),
            "docs_per_s_wall": round(docs_total / wall),
            "writer_seconds": round(writer_s, 1),
            "docs_per_s_writer": round(docs_total / writer_s),
            "add_chunk": ADD_CHUNK,
            "commit_every_docs": docs_total * BATCH_LINES // lines,
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def ensure_store(root: Path, lines: int, rebuild: bool = False) -> tuple[Path, dict[str, Any]]:
    """The kept store for ``lines`` demo lines (built first when missing or asked to), and its
    manifest. Returns the engine's folder."""
    path = store_dir(root, lines)
    manifest_file = path / "manifest.json"
    if rebuild or not manifest_file.exists():
        print(f"store bench: building {lines:,} demo lines into {path} (minutes)", flush=True)
        manifest = build(path, lines)
        manifest["build"]["reused"] = False
    else:
        manifest = json.loads(manifest_file.read_text())
        manifest["build"]["reused"] = True
    return path / "embedded", manifest
