"""`make bench`: run every benchmark and write its JSON under bench/results/."""

from __future__ import annotations

from bench import pipeline


def main() -> None:
    pipeline.main()


if __name__ == "__main__":
    main()
