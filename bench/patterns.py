"""Pattern-miner benchmark: accuracy on Loghub-2k (corrected), throughput against Drain3, memory.

Accuracy: per dataset, our miner through :func:`parse_messages` (the code path of
``logfactory patterns parse``) and Drain3 (``TemplateMiner`` with its default configuration plus
the masking instructions of the example ``drain3.ini`` its README points to), scored with
:mod:`bench.loghub` (GA, PA, FGA). Throughput: messages/s of one online pass over the dataset's
``Content`` column, best of ``--repeat`` runs, for our ``AccurateMiner.add`` and Drain3's
``add_log_message``. Memory: a child process mines a synthetic stream of 1,000,000 messages drawn
from ~10,000 generated templates and reports its peak RSS.

Run: ``.venv/bin/python -m bench.patterns`` (``LOGHUB_DIR`` overrides ``../shared/loghub``).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import write_result
from bench.loghub import DATASETS, Dataset, load, loghub_dir, score
from logfactory.factory.patterns.miner_accurate import AccurateMiner, clear_caches
from logfactory.factory.patterns.parse_file import parse_messages

TARGETS = {
    "mean_ga": 0.98,
    "mean_pa": 0.85,
    "throughput_ratio_vs_drain3": 5.0,
    "memory_1m_messages_10k_templates_mb": 300,
}

# The masks of drain3's example configuration (README / examples/drain3.ini), without the one
# that is specific to its demo ("executed cmd").
DRAIN3_MASKS = [
    (r"((?<=[^A-Za-z0-9])|^)(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))((?=[^A-Za-z0-9])|$)", "ID"),
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{6,} ?){3,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9A-F]{4} ?){4,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
    (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
]
_DRAIN3_VAR = re.compile(r"<(?:ID|IP|SEQ|HEX|NUM|\*)>")


def _drain3_miner() -> Any:
    # drain3 ships no type information
    from drain3 import TemplateMiner  # type: ignore[import-untyped]
    from drain3.masking import MaskingInstruction  # type: ignore[import-untyped]
    from drain3.template_miner_config import TemplateMinerConfig  # type: ignore[import-untyped]

    config = TemplateMinerConfig()
    config.masking_instructions = [MaskingInstruction(p, name) for p, name in DRAIN3_MASKS]
    return TemplateMiner(config=config)


def drain3_parse(messages: list[str]) -> tuple[list[str], list[str]]:
    miner = _drain3_miner()
    ids = [str(miner.add_log_message(m)["cluster_id"]) for m in messages]
    clusters = miner.drain.id_to_cluster
    templates = {cid: _DRAIN3_VAR.sub("<*>", clusters[int(cid)].get_template()) for cid in ids}
    return ids, [templates[c] for c in ids]


def _rate(run: Callable[[], object], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def ours_throughput(messages: list[str], repeat: int) -> float:
    def run() -> None:
        clear_caches()  # a cold start every time: the shape plans are process-wide
        add = AccurateMiner().add
        for m in messages:
            add("default", m)

    return _rate(run, len(messages), repeat)


def drain3_throughput(messages: list[str], repeat: int) -> float:
    def run() -> None:
        add = _drain3_miner().add_log_message
        for m in messages:
            add(m)

    return _rate(run, len(messages), repeat)


def evaluate(data: Dataset, repeat: int) -> dict[str, Any]:
    parsed = parse_messages(data.contents)
    ours = score(data, [p for p, _ in parsed], [t for _, t in parsed])
    ids, templates = drain3_parse(data.contents)
    theirs = score(data, ids, templates)
    ours_rate = ours_throughput(data.contents, repeat)
    theirs_rate = drain3_throughput(data.contents, max(1, repeat // 2))
    return {
        "ours": {**ours.as_dict(), "messages_per_s": round(ours_rate)},
        "drain3": {**theirs.as_dict(), "messages_per_s": round(theirs_rate)},
        "throughput_ratio": round(ours_rate / theirs_rate, 2),
    }


# -- memory: a synthetic stream from a generator (never copied data) --------------------------
_WORDS = [
    "connection", "request", "worker", "session", "cache", "queue", "disk", "node", "user",
    "service", "timeout", "retry", "failed", "started", "stopped", "accepted", "closed", "block",
    "error", "warning", "update", "commit", "replica", "shard", "lease", "token", "socket",
]  # fmt: skip


def synthetic(count: int, templates: int, seed: int = 11) -> Iterator[str]:
    """``count`` messages from ``templates`` generated templates: distinct word skeletons with
    numeric, hex, address and name slots; template popularity is skewed like real logs."""
    rng = random.Random(seed)
    skeletons = []
    for t in range(templates):
        n = rng.randint(3, 12)
        words = [rng.choice(_WORDS) for _ in range(n)]
        words[0] = (
            f"{words[0]}{chr(97 + t % 26)}{chr(97 + (t // 26) % 26)}{chr(97 + t // 676 % 26)}"
        )
        slots = rng.sample(range(1, n + 1), k=min(n, rng.randint(1, 3)))
        skeletons.append((words, slots))
    weights = [1.0 / (i + 1) ** 0.8 for i in range(templates)]
    picks = rng.choices(range(templates), weights=weights, k=count)
    for i, pick in enumerate(picks):
        words, slots = skeletons[pick]
        out = list(words)
        for s in sorted(slots, reverse=True):
            kind = (pick + s) % 4  # a slot keeps its kind of value
            value = (
                str(rng.randint(0, 10**6))
                if kind == 0
                else f"0x{rng.getrandbits(32):08x}"
                if kind == 1
                else f"10.{i % 256}.{s}.{rng.randint(1, 254)}:{rng.randint(1024, 65535)}"
                if kind == 2
                else f"id={rng.randint(0, 10**9)}"
            )
            out.insert(s, value)
        yield " ".join(out)


def _memory_child(count: int, templates: int) -> None:
    import resource

    miner = AccurateMiner()
    start = time.perf_counter()
    for message in synthetic(count, templates):
        miner.add("default", message)
    elapsed = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mb": round(peak_kb / 1024, 1), "clusters": miner.clusters(),
                      "seconds": round(elapsed, 1)}))  # fmt: skip


def memory(count: int, templates: int) -> dict[str, Any]:
    code = f"from bench.patterns import _memory_child; _memory_child({count}, {templates})"
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return {"messages": count, "generated_templates": templates, **result}


def _mean(rows: dict[str, dict[str, Any]], who: str, key: str) -> float:
    return round(sum(float(r[who][key]) for r in rows.values()) / len(rows), 4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--templates", type=int, default=10_000)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args(argv)
    directory = loghub_dir()
    if not directory.is_dir():
        print(f"bench.patterns: no Loghub data at {directory} (set LOGHUB_DIR); skipped")
        return
    rows: dict[str, dict[str, Any]] = {}
    for name in DATASETS:
        if not (directory / name).is_dir():
            print(f"bench.patterns: {name} missing under {directory}; skipped")
            continue
        rows[name] = evaluate(load(directory, name), args.repeat)
        print(name, json.dumps(rows[name]), file=sys.stderr)
    if not rows:
        print(f"bench.patterns: no dataset under {directory}; skipped")
        return
    mean = {
        who: {k: _mean(rows, who, k) for k in ("ga", "pa", "fga", "messages_per_s")}
        for who in ("ours", "drain3")
    }
    ratio = round(mean["ours"]["messages_per_s"] / mean["drain3"]["messages_per_s"], 2)
    data: dict[str, Any] = {
        "targets": TARGETS,
        "datasets": rows,
        "mean": {**mean, "throughput_ratio": ratio},
    }
    if not args.skip_memory:
        data["memory"] = memory(args.messages, args.templates)
    data["met"] = {
        "mean_ga": mean["ours"]["ga"] >= TARGETS["mean_ga"],
        "mean_pa": mean["ours"]["pa"] >= TARGETS["mean_pa"],
        "throughput_ratio": ratio >= TARGETS["throughput_ratio_vs_drain3"],
        "memory": None
        if args.skip_memory
        else data["memory"]["peak_rss_mb"] < TARGETS["memory_1m_messages_10k_templates_mb"],
    }
    write_result("patterns", data)


if __name__ == "__main__":
    main()
