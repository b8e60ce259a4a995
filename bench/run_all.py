"""`make bench`: run every benchmark and write its JSON under bench/results/."""

from __future__ import annotations

import sys

from bench import patterns, pipeline


def main() -> None:
    argv = sys.argv
    sys.argv = argv[:1]  # each benchmark parses its own options; make bench passes none
    pipeline.main()
    patterns.main([])


if __name__ == "__main__":
    main()
