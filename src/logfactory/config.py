"""The one YAML configuration file: typed, strict, and precise about mistakes.

Config types are frozen ``msgspec`` structs that reject unknown keys; runtime objects are built
from them (habit 1 of DESIGN.md). Every error names the file, the line and what was expected,
because a config mistake found at 3 a.m. must be fixable from the message alone.
"""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from logfactory.errors import ConfigError

__all__ = [
    "AlertRule",
    "BusConfig",
    "CollectorConfig",
    "Config",
    "ConfigError",
    "EventTypeConfig",
    "FactoryConfig",
    "FieldMatch",
    "HttpConfig",
    "Mapping",
    "Match",
    "MultilineConfig",
    "NodeConfig",
    "SnmpV3User",
    "SourceConfig",
    "ThresholdRule",
    "WorkshopConfig",
    "bare_port",
    "key_path",
    "load_config",
    "parse_duration",
    "parse_size",
]


class _Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class NodeConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str = "logfactory"
    data_dir: str = "var/data"
    timezone: str = "UTC"


class RetentionConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_age: str | int = "7d"
    max_bytes_per_partition: str | int | None = None


class ShipConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``bus.http``: where an edge collector (``bus.type: http``) posts its records."""

    url: str = ""  # the central node's ingest endpoint, e.g. https://central:8080/api/v1/ingest
    token: str | None = None  # the bearer token of an http source of the central node
    ca_file: str | None = None  # CA bundle for a central node with its own certificate
    verify: bool = True


class BusConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["local", "kafka", "http"] = "local"
    partitions: int = 4
    fsync: bool = False
    retention: RetentionConfig = RetentionConfig()
    kafka: dict[str, str | int | bool] = {}
    http: ShipConfig = ShipConfig()


class HttpConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    listen: str = "127.0.0.1:8080"
    enabled: bool = True
    tls_cert: str | None = None  # PEM, with tls_key: the API serves HTTPS (e.g. for edges)
    tls_key: str | None = None
    # connections held at once (None: 1024, fewer when the descriptor limit asks for it) and
    # how long one may stay silent (no request in progress, no byte received) before it is closed
    max_connections: int | None = None
    connection_idle_timeout: str | float = "60s"
    # SSE streams (GET /api/v1/subscribe) at once, in all and from one client address
    max_subscribers: int = 64
    max_subscribers_per_client: int = 8


# -- snmp -- (the v3 user of an snmp source; SourceConfig.v3_users)
SNMP_AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512", "NONE")
SNMP_PRIV_PROTOCOLS = ("DES", "3DES", "AES", "AES192", "AES256", "AES192C", "AES256C", "NONE")
_SNMP_ALIASES = {"SHA1": "SHA", "AES128": "AES"}


def snmp_protocol(value: str) -> str:
    """``SHA-256``, ``sha256`` -> ``SHA256``: net-snmp's spellings and ours name one protocol."""
    name = value.upper().replace("-", "").replace("_", "")
    return _SNMP_ALIASES.get(name, name)


def snmp_engine_id(value: str) -> bytes:
    """Hex (``0x`` optional, ``:`` allowed) -> the 5..32 octets RFC 3411 allows; else ValueError."""
    text = value.strip().replace(":", "")
    text = text[2:] if text[:2].lower() == "0x" else text
    try:
        octets = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"engine_id {value!r} is not hex, e.g. 0x8000000001020304") from None
    if not 5 <= len(octets) <= 32:
        raise ValueError(f"engine_id {value!r} has {len(octets)} octets; SNMP wants 5 to 32")
    return octets


