"""``sources``: one struct per source type, selected by its ``type`` key.

:data:`SourceConfig` is a tagged union (msgspec, ``tag_field="type"``): the loader picks the
struct by ``type``, so a key that belongs to another type (``paths:`` on a syslog source) is an
error naming the keys this type takes, and runtime code narrows by ``sc.type == "syslog"``
(or ``isinstance``) to the fields that type has. Each struct's ``problems()`` holds the checks
that span its own keys; ``listeners()`` says which addresses it binds, for the check that no
two listeners of a node need the same one.

New source types follow the same pattern: a struct here with its ``tag``, added to
:data:`SourceConfig`, and the collector that takes it (a row in ``collect/sources/build.py``).
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Literal, TypeAlias

import msgspec

from logfactory.config.base import Problems, Section
from logfactory.config.node import connection_problems
from logfactory.config.snmp import SnmpV3User, snmp_engine_id
from logfactory.config.units import Duration, Size, dec_hook
from logfactory.sqlconn import parse_connection, prepare_query

__all__ = [
    "SOURCE_TYPES",
    "DemoSourceConfig",
    "FileSourceConfig",
    "HttpSourceConfig",
    "KafkaSourceConfig",
    "Listener",
    "RawSourceConfig",
    "RelpSourceConfig",
    "SnmpSourceConfig",
    "SocketSourceConfig",
    "SourceBase",
    "SourceConfig",
    "SqlSourceConfig",
    "SyslogSourceConfig",
    "TcpSourceConfig",
    "source_config",
]

# (key, HOST:PORT as written, protocols it binds)
Listener = tuple[str, str, tuple[str, ...]]


class SourceBase(Section, frozen=True, kw_only=True, tag_field="type"):
    """What every source has.

    Attributes:
        name: the source's name: its counters, saved positions and SNMP engine are kept under
            it (one name, one source; default: the type)
        tag: the tag its records carry, which picks the workshop (factory.routes)
    """

    name: str | None = None
    tag: str | None = None

    def problems(self) -> Problems:
        """(key, what is wrong) for keys of this source that do not go together."""
        return iter(())

    def listeners(self) -> list[Listener]:
        """The addresses this source binds (none but for network sources)."""
        return []


class FileSourceConfig(SourceBase, frozen=True, kw_only=True, tag="file"):
    """``type: file``: follows files (rotation, truncation, gzip'd rotations).

    Attributes:
        paths: globs of the files to follow
        start_at: beginning reads files from their start, end from what is appended next
        idle_timeout: after this long without a newline an unterminated last line is delivered
        read_gzip: *.gz matches are read once, whole (rotated files)
        max_frame_bytes: the longest line; longer lines are cut
    """

    type: ClassVar[Literal["file"]] = "file"
    paths: list[str] = []
    start_at: Literal["beginning", "end"] = "beginning"
    idle_timeout: Duration = Duration("5s")
    read_gzip: bool = False
    max_frame_bytes: int = 1_048_576

    def problems(self) -> Problems:
        if not self.paths:
            yield (("paths",), "a file source needs 'paths': a list of globs")


class TcpSourceConfig(SourceBase, frozen=True, kw_only=True):
    """A source with a TCP listener: its address, frame and connection bounds."""

    listen: str | None = None
    max_frame_bytes: int = 1_048_576
    max_connections: int | None = None
    connection_idle_timeout: Duration = Duration("5m")

    def _bounds(self) -> Problems:
        if self.max_frame_bytes < 1:
            yield (("max_frame_bytes",), "must be at least 1")
        yield from connection_problems(self.max_connections, self.connection_idle_timeout)


_TCP_DOC = """listen: HOST:PORT of the listener
        max_frame_bytes: the longest frame (line) accepted
        max_connections: TCP connections held at once per listener (none: 1024, or fewer to
            fit the descriptor limit)
        connection_idle_timeout: how long a connection may send nothing before it is closed
            (0: never)"""


class SocketSourceConfig(TcpSourceConfig, frozen=True, kw_only=True):
    """What syslog and raw sources share: UDP, TCP and TLS listeners of lines."""

    type: ClassVar[Literal["syslog", "raw"]]
    protocols: list[Literal["udp", "tcp"]] = msgspec.field(default_factory=lambda: ["udp", "tcp"])
    tls_listen: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    tls_verify_client: bool = False
    udp_rcvbuf: int = 32 * 1024 * 1024

    def problems(self) -> Problems:
        if not self.listen and not self.tls_listen:
            yield (("type",), f"a {self.type} source needs 'listen: HOST:PORT' (or tls_listen)")
        if (self.tls_cert is None) != (self.tls_key is None):
            key = "tls_key" if self.tls_key is None else "tls_cert"
            yield ((key,), "tls_cert and tls_key must be given together")
        if self.tls_verify_client and self.tls_ca is None:
            yield (("tls_ca",), "tls_verify_client needs tls_ca (the clients' CA)")
        if self.max_frame_bytes < 1:
            yield (("max_frame_bytes",), "must be at least 1")
        if self.udp_rcvbuf < 1024:
            yield (("udp_rcvbuf",), "must be at least 1024 bytes")
        yield from connection_problems(self.max_connections, self.connection_idle_timeout)

    def listeners(self) -> list[Listener]:
        out: list[Listener] = []
        if self.listen is not None:
            out.append(("listen", self.listen, tuple(dict.fromkeys(self.protocols))))
        if self.tls_listen is not None:
            out.append(("tls_listen", self.tls_listen, ("tcp",)))
        return out


_SOCKET_DOC = (
    _TCP_DOC
    + """
        protocols: udp, tcp or both on listen
        tls_listen: HOST:PORT of a TLS listener (RFC 5425) besides the plain ones
        tls_cert: PEM certificate, with tls_key (neither: self-signed under <data_dir>/tls/)
        tls_key: PEM private key of tls_cert
        tls_ca: PEM of the CAs whose client certificates are accepted
        tls_verify_client: mutual TLS: a client certificate signed by tls_ca is required
        udp_rcvbuf: SO_RCVBUF of UDP sockets (bytes); larger means fewer drops in a burst"""
)


class SyslogSourceConfig(SocketSourceConfig, frozen=True, kw_only=True, tag="syslog"):
    __doc__ = f"""``type: syslog``: RFC 3164/5424 messages over UDP, TCP (octet-counted or
    newline-framed) and TLS.

    Attributes:
        {_SOCKET_DOC}
    """

    type: ClassVar[Literal["syslog"]] = "syslog"


class RawSourceConfig(SocketSourceConfig, frozen=True, kw_only=True, tag="raw"):
    __doc__ = f"""``type: raw``: plain lines over UDP, TCP and TLS.

    Attributes:
        {_SOCKET_DOC}
    """

    type: ClassVar[Literal["raw"]] = "raw"


class RelpSourceConfig(TcpSourceConfig, frozen=True, kw_only=True, tag="relp"):
    __doc__ = f"""``type: relp``: syslog with acknowledgements (RELP over TCP).

    Attributes:
        {_TCP_DOC}
    """

    type: ClassVar[Literal["relp"]] = "relp"

    def problems(self) -> Problems:
        if not self.listen:
            yield (("listen",), "a relp source needs 'listen: HOST:PORT' (TCP)")
        yield from self._bounds()

    def listeners(self) -> list[Listener]:
        return [("listen", self.listen, ("tcp",))] if self.listen is not None else []


class HttpSourceConfig(SourceBase, frozen=True, kw_only=True, tag="http"):
    """``type: http``: records POSTed to the API's /api/v1/ingest?source=TAG.

    Attributes:
        token: this source's own bearer token (role ingest, posts here only); none: API tokens only
        max_body_bytes: the largest request body, decompressed; above it: 413
        max_frame_bytes: the longest line
    """

    type: ClassVar[Literal["http"]] = "http"
    token: str | None = None
    max_body_bytes: Size = Size("16MiB")
    max_frame_bytes: int = 1_048_576

    @property
    def ingest_name(self) -> str:
        """What the API calls this source (stats ``source:<name>``, a source token's caller)."""
        return self.name or self.tag or "http"

    def problems(self) -> Problems:
        if self.max_body_bytes < 1:
            yield (("max_body_bytes",), "must be at least 1 byte")


class SnmpSourceConfig(SourceBase, frozen=True, kw_only=True, tag="snmp"):
    """``type: snmp``: traps and informs (v1, v2c, v3) over UDP.

    Attributes:
        listen: HOST:PORT (UDP)
        communities: v1/v2c communities accepted (empty: v1/v2c refused)
        v3_users: SNMPv3 users accepted
        engine_id: our engine id (hex) for v3 informs; default: made once, kept in data_dir
        mibs: directories of compiled pysnmp MIBs; when set, OIDs also get names
        udp_rcvbuf: SO_RCVBUF of the UDP socket (bytes)
    """

    type: ClassVar[Literal["snmp"]] = "snmp"
    listen: str | None = None
    communities: list[str] = []
    v3_users: list[SnmpV3User] = []
    engine_id: str | None = None
    mibs: list[str] = []
    udp_rcvbuf: int = 32 * 1024 * 1024

    def problems(self) -> Problems:
        if not self.listen:
            yield (("type",), "an snmp source needs 'listen: HOST:PORT' (UDP)")
        if not self.communities and not self.v3_users:
            yield (("type",), "an snmp source without 'communities' or 'v3_users' accepts nothing")
        if self.engine_id is not None:
            try:
                snmp_engine_id(self.engine_id)
            except ValueError as exc:
                yield (("engine_id",), str(exc))
        if self.udp_rcvbuf < 1024:
            yield (("udp_rcvbuf",), "must be at least 1024 bytes")
        seen: set[tuple[str, str | None]] = set()
        for j, user in enumerate(self.v3_users):
            key = (user.user, user.engine_id and snmp_engine_id(user.engine_id).hex())
            if key in seen:
                yield (
                    ("v3_users", j, "user"),
                    f"user {user.user!r} is listed twice for the same engine_id",
                )
            seen.add(key)

    def listeners(self) -> list[Listener]:
        return [("listen", self.listen, ("udp",))] if self.listen is not None else []


class SqlSourceConfig(SourceBase, frozen=True, kw_only=True, tag="sql"):
    """``type: sql``: new rows of a query, polled (ODBC or SQLite).

    Attributes:
        connection: an ODBC connection string (DRIVER={...};... or DSN=name) or sqlite:///PATH.db
        query: the query, with one ? (or :last) placeholder for the last tracked value
        tracking_column: the column whose largest value is remembered between polls
        initial_value: where the first run starts (default: everything)
        start_at: end: the first run starts at the current maximum
        interval: time between polls
        max_rows: rows read per poll at most
        host_column: the column holding the host (default: host, else the database's name)
        message_column: the column used as the line (default: the row as a JSON object)
        host: a fixed host for rows without host_column
    """

    type: ClassVar[Literal["sql"]] = "sql"
    connection: str | None = None
    query: str | None = None
    tracking_column: str | None = None
    initial_value: str | int | float | None = None
    start_at: Literal["beginning", "end"] = "beginning"
    interval: Duration = Duration("10s")
    max_rows: int = 10_000
    host_column: str | None = None
    message_column: str | None = None
    host: str | None = None

    def problems(self) -> Problems:
        for key in ("connection", "query", "tracking_column"):
            if not getattr(self, key):
                yield ((key,), f"a sql source needs '{key}'")
        if self.connection:
            try:
                parse_connection(self.connection)
            except ValueError as exc:
                yield (("connection",), str(exc))
        if self.query:
            try:
                prepare_query(self.query)
            except ValueError as exc:
                yield (("query",), str(exc))
        if self.max_rows < 1:
            yield (("max_rows",), "max_rows must be at least 1")


class KafkaSourceConfig(SourceBase, frozen=True, kw_only=True, tag="kafka"):
    """``type: kafka``: records of topics of a site's own Kafka cluster.

    Attributes:
        kafka: librdkafka consumer settings of the site's cluster (bootstrap.servers, ...)
        topics: the topics to read
        group: the consumer group (default: logfactory-<name>)
        start_at: where a group without committed offsets starts
        host_from: key (the message key), field:NAME (a field of a JSON value) or a fixed host
    """

    type: ClassVar[Literal["kafka"]] = "kafka"
    kafka: dict[str, str | int | bool] = {}
    topics: list[str] = []
    group: str | None = None
    start_at: Literal["beginning", "end"] = "beginning"
    host_from: str = "key"

    def problems(self) -> Problems:
        if not self.kafka.get("bootstrap.servers"):
            yield (("kafka",), "a kafka source needs 'kafka: {bootstrap.servers: HOST:PORT,...}'")
        if not self.topics:
            yield (("topics",), "a kafka source needs 'topics': a list of topics")
        if self.host_from == "field:":
            yield (("host_from",), "write host_from: field:NAME")


class DemoSourceConfig(SourceBase, frozen=True, kw_only=True, tag="demo"):
    """``type: demo``: a built-in feed of made-up cluster logs.

    Attributes:
        rate: lines per second
        hosts: compute nodes the lines come from
        seed: the random seed (none: a new feed each run)
    """

    type: ClassVar[Literal["demo"]] = "demo"
    rate: float = 50.0
    hosts: int = 8
    seed: int | None = None


SourceConfig: TypeAlias = (
    FileSourceConfig
    | SyslogSourceConfig
    | RawSourceConfig
    | RelpSourceConfig
    | HttpSourceConfig
    | SnmpSourceConfig
    | SqlSourceConfig
    | KafkaSourceConfig
    | DemoSourceConfig
)


def source_config(**keys: Any) -> SourceConfig:
    """The source struct that ``keys`` (spelt as in the file, ``type`` among them) describe,
    validated and with its units parsed: for code that builds a configuration itself (tests,
    benchmarks). Raises ``msgspec.ValidationError`` on a key its type does not take."""
    made: SourceConfig = msgspec.convert(keys, SourceConfig, dec_hook=dec_hook)
    return made


SOURCE_TYPES: tuple[str, ...] = tuple(
    str(t.__struct_config__.tag) for t in typing.get_args(SourceConfig)
)
