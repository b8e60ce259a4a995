"""Source configs of a known type: ``source_config`` and ``Config.sources`` give the union of
every source config type; a test that builds or reads one of a known type narrows it here, and
fails at once if the type is not the one it expected."""

from __future__ import annotations

from typing import Any, TypeVar

from logfactory.config import Config, source_config

S = TypeVar("S")


def source_as(kind: type[S], **keys: Any) -> S:
    """``source_config(**keys)``, which must be a ``kind``."""
    made = source_config(**keys)
    assert isinstance(made, kind), made
    return made


def source_of(config: Config, kind: type[S], index: int = 0) -> S:
    """``config.sources[index]``, which must be a ``kind``."""
    found = config.sources[index]
    assert isinstance(found, kind), found
    return found