class SnmpV3User(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An SNMPv3 (USM) user whose traps and informs an snmp source accepts.

    ``auth_protocol`` defaults to SHA when ``auth_key`` is given, ``priv_protocol`` to AES when
    ``priv_key`` is. ``engine_id`` is the *sender's* engine id: v3 traps are authenticated with
    keys localized to it, so without it the user is accepted for informs only (which use ours).
    AES192/AES256 are the key extension net-snmp uses; AES192C/AES256C the one Cisco uses.
    """

    user: str
    auth_protocol: str | None = None
    auth_key: str | None = None
    priv_protocol: str | None = None
    priv_key: str | None = None
    engine_id: str | None = None

    def __post_init__(self) -> None:
        # msgspec turns a ValueError here into a config error at this user's line
        if not 1 <= len(self.user) <= 32:
            raise ValueError("user must be 1 to 32 characters")
        for kind, names, protocol, key in (
            ("auth", SNMP_AUTH_PROTOCOLS, self.auth_protocol, self.auth_key),
            ("priv", SNMP_PRIV_PROTOCOLS, self.priv_protocol, self.priv_key),
        ):
            name = snmp_protocol(protocol) if protocol is not None else None
            if name is not None and name not in names:
                raise ValueError(
                    f"{kind}_protocol {protocol!r} is unknown; use one of {', '.join(names)}"
                )
            if key is None and name not in (None, "NONE"):
                raise ValueError(f"{kind}_protocol {protocol} needs {kind}_key")
            if key is not None and name == "NONE":
                raise ValueError(f"{kind}_key is set but {kind}_protocol is none")
            if key is not None and len(key) < 8:
                raise ValueError(f"{kind}_key must be at least 8 characters (RFC 3414)")
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("priv_key needs auth_key: SNMPv3 has no privacy without auth")
        if self.engine_id is not None:
            snmp_engine_id(self.engine_id)

    @property
    def auth(self) -> str:
        """The auth protocol's canonical name (``NONE`` without a key)."""
        if self.auth_key is None:
            return "NONE"
        return snmp_protocol(self.auth_protocol or "SHA")

    @property
    def priv(self) -> str:
        """The privacy protocol's canonical name (``NONE`` without a key)."""
        if self.priv_key is None:
            return "NONE"
        return snmp_protocol(self.priv_protocol or "AES")


class SourceConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One input. ``type`` decides which of the other keys apply (checked at start)."""

    type: Literal["file", "syslog", "raw", "relp", "http", "snmp", "sql", "kafka", "demo"]
    name: str | None = None
    tag: str | None = None
    # file
    paths: list[str] = []
    start_at: Literal["beginning", "end"] = "beginning"
    idle_timeout: str | float = "5s"  # then an unterminated last line is delivered
    read_gzip: bool = False  # *.gz matches are read once, whole (rotated files)
    # syslog (and raw: lines over TCP/UDP; relp: TCP only, listen and max_frame_bytes)
    listen: str | None = None
    protocols: list[Literal["udp", "tcp"]] = msgspec.field(default_factory=lambda: ["udp", "tcp"])
    max_frame_bytes: int = 1_048_576  # the longest line, for file and http sources too
    # TCP/TLS connections held at once per listener (None: 1024, or fewer to fit the descriptor
    # limit) and how long one may send nothing before it is closed ("0": never)
    max_connections: int | None = None
    connection_idle_timeout: str | float = "5m"
    # -- tls (syslog, raw) --
    tls_listen: str | None = None  # HOST:PORT of a TLS listener (RFC 5425) besides the plain ones
    tls_cert: str | None = None  # PEM; with tls_key. Neither: self-signed under <data_dir>/tls/
    tls_key: str | None = None
    tls_ca: str | None = None  # PEM of CAs whose client certificates are accepted
    tls_verify_client: bool = False  # mutual TLS: a client certificate signed by tls_ca required
    udp_rcvbuf: int = 32 * 1024 * 1024  # SO_RCVBUF of UDP sockets (bytes); larger = fewer drops
    # -- snmp --
    communities: list[str] = []  # v1/v2c communities accepted (empty: v1/v2c refused)
    v3_users: list[SnmpV3User] = []
    engine_id: str | None = None  # our engine id (hex) for v3 informs; else made, kept in data_dir
    mibs: list[str] = []  # dirs of compiled pysnmp MIBs; when set, OIDs also get names
    # -- sql --
    connection: str | None = None  # ODBC connection string / DSN=..., or sqlite:///path.db
    query: str | None = None  # one ``?`` (or ``:last``) placeholder for the last tracked value
    tracking_column: str | None = None
    initial_value: str | int | float | None = None
    interval: str | float = "10s"
    max_rows: int = 10_000
    host_column: str | None = None
    message_column: str | None = None
    host: str | None = None
    # -- kafka input --
    kafka: dict[str, str | int | bool] = {}  # librdkafka consumer keys of the SITE's cluster
    topics: list[str] = []
    group: str | None = None  # default logfactory-<name>
    host_from: str = "key"  # key | field:<json field> | a fixed host name
    # http ingest: optional bearer token
    token: str | None = None
    # -- http ingest --
    max_body_bytes: str | int = "16MiB"  # decompressed; above it: 413
    # demo feed
    rate: float = 50.0
    hosts: int = 8
    seed: int | None = None


class MultilineConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Lines matching ``start`` open a record; lines matching ``continuation`` (or not matching
    ``start`` when ``continuation`` is absent) join it; the record flushes after ``timeout``."""

    start: str | None = None
    continuation: str | None = None
    timeout: str | float = "1s"
    max_lines: int = 500


class WorkshopConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One log format. ``mine``: whether the pattern library mines this workshop's messages
    into templates (and announces new ones). Unset: free text (``syslog``) is mined, structured
    formats (``kv``, ``slurm``, ``json``) are not: their messages vary by field values, so
    every user or job id would become a template nobody wants to review; mappings classify
    them. A workshop listed in ``factory.pattern_workshops`` is mined unless it says false."""

    format: Literal["syslog", "kv", "slurm", "json"]
    mine: bool | None = None
    multiline: MultilineConfig | None = None
    # syslog: hand the message of some programs to another workshop's decoder
    delegate: dict[str, str] = {}
    timezone: str | None = None
    # kv (delimited middleware logs)
    separator: str = "|"
    fields: list[str] = []
    pair_separator: str = " "
    kv_separator: str = "="
    time_field: str | None = None
    time_format: str | None = None
    # json
    message_field: str = "message"


class FieldMatch(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    equals: str | None = None
    regex: str | None = None
    one_of: list[str] = []


class Match(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """All given conditions must hold. ``message`` is a regex whose named groups become fields."""

    workshop: str | list[str] | None = None
    program: str | list[str] | None = None
    message: str | None = None
    fields: dict[str, str | FieldMatch] = {}


class Mapping(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A declarative classification: decoded records that match become events of ``type``."""

    name: str
    when: Match
    type: str
    subtype: str | None = None
    severity: Literal["info", "low", "medium", "high", "critical"] = "info"
    body: dict[str, Any] = {}
    params: dict[str, Any] | str | None = None


class AlertRule(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An alert template (Pa): a message matching it is an ALERT with this reason."""

    name: str
    when: Match
    subtype: str
    reason: str
    severity: Literal["info", "low", "medium", "high", "critical"] = "high"
    body: dict[str, Any] = {}


class ThresholdRule(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``threshold`` matching records with the same ``key`` within ``window`` make one event."""

    name: str
    when: Match
    key: str
    threshold: int
    subtype: str
    reason: str
    window: str | float = "60s"
    suppress: str | float = "5m"
    type: str = "ALERT"
    severity: Literal["info", "low", "medium", "high", "critical"] = "high"
    collect: list[str] = []
    max_evidence: int = 20


class EventTypeConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A site-defined event type: its name and the ``body`` fields every event of it carries."""

    name: str
    description: str = ""
    required: list[str] = []


class FactoryConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    group: str = "factory"
    batch_size: int = 500
    routes: dict[str, str] = {}
    new_patterns: bool = True
    pattern_workshops: list[str] | None = None


class CollectorConfig(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How a collector rides out a bus outage (:mod:`logfactory.collect.spool`).

    ``spool``: ``auto`` spools when the bus is remote (Kafka) - a spool in front of the local
    bus would be a second copy on the same disk; ``always`` / ``never`` decide it outright.
    ``spool_max_bytes``: above it sources are slowed down (never dropped).
    ``spool_flush_timeout``: how long a checkpoint waits for the bus before it spools.
    """

    spool: Literal["auto", "always", "never"] = "auto"
    spool_max_bytes: str | int = "1GiB"
    spool_flush_timeout: str | float = "2s"

    def __post_init__(self) -> None:
        # msgspec turns a ValueError here into a config error at this section's line
        for key, parse in (
            ("spool_max_bytes", parse_size),
            ("spool_flush_timeout", parse_duration),
        ):
            try:
                value = parse(getattr(self, key))
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
            if value <= 0:
                raise ValueError(f"{key} must be more than 0")


class Config(_Base, frozen=True, forbid_unknown_fields=True, kw_only=True):
    node: NodeConfig = NodeConfig()
    bus: BusConfig = BusConfig()
    http: HttpConfig = HttpConfig()
    collector: CollectorConfig = msgspec.field(default_factory=CollectorConfig)
    sources: list[SourceConfig] = []
    workshops: dict[str, WorkshopConfig] = {}
    factory: FactoryConfig = FactoryConfig()
    event_types: list[EventTypeConfig] = []
    mappings: list[Mapping] = []
    alerts: list[AlertRule] = []
    rules: list[ThresholdRule] = []
    path: str = ""
    # set by the loader, never from the file: "FILE:LINE: key.path: ..." of what looks wrong
    # but does not stop a node (config_fields.py), for `check` and the node's start to print
    warnings: tuple[str, ...] = ()

    @property
    def data_dir(self) -> Path:
        return Path(self.node.data_dir)


# -- durations and sizes -------------------------------------------------------------------
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?\s*$", re.I)
_SIZE_UNITS = {
    "b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 2**20,
    "gb": 10**9, "gib": 2**30, "tb": 10**12, "tib": 2**40,
}  # fmt: skip


def parse_duration(value: str | float) -> float:
    """Seconds from ``30``, ``1.5``, ``250ms``, ``60s``, ``5m``, ``2h`` or ``7d``."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a duration; write e.g. 250ms, 60s, 5m, 2h or 7d")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_size(value: str | int) -> int:
    """Bytes from ``1048576``, ``512MiB`` or ``1GB``."""
    if isinstance(value, int):
        return value
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a size; write e.g. 512MiB or 1GB")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


# -- loading with line numbers --------------------------------------------------------------
PathKey = tuple[str | int, ...]


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping key and sequence item."""


def _construct_with_lines(
    loader: _LineLoader, node: yaml.Node, path: PathKey, lines: dict[PathKey, int]
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, str | int):
                lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = _construct_with_lines(loader, value_node, (*path, key), lines)
            else:
                out[key] = loader.construct_object(value_node, deep=True)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct_with_lines(loader, item, (*path, i), lines)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


# msgspec's error paths: `.name`, `[3]`, and `[...]` for a dict key that it does not name
_PATH_PART = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]|\[(\.\.\.)\]")
_PLAIN_KEY = re.compile(r"[A-Za-z_][\w\-]*")
_RESERVED = ("path", "warnings")  # Config fields the loader sets; a file must not


def key_path(path: PathKey) -> str:
    """``("sources", 1, "listen")`` -> ``sources[1].listen``: names joined by dots, list items
    by index, dict keys that are not plain names quoted (``bus.kafka["bootstrap.servers"]``),
    so that every error names its key the way the file spells it."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out or "top level"


def bare_port(port: object) -> str:
    """The error for ``listen: 5514``: a port alone does not say which interface to take."""
    return (
        f"{port} is a port without a host; write it as HOST:PORT, e.g. 127.0.0.1:{port} "
        f"(this machine only) or 0.0.0.0:{port} (every interface)"
    )


def _parse_msgspec_path(text: str) -> list[str | int | None]:
    """``$.workshops[...].format`` -> ``["workshops", None, "format"]`` (None: unnamed key)."""
    return [
        name if name else int(index) if index else None
        for name, index, _ in _PATH_PART.findall(text)
    ]


def _member(tp: Any, value: Any) -> Any:
    """The member of a union type that ``value`` was checked against (struct or dict for a
    mapping, list for a sequence); ``tp`` itself when it is no union."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return tp
    for member in typing.get_args(tp):
        origin = typing.get_origin(member) or member
        if isinstance(value, list) and origin is list:
            return member
        if isinstance(value, dict) and (
            origin is dict or (isinstance(origin, type) and issubclass(origin, msgspec.Struct))
        ):
            return member
    return tp


def _converts(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError:
        return False
    return True


def _resolve(parts: list[str | int | None], data: Any) -> tuple[PathKey, Any, Any]:
    """Walk msgspec's error path through the data and the types: the path with every unnamed
    dict key found (the first entry whose value does not convert: msgspec stops at the first
    error), the type expected at its end and the value given there."""
    tp: Any = Config
    value: Any = data
    path: list[str | int] = []
    for part in parts:
        tp = _member(tp, value)
        args = typing.get_args(tp)
        if part is None:
            item = args[1] if typing.get_origin(tp) is dict and len(args) == 2 else Any
            items = value.items() if isinstance(value, dict) else ()
            key = next((k for k, v in items if not _converts(v, item)), None)
            if key is None:
                break
            path.append(key)
            value, tp = value[key], item
        elif isinstance(part, int):
            path.append(part)
            value = value[part] if isinstance(value, list) and part < len(value) else None
            tp = args[0] if typing.get_origin(tp) is list and args else Any
        else:
            path.append(part)
            value = value.get(part) if isinstance(value, dict) else None
            fields = (
                msgspec.structs.fields(tp)
                if isinstance(tp, type) and issubclass(tp, msgspec.Struct)
                else ()
            )
            tp = next((f.type for f in fields if f.name == part), Any)
    return tuple(path), _member(tp, value), value


def _schema_error(message: str, data: Any, lines: dict[PathKey, int], name: str) -> str:
    """msgspec's message, rephrased: the real key path (dict keys named), the valid values of
    an enum, HOST:PORT for a bare port."""
    what, sep, at = message.rpartition(" - at `")
    if not sep:
        return f"{name}:1: top level: {message}"
    if at.startswith("key` in `"):  # a dict key of the wrong type, e.g. a workshop named 1
        path, _, value = _resolve(_parse_msgspec_path(at.split("`")[2]), data)
        keys = value if isinstance(value, dict) else {}
        key = next((k for k in keys if not isinstance(k, str)), None)
        line = _line_for((*path, key) if isinstance(key, int) else path, lines)
        what = (
            f"the name {key!r} is not text (YAML reads unquoted numbers and yes/no/on/off as "
            "values): write it in quotes"
        )
        return f"{name}:{line}: {key_path(path)}: {what}"
    path, tp, value = _resolve(_parse_msgspec_path(at.rstrip("`")), data)
    if what.startswith("Object contains unknown field"):
        field = what.split("`")[1] if "`" in what else "?"
        path = (*path, field)
        what = f"unknown key {field!r}; check its spelling against docs/configuration.md"
    elif what.startswith("Invalid enum value") and typing.get_origin(tp) is Literal:
        choices = ", ".join(str(v) for v in typing.get_args(tp))
        what = f"{value!r} is not valid; expected one of {choices}"
    elif path and path[-1] in ("listen", "tls_listen") and type(value) is int:
        what = bare_port(value)
    return _where(name, path, what, lines)


def _where(name: str, path: PathKey, what: str, lines: dict[PathKey, int]) -> str:
    """``FILE:LINE: key.path: what`` - the one shape of every config error and warning."""
    return f"{name}:{_line_for(path, lines)}: {key_path(path)}: {what}"


def _line_for(path: PathKey, lines: dict[PathKey, int]) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def load_config(path: str | Path) -> Config:
    """Read, validate and cross-check a configuration file, or raise :class:`ConfigError`.

    What looks wrong without stopping a node (a template field no record carries) is in the
    returned config's ``warnings``, each phrased like an error."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the configuration file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: the configuration file is not UTF-8 text") from exc
    return parse_config(text, str(file))


def parse_config(text: str, name: str = "<config>") -> Config:
    lines: dict[PathKey, int] = {}
    try:
        loader = _LineLoader(text)
        try:
            node = loader.get_single_node()
            data = {} if node is None else _construct_with_lines(loader, node, (), lines)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(f"{name}:{line}: not valid YAML: {exc.problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{name}:1: expected a mapping of sections (node:, bus:, sources:, ...)")
    for reserved in _RESERVED:
        if reserved in data:
            what = f"unknown key {reserved!r}; check its spelling against docs/configuration.md"
            raise ConfigError(_where(name, (reserved,), what, lines))
    data["path"] = name
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(_schema_error(str(exc), data, lines, name)) from exc
    # cross-field checks and warnings live apart
    from logfactory.config_check import check_config
    from logfactory.config_fields import field_warnings

    problems = check_config(config)
    if problems:
        raise ConfigError(_where(name, *problems[0], lines))
    warnings = tuple(_where(name, path, what, lines) for path, what in field_warnings(config))
    return msgspec.structs.replace(config, warnings=warnings) if warnings else config
