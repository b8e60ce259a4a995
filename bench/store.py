"""Store benchmark (issue 16): ingest rate, query latency, disk and memory of the log store.

* **The data** (:mod:`bench.store_data`, :mod:`bench.store_build`): 10,000,000 demo lines over
  7 days (256 compute nodes), parsed by the real event factory into logs and events, stored
  through the real ``EmbeddedWriter``; built once and kept in
  ``~/.cache/logfactory/bench-store/`` (a new generator version or engine layout builds it
  again; ``--rebuild`` forces it). The build's rate is reported.
* **Ingest** (:mod:`bench.store_ingest`): a real ``logfactory store`` process reads the first
  500,000 demo lines' records (parsed logs and their events) from a local bus's
  ``logs.parsed`` and ``events.*``; records per second until all are committed. Embedded:
  target >= 50,000/s. OpenSearch, one node started from the project's files and warmed up
  first: target >= 20,000/s (measured when the engine and a node are available; otherwise
  the result says why not).
* **Queries** (:mod:`bench.store_queries`): p50/p95 of 20 warm runs on the kept store: a rare
  word, a common word, a phrase, ``host:X AND severity:error``, the context of one record, a
  24-hour histogram, the top 10 hosts over 7 days. Targets: p95 <= 200 ms; histogram and
  top-N <= 100 ms.
* **Disk**: the kept store's bytes per stored document and per demo line, and against the
  raw bytes (each demo line's UTF-8 bytes as the demo source emits it, no line end); target
  <= 2x. **Memory**: the store process's resident set during the ingest run.

``--lines`` and ``--ingest-lines`` shrink a run for a quick look (a smaller kept store of its
own); ``make bench`` passes none. The load average is recorded with every figure: the machine
has 2 cores that other work may share.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.common import write_result
from bench.store_build import ROOT_DIR, disk_bytes, ensure_store
from bench.store_data import LINES
from bench.store_ingest import INGEST_LINES, StoreBus, ingest_run
from bench.store_opensearch import opensearch_ingest
from bench.store_queries import latencies

TARGETS = {
    "embedded_ingest_per_s": 50_000,
    "opensearch_ingest_per_s": 20_000,
    "search_p95_ms": 200,
    "aggregation_p95_ms": 100,
    "disk_vs_raw": 2.0,
}

EMBEDDED = """store:
  engine: embedded
  group: store-embedded
  path: {path}
  retention: {{max_age: 3650d}}
"""


def disk(store: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    total = disk_bytes(store)
    ratio = total / manifest["raw_bytes"]
    return {
        "store_bytes": total,
        "docs": manifest["docs"],
        "logs": manifest["logs"],
        "events": manifest["events"],
        "raw_bytes": manifest["raw_bytes"],
        "raw_is": "each demo line's UTF-8 bytes as the demo source emits it, no line end",
        "bytes_per_doc": round(total / manifest["docs"], 1),
        "bytes_per_log": round(total / manifest["logs"], 1),
        "raw_bytes_per_line": round(manifest["raw_bytes"] / manifest["lines"], 1),
        "ratio_to_raw": round(ratio, 3),
        "meets_target": ratio <= TARGETS["disk_vs_raw"],
        "note": "the store's bytes include the events made from the lines",
    }


def ingest(lines: int, skip_opensearch: bool) -> dict[str, Any]:
    bus = StoreBus(lines)
    try:
        out: dict[str, Any] = {
            "lines": bus.lines,
            "logs": bus.logs,
            "records": bus.records,
        }
        path = bus.root / "embedded-store"
        embedded = ingest_run(bus, "embedded", EMBEDDED.format(path=path))
        embedded["meets_target"] = embedded["rate_steady_per_s"] >= TARGETS["embedded_ingest_per_s"]
        out["embedded"] = embedded
        print(f"store bench: embedded ingest {embedded}", flush=True)
        if skip_opensearch:
            out["opensearch"] = {"measured": False, "why": "--skip opensearch"}
        else:
            out["opensearch"] = opensearch_ingest(bus, TARGETS["opensearch_ingest_per_s"])
        print(f"store bench: opensearch ingest {out['opensearch']}", flush=True)
    finally:
        bus.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=LINES, help="demo lines of the kept store")
    parser.add_argument("--ingest-lines", type=int, default=INGEST_LINES)
    parser.add_argument("--data", type=Path, default=ROOT_DIR, help="where stores are kept")
    parser.add_argument("--rebuild", action="store_true", help="build the kept store again")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["ingest", "opensearch", "queries"]
    )
    args = parser.parse_args(argv)
    store, manifest = ensure_store(args.data, args.lines, args.rebuild)
    result: dict[str, Any] = {
        "data": {k: v for k, v in manifest.items() if k != "build"},
        "build": manifest["build"],
        "disk": disk(store, manifest),
    }
    if "queries" not in args.skip:
        result["queries"] = latencies(store, manifest)
    if "ingest" not in args.skip:
        result["ingest"] = ingest(args.ingest_lines, "opensearch" in args.skip)
    result["targets"] = TARGETS
    write_result("store", result)


if __name__ == "__main__":
    main()
