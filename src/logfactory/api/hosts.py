"""The ``Host`` allow-list: which names this node answers to, against DNS rebinding.

A page on ``evil.example`` can make its name resolve to ``127.0.0.1`` once the page has loaded
(DNS rebinding); its scripts then call this node as their own origin, past the browser's
same-origin rule, from inside the visitor's network. The browser still sends the name the page
was loaded from: ``Host: evil.example``. Answering only the names the node is meant to be
reached by closes that door for every route, the ones that need no credential included.

What is allowed (``http.allowed_hosts``, see :meth:`HostAllowList.from_config`):

* the configured entries: ``name`` (any port) or ``name:port`` (``:80`` and ``:443`` also
  match a ``Host`` without a port, as browsers send it for those); IPv6 addresses as
  ``[::1]`` (or bare, ``::1``); ``*`` turns the check off;
* with no entries, the defaults: the listen address as written (``0.0.0.0`` too: the node's
  banner prints its URLs with it), ``localhost``, ``127.0.0.1``, ``[::1]``, and, when the node
  listens on every interface (``0.0.0.0``, ``::``), this machine's host name, its fully
  qualified name and the addresses that name resolves to; any port;
* always, an IP address the connection itself arrived at (the socket's local address): a
  browser sends an IP literal only for a page loaded from that address, which is this node's
  own origin, so no rebinding can produce it. A load balancer probing ``http://10.0.0.5:8080/``
  therefore passes wherever the node listens, whatever the list says.

Names compare case-insensitively and without a trailing dot (``Node.Example.`` is
``node.example``); IP addresses by value (``[0:0::1]`` is ``[::1]``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from logfactory.config.node import HttpConfig

__all__ = [
    "LOOPBACK_NAMES",
    "HostAllowList",
    "canonical_host",
    "listen_host",
    "shown",
    "split_host",
]

#: always among the defaults: a node is reachable from its own machine by these
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_WILDCARDS = ("", "0.0.0.0", "[::]")
_DEFAULT_PORTS = ("80", "443")  # http's and https's


def canonical_host(name: str) -> str:
    """``name`` as the allow-list stores it: lower case, no trailing dot, an IP address in its
    one spelling (IPv6 in brackets, compressed; an IPv4-mapped IPv6 address as IPv4)."""
    name = name.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return name
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ip.ipv4_mapped) if ip.ipv4_mapped else f"[{ip.compressed}]"
    return str(ip)


def split_host(value: str) -> tuple[str, str] | None:
    """A ``Host`` value -> (name, port) with ``port`` ``""`` when absent; None when it is not
    ``name[:port]`` or ``[v6][:port]`` (a bare IPv6 address is not a valid ``Host``)."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if rest and rest[0] != ":":
            return None
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
    if port and not (port.isdigit() and port.isascii()):
        return None
    return name, port


def listen_host(listen: str) -> str:
    """The host part of ``http.listen`` (``HOST:PORT``), canonical; ``""`` for every interface."""
    host = listen.rpartition(":")[0] if ":" in listen else listen
    return canonical_host(host) if host else ""


def _machine_names() -> list[str]:
    """This machine's host name, fully qualified name and the addresses the name resolves to
    (resolved once, when the app is made; a name that does not resolve adds no address)."""
    name = socket.gethostname()
    names = [name, socket.getfqdn()]
    with contextlib.suppress(OSError, UnicodeError):
        names += [str(info[4][0]) for info in socket.getaddrinfo(name, None)]
    return names


def _server_ip(server: Any) -> str | None:
    """The connection's local address from the ASGI scope's ``server``, canonical; None for a
    Unix socket or a name (a test client's ``testserver`` is a name, not an address)."""
    if not isinstance(server, list | tuple) or not server or not isinstance(server[0], str):
        return None
    host = canonical_host(server[0])
    return host if host[:1] == "[" or host[:1].isdigit() else None


class HostAllowList:
    """Whether a request's ``Host`` is one this node answers (see the module docstring)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.any_port: set[str] = set()
        self.with_port: set[tuple[str, str]] = set()
        for entry in entries:
            entry = entry.strip()
            if entry.count(":") > 1 and not entry.startswith("["):  # a bare IPv6 address
                self.any_port.add(canonical_host(entry))
                continue
            parts = split_host(entry)
            if parts is None:
                continue  # the configuration check reports it; it can match nothing
            name, port = parts
            if port:
                self.with_port.add((canonical_host(name), port))
                if port in _DEFAULT_PORTS:  # browsers leave a scheme's own port out of Host
                    self.with_port.add((canonical_host(name), ""))
            else:
                self.any_port.add(canonical_host(name))

    @classmethod
    def from_config(
        cls, http: HttpConfig, machine_names: Sequence[str] | None = None
    ) -> HostAllowList | None:
        """The list ``http`` asks for; None when it contains ``*`` (every host is answered).
        ``machine_names`` stands for this machine's names (tests); looked up when needed."""
        if http.allowed_hosts:
            entries = list(http.allowed_hosts)
        else:
            listening = listen_host(http.listen)  # 0.0.0.0 too: the banner's URL says it
            entries = [*LOOPBACK_NAMES, listening] if listening else list(LOOPBACK_NAMES)
            if listening in _WILDCARDS:
                entries += _machine_names() if machine_names is None else machine_names
        return None if "*" in entries else cls(entries)

    def allows(self, value: str, server: Any = None) -> bool:
        """Whether ``value`` (a ``Host`` header) is allowed on a connection whose local address
        is ``server`` (the ASGI scope's)."""
        parts = split_host(value.lower())
        if parts is None:
            return False
        name, port = parts
        if name.endswith("."):
            name = name[:-1]
        if name in self.any_port or (name, port) in self.with_port:
            return True
        if not (name[:1] == "[" or name[:1].isdigit()):
            return False
        name = canonical_host(name)  # an address spelt another way, e.g. [0:0::1]
        if name in self.any_port or (name, port) in self.with_port:
            return True
        return name == _server_ip(server)

    def refusal(self, headers: Iterable[tuple[bytes, bytes]], server: Any = None) -> str | None:
        """Why a request with these (ASGI, lower-case) headers is refused, or None."""
        values = [value for name, value in headers if name == b"host"]
        if len(values) != 1:
            if not values:
                return "the request has no Host header; send the name of this node"
            return f"the request has {len(values)} Host headers; send one"
        text = values[0].decode("latin-1")
        if self.allows(text, server):
            return None
        if not text.strip():
            return "the request's Host header is empty; send the name of this node"
        return f"host {shown(text)} is not served here; add it to http.allowed_hosts"


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for an error message, cut at ``limit`` characters (a client may send a
    header of kilobytes: the answer need not repeat it)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
