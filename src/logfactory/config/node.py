"""The node's own sections: ``node``, ``bus``, ``http`` (the API) and ``collector``."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from logfactory.config.base import PathKey, Problems, Section
from logfactory.config.units import Duration, Size

__all__ = [
    "BusConfig",
    "CollectorConfig",
    "HttpConfig",
    "NodeConfig",
    "RetentionConfig",
    "ShipConfig",
    "connection_problems",
]


class NodeConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``node``: who this node is and where it keeps its data.

    Attributes:
        name: the node's name, in its banner, metrics and the events it makes
        data_dir: where the local bus, positions, spool and pattern library live (relative to
            the working directory); owner-only: made 0700, its files 0600, whatever the umask
        timezone: the IANA time zone of log times that carry none (e.g. Europe/Berlin)
    """

    name: str = "logfactory"
    data_dir: str = "var/data"
    timezone: str = "UTC"

    def problems(self) -> Problems:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            yield (
                ("timezone",),
                f"unknown time zone {self.timezone!r}; "
                "write an IANA name such as UTC or Europe/Berlin",
            )


class RetentionConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``bus.retention``: how long the local bus keeps records.

    Attributes:
        max_age: records older than this are deleted (0: kept for ever)
        max_bytes_per_partition: above it a partition's oldest records are deleted (none: no
            bound)
    """

    max_age: Duration = Duration("7d")
    max_bytes_per_partition: Size | None = None


class ShipConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``bus.http``: where an edge collector (``bus.type: http``) posts its records.

    Attributes:
        url: the central node's ingest endpoint, e.g. https://central:8080/api/v1/ingest
        token: the bearer token of an http source of the central node
        ca_file: a CA bundle (PEM) for a central node with its own certificate
        verify: whether the central node's certificate is verified
        client_cert: a PEM certificate this collector shows the central node (mutual TLS)
        client_key: the PEM private key of client_cert
    """

    url: str = ""
    token: str | None = None
    ca_file: str | None = None
    verify: bool = True
    client_cert: str | None = None
    client_key: str | None = None

    def problems(self) -> Problems:
        if (self.client_cert is None) != (self.client_key is None):
            key = "client_key" if self.client_key is None else "client_cert"
            yield ((key,), "client_cert and client_key must be given together")
        if self.client_cert is not None and self.url.startswith("http://"):
            yield (("client_cert",), "a client certificate is shown over https:// only: fix url")


class BusConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``bus``: the log that joins the stages.

    Attributes:
        type: local (SQLite under data_dir), kafka (a Kafka cluster) or http (an edge collector
            shipping to a central node)
        partitions: partitions of each topic the node creates
        fsync: local bus: sync every commit to disk (survives a power cut, slower)
        retention: local bus: how long records are kept
        kafka: librdkafka settings (bootstrap.servers, replication.factor, ...)
        http: type http: where records are shipped
    """

    type: Literal["local", "kafka", "http"] = "local"
    partitions: int = 4
    fsync: bool = False
    retention: RetentionConfig = RetentionConfig()
    kafka: dict[str, str | int | bool] = {}
    http: ShipConfig = ShipConfig()

    def problems(self) -> Problems:
        if self.type == "kafka" and not self.kafka.get("bootstrap.servers"):
            yield (("type",), "a kafka bus needs 'kafka: {bootstrap.servers: HOST:PORT,...}'")
        if self.type == "http" and not self.http.url.startswith(("http://", "https://")):
            yield (
                ("type",),
                "an http bus ships to a central node: give 'http: {url: "
                "https://CENTRAL:8080/api/v1/ingest, token: ...}'",
            )
        if self.partitions < 1:
            yield (("partitions",), "partitions must be at least 1")
        for key, what in self.http.problems():  # nothing else asks the nested section
            yield (("http", *key), what)


def connection_problems(cap: int | None, idle: float, at: PathKey = ()) -> Problems:
    """``max_connections`` and ``connection_idle_timeout`` of a TCP listener."""
    if cap is not None and cap < 1:
        yield ((*at, "max_connections"), "must be at least 1")
    if idle < 0:
        yield ((*at, "connection_idle_timeout"), "must be 0 (never) or more")


# http.allowed_hosts: a name or [IPv6] with an optional port; a bare IPv6 address is checked apart
_HOST_ENTRY = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
# http.cors_origins: what browsers send as Origin, scheme://host[:port] (no path, no slash)
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def _is_host_entry(entry: str) -> bool:
    if entry == "*" or _HOST_ENTRY.fullmatch(entry):
        return True
    try:
        return ipaddress.ip_address(entry).version == 6
    except ValueError:
        return False


def _browser_problems(allowed_hosts: list[str], cors_origins: list[str]) -> Problems:
    """Entries of ``http.allowed_hosts`` and ``http.cors_origins`` that could never match what a
    browser sends (they would refuse silently)."""
    for i, host in enumerate(allowed_hosts):
        if not _is_host_entry(host):
            yield (
                ("allowed_hosts", i),
                f"{host!r} is not a host name, name:port, [IPv6 address]:port or *",
            )
    for i, origin in enumerate(cors_origins):
        if not _ORIGIN.fullmatch(origin):
            yield (
                ("cors_origins", i),
                f"{origin!r} is not a web origin: scheme://host[:port], e.g. "
                "https://console.example.org (no path, no trailing slash, no *)",
            )


class HttpConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``http``: the node's HTTP API (ingest, subscribe, patterns, health, metrics).

    Attributes:
        listen: HOST:PORT the API listens on
        enabled: whether this node serves the API
        tls_cert: a PEM certificate; with tls_key the API serves HTTPS (e.g. for edges)
        tls_key: the PEM private key of tls_cert
        max_connections: connections held at once (none: 1024, fewer when the descriptor limit
            asks for it)
        connection_idle_timeout: how long a connection may stay silent (no request in progress,
            no byte received) before it is closed
        max_subscribers: SSE streams (GET /api/v1/subscribe) at once, in all
        max_subscribers_per_client: SSE streams at once from one client address
        max_subscribers_per_credential: SSE streams at once on one token or login session
        tls_client_ca: a CA bundle (PEM); with it the API asks clients for a certificate that
            this CA signed (mutual TLS), as tls_client_auth says
        tls_client_auth: required (no connection without a certificate tls_client_ca signed)
            or optional (a certificate, when sent, must verify); needs tls_client_ca
        allowed_hosts: Host header values the API answers (a name, or a name:port); empty: the
            listen address and localhost (listening on every interface, also this machine's
            names). "*" allows any (not advised)
        cors_origins: web origins (https://console.example.org) whose pages may call the API
            from a browser; empty: none
        hsts: over HTTPS, tell browsers to use HTTPS only (Strict-Transport-Security)
        session_lifetime: how long a console login lasts at most
        session_idle_timeout: a console login unused this long ends
        login_max_failures: failed logins for one user or from one address before it is locked
        login_lockout: how long the first lock-out lasts; each further one doubles, up to an
            hour
        query_rate: expensive queries (topic tails, pattern lists, searches) per second allowed
            to one credential, on average
        query_burst: expensive queries one credential may make at once before query_rate
            applies
        max_header_bytes: the request line and headers of one request, at most
    """

    listen: str = "127.0.0.1:8080"
    enabled: bool = True
    tls_cert: str | None = None
    tls_key: str | None = None
    max_connections: int | None = None
    connection_idle_timeout: Duration = Duration("60s")
    max_subscribers: int = 64
    max_subscribers_per_client: int = 8
    max_subscribers_per_credential: int = 8
    tls_client_ca: str | None = None
    tls_client_auth: Literal["required", "optional"] = "required"
    allowed_hosts: list[str] = []
    cors_origins: list[str] = []
    hsts: bool = True
    session_lifetime: Duration = Duration("12h")
    session_idle_timeout: Duration = Duration("1h")
    login_max_failures: int = 5
    login_lockout: Duration = Duration("1m")
    query_rate: float = 10.0
    query_burst: int = 20
    max_header_bytes: Size = Size("16KiB")

    def problems(self) -> Problems:
        if (self.tls_cert is None) != (self.tls_key is None):
            key = "tls_key" if self.tls_key is None else "tls_cert"
            yield ((key,), "tls_cert and tls_key must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            yield (("tls_client_ca",), "client certificates need HTTPS: give tls_cert and tls_key")
        yield from connection_problems(self.max_connections, self.connection_idle_timeout)
        yield from _browser_problems(self.allowed_hosts, self.cors_origins)
        for key in (
            "max_subscribers",
            "max_subscribers_per_client",
            "max_subscribers_per_credential",
            "login_max_failures",
            "query_burst",
        ):
            if getattr(self, key) < 1:
                yield ((key,), "must be at least 1")
        for key in ("session_lifetime", "session_idle_timeout", "login_lockout", "query_rate"):
            if getattr(self, key) <= 0:
                yield ((key,), "must be more than 0")
        if self.max_header_bytes < 1024:
            yield (("max_header_bytes",), "must be at least 1KiB")


class CollectorConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``collector``: how a collector rides out a bus outage (:mod:`logfactory.collect.spool`).

    Attributes:
        spool: auto spools when the bus is remote (Kafka; a spool in front of the local bus
            would be a second copy on the same disk); always / never decide it outright
        spool_max_bytes: above it sources are slowed down (never dropped)
        spool_flush_timeout: how long a checkpoint waits for the bus before it spools
    """

    spool: Literal["auto", "always", "never"] = "auto"
    spool_max_bytes: Size = Size("1GiB")
    spool_flush_timeout: Duration = Duration("2s")

    def __post_init__(self) -> None:
        # msgspec turns a ValueError here into a config error at this section's line
        for key in ("spool_max_bytes", "spool_flush_timeout"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key} must be more than 0")
