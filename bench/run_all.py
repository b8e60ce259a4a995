"""`make bench`: run every benchmark and write its JSON under bench/results/."""

from __future__ import annotations

import sys

from bench import collectors, kafka, patterns, pipeline, resilience, security, store


def main() -> None:
    argv = sys.argv
    sys.argv = argv[:1]  # each benchmark parses its own options; make bench passes none
    pipeline.main()
    patterns.main([])
    collectors.main([])
    resilience.main([])
    security.main([])
    store.main([])  # builds its 10M-record store the first time (minutes), then reuses it
    kafka.main([])  # last: it starts Kafka brokers, which need the CPU for themselves


if __name__ == "__main__":
    main()
