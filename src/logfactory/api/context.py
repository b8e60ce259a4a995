"""What every route of the API is built from: the node that hosts it and the API's own state.

:class:`NodeContext` is what the node hands to :func:`logfactory.api.create_app` (its
configuration, bus, producer, stats, access store); :class:`ApiState` is what the routes
share while the app runs: the credential checks, the number of SSE subscribers (which
``/api/v1/stats`` reports and the subscribe route changes) and the limits against abuse that
count per caller across requests (the login lock-out, the query rate), made once per app so
that every route and request sees the same. Each route module's ``router(ctx, state)`` takes
both, so a route needs no global and no other route module to find what it works on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from logfactory.access.lockout import Kind, LoginThrottle
from logfactory.access.store import AccessStore
from logfactory.api.auth import Authenticator
from logfactory.api.ratelimit import QueryLimiter, limit_queries
from logfactory.bus.base import Bus, Producer
from logfactory.config import Config, HttpConfig
from logfactory.stats import StatsRegistry

__all__ = ["ApiState", "NodeContext"]


@dataclass
class NodeContext:
    """What the API needs from the node that hosts it.

    ``access`` is the node's store of users, tokens and the audit trail (its data
    directory's ``access.db``). ``expected_processes`` names roles (``"factory"`` matches
    ``factory-1234``) of which at least one live process must report for the node to be
    healthy; processes that reported at all are always checked.
    ``keepalive_s`` is the SSE comment interval.
    """

    config: Config
    bus: Bus
    producer: Producer
    registry: StatsRegistry
    stats_dir: Path
    started: float
    access: AccessStore
    expected_processes: tuple[str, ...] = ()
    stale_after_s: float = 5.0
    keepalive_s: float = 15.0


class ApiState:
    """What the routes of one app share: its credential checks (``auth``; a route needing a
    role declares ``Depends(state.auth.requires(Role.X))``), the API's live numbers, mirrored
    into the process's stats registry, and the per-caller limits of ``http`` (its defaults when
    not given)."""

    def __init__(
        self, registry: StatsRegistry, auth: Authenticator, http: HttpConfig | None = None
    ) -> None:
        http = HttpConfig() if http is None else http
        self.auth = auth
        self._registry = registry
        self._lock = threading.Lock()
        self.subscribers = 0
        self.login_throttle = LoginThrottle(
            http.login_max_failures, float(http.login_lockout), on_lock=self._locked_out
        )
        self.query_limiter = QueryLimiter(http.query_rate, http.query_burst)
        #: the dependency of every expensive query's route (after its credential check)
        self.limit_queries = limit_queries(self.query_limiter, self.limited)
        self._closers: list[Callable[[], None]] = []

    def on_close(self, closer: Callable[[], None]) -> None:
        """Call ``closer`` when the app stops (a route module's engine reader, say)."""
        self._closers.append(closer)

    def close(self) -> None:
        """Release what the routes opened, last opened first (the app's lifespan calls it)."""
        while self._closers:
            self._closers.pop()()

    def limited(self, limit: str) -> None:
        """A request refused by the limit ``limit`` (``login``, ``query``, ``sse_total``, ...):
        the counter ``api.limited_<limit>`` that /metrics shows as
        ``logfactory_api_limited_total{limit="<limit>"}``."""
        self._registry.add("api", f"limited_{limit}")

    def _locked_out(self, kind: Kind) -> None:
        self._registry.add("api", f"lockouts_{kind}")

    def subscriber_delta(self, n: int) -> None:
        with self._lock:
            self.subscribers += n
            self._registry.gauge("api.subscribers", self.subscribers)
