"""How the credential commands (``logfactory users``, ``tokens``, ``audit``) reach a node: over
its HTTP API, never by writing its access store.

Why the API: the same commands then manage a remote node, and every change is made, checked
(a password's length, the last admin) and audited in one place, under the credential that made
it (``token:<id>`` in the trail), exactly as a change from the console would be.

Where (:func:`connect`): ``--url``, else ``$LOGFACTORY_URL``, else the configuration's
``http.listen`` (https when it has ``tls_cert``; a wildcard address is reached on loopback).
Who: ``--token``, else ``$LOGFACTORY_TOKEN``, else the local admin token from
``<data_dir>/admin-credentials.json`` (what ``logfactory token`` prints), and that one only for
the URL derived from the configuration: the local node's secret is never sent to an address
typed by hand. TLS is always verified: against ``--ca-file``, else the system's CAs, and for the
local node's own https address also its own certificate (``http.tls_cert``).

:func:`api_options` gives each command these options; :func:`table`, :func:`iso` and
:func:`done` are how they all print.

Every failure is one line phrased for a person and exit status 1 (a configuration that cannot
work: 2, as everywhere): the API's ``{"error": ...}``, a node that does not answer (with the URL
and how to start one), a certificate that does not verify. Redirects are not followed (the
token would go along), answers are read up to a bound, and what the node or the trail says is
printed with control characters escaped, so a hostile name cannot drive the terminal.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

import click

from logfactory.config import Config

__all__ = [
    "ANSWER_LIMIT",
    "CONFIG_HELP",
    "TIMEOUT_S",
    "Api",
    "ApiRefusal",
    "api_options",
    "clean",
    "connect",
    "done",
    "iso",
    "json_option",
    "local_url",
    "print_json",
    "segment",
    "table",
]

CONFIG_HELP = "configuration file (default: $LOGFACTORY_CONFIG or ./examples/demo.yaml)"
_F = TypeVar("_F", bound=Callable[..., Any])
#: the listings' fields that hold a time (seconds since the epoch in the API)
_TIME_FIELDS = frozenset({"time", "created", "changed", "expires", "revoked"})

#: the largest answer read from a node (the longest listing, 1,000 audit lines, is far less)
ANSWER_LIMIT = 32 * 1024 * 1024
#: how long one request may take before the command gives up
TIMEOUT_S = 30.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def clean(text: object) -> str:
    """``text`` on one line with control characters escaped (``\\x1b``): what the node or the
    audit trail says may come from anyone (a failed login's user name)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def local_url(config: Config) -> str:
    """The base URL of the API that ``config``'s node serves, as a client on its machine
    reaches it."""
    if not config.http.enabled:
        raise click.ClickException(
            f"{config.path}: http.enabled is false, so this node serves no API; "
            "pass --url (or set LOGFACTORY_URL) to reach one that does"
        )
    host, _, port = config.http.listen.rpartition(":")
    host = host.strip("[]")
    host = _WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if config.http.tls_cert else "http"
    return f"{scheme}://{host}:{port}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect becomes an error: following it would carry the token to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _loopback(host: str | None) -> bool:
    if host is None or host == "localhost":
        return host is not None
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls(ca_file: str | None, own_cert: str | None) -> ssl.SSLContext:
    """A verifying client context: ``ca_file``, else the system's CAs plus, for the local
    node, its own certificate (trusted as it is, also when no CA signed it)."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if ca_file is None and own_cert is not None:
            context.load_verify_locations(cafile=own_cert)
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        name = ca_file or own_cert
        raise click.ClickException(f"cannot load the certificates of {name}: {exc}") from None
    return context


class ApiRefusal(click.ClickException):
    """The node answered with an error status: the one-line message, and for a command that
    says more (a bad query's column) the status and the decoded ``{"error": ...}`` answer."""

    def __init__(
        self, message: str, status: int, answer: object, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer
        self.retry_after = retry_after  # seconds, from a 429's or 503's Retry-After


@dataclass(frozen=True)
class Api:
    """One node's API as the CLI calls it: a base URL, an admin credential, a TLS context."""

    url: str
    token: str
    context: ssl.SSLContext | None
    config: Config | None  # the configuration the URL came from; None for --url / env
    local: bool = False  # the token is the local admin token (admin-credentials.json)

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer of ``method path``, or a :class:`click.ClickException`."""
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": "logfactory-cli",
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        # the scheme is http or https: connect() refuses any other
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self._opener().open(request, timeout=TIMEOUT_S) as answer:
                raw = answer.read(ANSWER_LIMIT + 1)
        except urllib.error.HTTPError as exc:
            with exc:  # it holds the connection open
                refusal, answer = _refusal(exc, method, path)
            if exc.code == 401 and self.local and self.config is not None:
                refusal += (
                    "; the local admin token no longer works: `logfactory token --renew "
                    f"-c {self.config.path}` makes a new one"
                )
            raise ApiRefusal(refusal, exc.code, answer, _retry_after(exc)) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise click.ClickException(self._unreachable(exc)) from None
        if len(raw) > ANSWER_LIMIT:
            raise click.ClickException(f"{self.url} answered more than {ANSWER_LIMIT} bytes")
        try:
            return json.loads(raw)
        except ValueError:
            raise click.ClickException(
                f"{self.url}{path} answered something that is not JSON: is it a logfactory node?"
            ) from None

    def _opener(self) -> urllib.request.OpenerDirector:
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if _loopback(urllib.parse.urlsplit(self.url).hostname):
            handlers.append(urllib.request.ProxyHandler({}))  # a proxy cannot reach our loopback
        if self.context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.context))
        return urllib.request.build_opener(*handlers)

    def _unreachable(self, exc: BaseException) -> str:
        """What to say when no answer came from the node."""
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ssl.SSLCertVerificationError):
            return (
                f"cannot verify the certificate of {self.url}: {reason.verify_message}; pass "
                "--ca-file with the certificate of the CA that signed it (or the node's own)"
            )
        if isinstance(reason, ssl.SSLError):
            return f"TLS with {self.url} failed ({reason.reason}): does the node serve https?"
        if isinstance(reason, ConnectionRefusedError):
            start = (
                f"logfactory run -c {self.config.path}"
                if self.config is not None
                else "logfactory run -c CONFIG"
            )
            return (
                f"no node answers at {self.url} (connection refused): start one with `{start}` "
                "(or `serve`), or point --url / LOGFACTORY_URL at a running node"
            )
        if isinstance(reason, TimeoutError):
            return f"no answer from {self.url} within {TIMEOUT_S:.0f} s"
        if isinstance(reason, http.client.HTTPException | ConnectionResetError):
            return f"{self.url} gave no HTTP answer ({type(reason).__name__}): does it serve https?"
        return f"cannot reach {self.url}: {clean(reason)}"


def _refusal(exc: urllib.error.HTTPError, method: str, path: str) -> tuple[str, object]:
    """The node's ``{"error": ...}`` (or FastAPI's ``{"detail": ...}``) as one line, and the
    decoded answer (``None`` when it was not JSON)."""
    if 300 <= exc.code < 400:
        where = exc.headers.get("Location", "?")
        return f"the node redirects {path} to {clean(where)}: pass that base URL with --url", None
    try:
        answer = json.loads(exc.read(64 * 1024))
    except (OSError, ValueError, http.client.HTTPException):
        answer = None
    message: object = exc.reason
    if isinstance(answer, dict) and "error" in answer:
        message = answer["error"]
    elif isinstance(answer, dict) and isinstance(answer.get("detail"), list):
        message = "; ".join(_detail(d) for d in answer["detail"])
    return f"{clean(message)} ({method} {path}: HTTP {exc.code})", answer


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    """A refusal's ``Retry-After`` in seconds (``None`` when absent or an HTTP date)."""
    try:
        return max(0.0, float(exc.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _detail(item: object) -> str:
    """One of FastAPI's validation problems: ``query.limit: Input should be ...``."""
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(x) for x in item.get("loc", []))
    return f"{where}: {item.get('msg', '?')}"


def connect(
    config_path: str | None, url: str | None, token: str | None, ca_file: str | None
) -> Api:
    """The API the options and environment name, with its credential (see the module
    docstring for the order in which each is looked for)."""
    from logfactory.access.bootstrap import LocalCredentialError, local_token
    from logfactory.subscribe import find_config

    url = url or os.environ.get("LOGFACTORY_URL") or None
    token = token or os.environ.get("LOGFACTORY_TOKEN") or None
    config = None
    if url is None:
        config = find_config(config_path)
        url = local_url(config)
    base = url.rstrip("/")
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{clean(base)!r} is not an http(s) URL, e.g. https://logs.example.org:8443",
            param_hint="'--url' / LOGFACTORY_URL",
        )
    local = token is None
    if token is None:
        if config is None:
            raise click.ClickException(
                f"no credential for {base}: pass --token or set LOGFACTORY_TOKEN (the local "
                "admin token is only sent to the node of -c CONFIG)"
            )
        try:
            token = local_token(config.data_dir)
        except LocalCredentialError as exc:
            raise click.ClickException(f"{exc}; or pass --token / set LOGFACTORY_TOKEN") from None
    if not token.isprintable():
        raise click.BadParameter("a token is one line of printable text", param_hint="'--token'")
    own_cert = config.http.tls_cert if config is not None else None
    context = _tls(ca_file, own_cert) if parts.scheme == "https" else None
    if parts.scheme == "http" and not _loopback(parts.hostname):
        click.echo(
            f"Warning: the token goes to {clean(parts.hostname)} in clear text (http): anyone "
            "on the way can read it; give the node a certificate (http.tls_cert) and use https",
            err=True,
        )
    return Api(base, token, context, config, local)


# -- what the commands share: their options, and how they print -----------------------------
def api_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-c``, ``--url``, ``--token``, ``--ca-file``: the command gets ``api`` in their place."""

    @wraps(command)
    def with_api(
        *args: Any,
        config_path: str | None,
        url: str | None,
        token: str | None,
        ca_file: str | None,
        **kwargs: Any,
    ) -> Any:
        api = connect(config_path, url, token, ca_file)
        try:
            return command(*args, api=api, **kwargs)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:  # an answer's shape
            raise click.ClickException(
                f"{api.url} answered in a shape this command does not know ({clean(repr(exc))}): "
                "is it a logfactory node of this version?"
            ) from None

    options = [
        click.option("-c", "--config", "config_path", default=None, help=CONFIG_HELP),
        click.option(
            "--url",
            default=None,
            help="the node's API, e.g. https://logs.example.org:8443 (default: "
            "$LOGFACTORY_URL, else http.listen of the configuration)",
        ),
        click.option(
            "--token",
            default=None,
            help="an API token with the role the command needs (search: viewer; users, tokens, "
            "audit: admin); other users see it in ps, so prefer $LOGFACTORY_TOKEN "
            "(default: that, else the local node's, as `logfactory token` prints it)",
        ),
        click.option(
            "--ca-file",
            type=click.Path(dir_okay=False),
            default=None,
            help="CA certificates (PEM) to verify an https node with (default: the system's, "
            "and the local node's own certificate)",
        ),
    ]
    for option in reversed(options):
        with_api = option(with_api)
    return with_api


def json_option(what: str) -> Callable[[_F], _F]:
    """``--json``: for programs, in place of the table."""
    return click.option("--json", "as_json", is_flag=True, help=f"print {what} as JSON")


def iso(seconds: float | None, never: str = "never") -> str:
    """ISO 8601 in UTC to the second, as lists show times."""
    if seconds is None:
        return never
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns as wide as their widest cell (the last one as long as it is)."""
    cells = [[clean(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        click.echo("  ".join([*padded, row[-1]]).rstrip())


def print_json(value: object) -> None:
    """``value`` (the node's answer: a listing, or a list of them) as JSON, its times ISO 8601
    in UTC to the microsecond where the API gives seconds since the epoch, every character
    beyond ASCII escaped (so no C1 control reaches a terminal either)."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            for key in _TIME_FIELDS & item.keys():
                when = item[key]
                if isinstance(when, int | float) and not isinstance(when, bool):
                    stamp = datetime.fromtimestamp(when, tz=UTC)
                    item[key] = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    click.echo(json.dumps(value, indent=2))


def done(text: str) -> None:
    """What a change did, on stderr: stdout stays for what a script reads."""
    click.echo(clean(text), err=True)


def segment(text: str) -> str:
    """``text`` as one path segment of a URL."""
    return urllib.parse.quote(text, safe="")
