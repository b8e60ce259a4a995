"""What can stop a node from starting, said so that a person can act on it.

A port in use, a port below 1024 without root, a certificate that does not load, or a second
node on the same data directory are conditions a user causes; they end in :class:`NodeError`,
which the CLI prints as one ``Error:`` line (exit status 1) naming the address, the
configuration line that asked for it and the likely cause, instead of a traceback.

The data directory lock: the process that runs the collectors (``logfactory run`` and
``logfactory collect``) holds ``<data_dir>/node.lock`` (``flock``, released by the kernel when
the process ends, even by SIGKILL, so a stale file never blocks a start). Only one such process
may use a data directory: the file sources' positions, the spool and the collectors' stats file
have a single writer. ``logfactory factory`` workers (the node's own child or separate ones) and
``logfactory serve`` share the directory with it by design and take no lock; the bus itself
takes several processes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import yaml

from logfactory.collect.sources.base import Source
from logfactory.config import Config, SocketSourceConfig, SourceConfig, key_path
from logfactory.errors import NodeError

__all__ = [
    "LOCK_NAME",
    "DataDirLock",
    "NodeError",
    "bind_api_socket",
    "config_line",
    "failed_listener",
    "listen_error",
    "source_error",
    "where",
]

LOCK_NAME = "node.lock"


# -- where in the configuration ------------------------------------------------------------
def config_line(path: str, keys: tuple[str | int, ...]) -> int | None:
    """The line of ``keys`` (e.g. ``("sources", 0, "listen")``) in the file ``path``, or None
    when the file does not set it (a default) or cannot be read. The loaded Config keeps no
    line numbers, so the file is read again: this runs only to explain a failure."""
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line: int | None = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == key]
            if not found:
                return None
            key_node, node = found[-1]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return None
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return None
    return line


def where(config: Config, keys: tuple[str | int, ...], value: str) -> str:
    """``FILE:LINE: key.path`` of a configuration value, or that it is the default."""
    dotted = key_path(keys)
    line = config_line(config.path, keys)
    if line is None:
        return f"{config.path}: {dotted} (not set: the default {value})"
    return f"{config.path}:{line}: {dotted}"


# -- listening -----------------------------------------------------------------------------
def listen_error(
    config: Config, keys: tuple[str | int, ...], proto: str, address: str, exc: OSError
) -> NodeError:
    """Why ``address`` could not be listened on, where it is configured, and what to do."""
    head = f"{where(config, keys, address)}: cannot listen on {proto} {address}"
    if exc.errno == errno.EADDRINUSE:
        return NodeError(
            f"{head}: the address is already in use. Another logfactory node may be running "
            "with this configuration (stop it), or another program holds the port: choose "
            "another port there"
        )
    if exc.errno == errno.EACCES:
        return NodeError(
            f"{head}: permission denied. Ports below 1024 need root (or the capability "
            "CAP_NET_BIND_SERVICE); choose a port of 1024 or more"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return NodeError(f"{head}: no network interface of this host has that address")
    if isinstance(exc, socket.gaierror):
        return NodeError(f"{head}: the host name does not resolve ({exc.strerror})")
    return NodeError(f"{head}: {exc.strerror or exc}")


def failed_listener(sc: SourceConfig, bound: object) -> tuple[str, str, str]:
    """(config key, protocol, address) of the listener a network source failed to open.

    Sources open their listeners in a fixed order (UDP, TCP, then TLS) and record in
    ``bound`` what they had opened, so the first one missing from it is the one that failed.
    """
    if sc.type == "snmp":
        return "listen", "udp", sc.listen or "?"
    if sc.type == "relp":
        return "listen", "tcp", sc.listen or "?"
    if not isinstance(sc, SocketSourceConfig):
        return "listen", "?", "?"
    opened = bound if isinstance(bound, dict) else {}
    order: list[tuple[str, str, str | None]] = [
        (p, "listen", sc.listen) for p in ("udp", "tcp") if sc.listen and p in sc.protocols
    ]
    if sc.tls_listen:
        order.append(("tls", "tls_listen", sc.tls_listen))
    for proto, key, address in order:
        if proto not in opened:
            return key, proto, address or "?"
    return "listen", "/".join(sc.protocols), sc.listen or sc.tls_listen or "?"


def source_error(
    config: Config, by_index: Mapping[int, Source], src: Source | None, exc: OSError
) -> NodeError:
    """A source (``src``, one of ``by_index``: config index -> source) could not listen."""
    index = next((i for i, s in by_index.items() if s is src), None)
    if index is None:
        return NodeError(f"source {getattr(src, 'name', '?')!r}: {exc.strerror or exc}")
    key, proto, address = failed_listener(config.sources[index], getattr(src, "bound", None))
    return listen_error(config, ("sources", index, key), proto, address, exc)


def bind_api_socket(config: Config) -> socket.socket:
    """The API's listening socket, bound here rather than by uvicorn: uvicorn reports a failed
    bind by logging it and calling ``sys.exit`` inside its task, far from the configuration."""
    host, _, port_text = config.http.listen.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except ValueError as exc:
        raise NodeError(
            f"{where(config, ('http', 'listen'), config.http.listen)}: "
            f"{config.http.listen!r} is not HOST:PORT"
        ) from exc
    except OSError as exc:
        raise listen_error(config, ("http", "listen"), "tcp", config.http.listen, exc) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise listen_error(config, ("http", "listen"), "tcp", config.http.listen, exc) from exc
    return sock


# -- one collecting node per data directory ------------------------------------------------
class DataDirLock:
    """``<data_dir>/node.lock``, held while this process runs the collectors (see the module
    docstring for who takes it). The file says who holds it, for the refusal's message."""

    def __init__(self, config: Config, role: str) -> None:
        self.config = config
        self.role = role
        self.path = config.data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> DataDirLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise NodeError(
                f"{self.config.path}: node.data_dir {self.config.data_dir}: cannot use it: "
                f"{exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise NodeError(f"cannot lock {self.path}: {exc.strerror}") from exc
            raise NodeError(
                f"another node already runs on the data directory {self.config.data_dir} "
                f"(node.data_dir of {self.config.path}): {holder}. Stop it first, or give this "
                "one its own node.data_dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} (logfactory {self.role} -c {self.config.path})\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        """Unlock and close; the file stays (deleting it could race with a starting node)."""
        f, self._file = self._file, None
        if f is not None:
            with contextlib.suppress(OSError):
                f.truncate(0)
            f.close()
