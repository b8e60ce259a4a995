"""The names of the node's fixed bus topics.

Why a module of their own: they are vocabulary every layer needs, the bus included (an edge's
HTTP-shipping bus carries ``logs.raw`` only), while :mod:`logfactory.topics`, which plans the
topics (partitions, retention, compaction) and creates them, builds on the bus contract. Kept
here, importing nothing, the bus can name them without importing the layer above it;
:mod:`logfactory.topics` re-exports them, so code above the bus imports them from there.
"""

from __future__ import annotations

__all__ = ["DEADLETTER", "PARSED", "PATTERNS", "RAW", "STATE"]

RAW = "logs.raw"
PARSED = "logs.parsed"
DEADLETTER = "logs.deadletter"
PATTERNS = "patterns.library"
STATE = "factory.state"
