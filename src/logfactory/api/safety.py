"""Browser and host safety: the ``Host`` allow-list, secure response headers, CORS, JSON bodies.

A log centre is reached by browsers (the console, the API's docs), so the API must stay safe
when a page from elsewhere makes a visitor's browser call it:

* **Host allow-list** (:mod:`logfactory.api.hosts`): a request whose ``Host`` is not one of
  this node's names is answered 400 before anything else runs (DNS rebinding). It applies to
  every route, ``/api/v1/health`` included: a probe by IP address passes anyway (the address a
  connection arrived at is always allowed), and one by name needs the name in the list.
* **Secure headers** on every answer, errors included: ``nosniff``, a Content-Security-Policy
  (:data:`BASE_POLICY`: nothing from elsewhere, never framed), ``X-Frame-Options: DENY``,
  ``Referrer-Policy: no-referrer``, ``Cross-Origin-Opener-Policy: same-origin``, and over
  HTTPS with ``http.hsts`` ``Strict-Transport-Security``. A route that sets one of them
  itself keeps its own (the docs pages allow their hashed inline script, :mod:`.routes.docs`).
* **CORS** closed unless ``http.cors_origins`` lists origins: then starlette's CORSMiddleware
  answers for exactly those, credentials allowed. A preflight from any other origin is
  answered 403 here, without CORS headers, so the browser never sends the real request.
* **JSON bodies**: :func:`require_json`, a dependency of the JSON write routes, answers 415
  unless ``Content-Type`` is ``application/json``. A cross-origin page can send without a
  preflight only ``text/plain``, form and multipart bodies ("simple requests"); refusing them
  unread is what keeps such a page from writing through a visitor's login cookie. Ingest keeps
  its own body types: it takes a bearer token, never a cookie, which a foreign page cannot add.

Each refusal adds one to ``refused_<reason>`` in the stats group ``api``
(``logfactory_api_refused_total{reason="host"|"cors"|"content_type"}`` in ``/metrics``).

Cost: one pure ASGI middleware (no request object, no extra task): a scan of the request
headers for ``Host``, and of the response headers when the answer starts; body messages (ingest
answers, SSE events) pass through untouched. The ingest path's overhead is measured by
``make bench``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from logfactory.api.auth import answer as answer_refusal
from logfactory.api.hosts import HostAllowList, shown
from logfactory.api.responses import error_response
from logfactory.config.node import HttpConfig
from logfactory.errors import RequestRefused
from logfactory.stats import StatsRegistry

__all__ = [
    "BASE_POLICY",
    "CORS_HEADERS",
    "CORS_METHODS",
    "HSTS",
    "JSON_MEDIA_TYPE",
    "REFUSAL_REASONS",
    "SECURE_HEADERS",
    "RequestRefused",
    "SafetyMiddleware",
    "install",
    "require_json",
]

#: the policy of every answer that sets none itself: loads from this node only, never framed
BASE_POLICY = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
SECURE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", BASE_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
#: a year, as the HSTS preload list asks; no includeSubDomains: other hosts are not ours
HSTS = (b"strict-transport-security", b"max-age=31536000")
#: what a listed origin's page may use (the API's methods; bearer, CSRF and SSE resume headers)
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CORS_HEADERS = ("Authorization", "Content-Type", "X-CSRF-Token", "Last-Event-ID")
JSON_MEDIA_TYPE = "application/json"
#: the refusals of this module, each a counter ``refused_<reason>`` of the group ``api``
REFUSAL_REASONS = ("host", "cors", "content_type")
STATS_GROUP = "api"
log = logging.getLogger(__name__)


async def require_json(request: Request) -> None:
    """A dependency of the routes whose body is JSON: 415 (:class:`RequestRefused`) unless the
    request's ``Content-Type`` is ``application/json`` (parameters such as ``charset`` allowed)."""
    given = request.headers.get("content-type")
    if (given or "").partition(";")[0].strip().lower() == JSON_MEDIA_TYPE:
        return
    sent = f"not {shown(given)}" if given else "none was sent"
    raise RequestRefused(
        415,
        f"send the body as JSON, with Content-Type: {JSON_MEDIA_TYPE} ({sent})",
        reason="content_type",
    )


def _with_headers(
    headers: Iterable[tuple[bytes, bytes]], extra: Sequence[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """``headers`` plus each of ``extra`` that the answer does not set itself."""
    out = list(headers)
    present = {name.lower() for name, _ in out}
    out.extend(h for h in extra if h[0] not in present)
    return out


class SafetyMiddleware:
    """The ASGI middleware of the module docstring: host check, preflights, secure headers.

    ``hosts`` None answers every ``Host``; ``origins`` are the CORS origins whose preflights
    pass on (to the CORSMiddleware inside); ``count(reason)`` records a refusal.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: HostAllowList | None,
        origins: frozenset[str],
        hsts: bool,
        count: Callable[[str], None],
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = origins
        self.count = count
        self.plain_headers = SECURE_HEADERS
        self.tls_headers = (*SECURE_HEADERS, HSTS) if hsts else SECURE_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        if self.hosts is not None:
            problem = self.hosts.refusal(scope["headers"], scope.get("server"))
            if problem is not None:
                self.count("host")
                if kind == "http":
                    await self._refuse(scope, receive, send, 400, problem)
                else:  # before the handshake: the server answers it 403
                    await send({"type": "websocket.close", "code": 1008})
                return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            problem = self._preflight_refusal(scope["headers"])
            if problem is not None:
                self.count("cors")
                await self._refuse(scope, receive, send, 403, problem)
                return
        extra = self.tls_headers if scope.get("scheme") == "https" else self.plain_headers
        started = False

        async def send_safely(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = _with_headers(message.get("headers", ()), extra)
            await send(message)

        try:
            await self.app(scope, receive, send_safely)
        except Exception:
            # starlette's last-resort 500 is sent outside this middleware, without the headers
            if not started:
                answer = error_response(500, "the node failed to answer; its log says why")
                await answer(scope, receive, send_safely)
            raise

    def _preflight_refusal(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """Why a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) is
        refused: its origin is not listed. None for a listed origin or another OPTIONS."""
        origin: bytes | None = None
        asks = False
        for name, value in headers:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                asks = True
        if origin is None or not asks:
            return None
        text = origin.decode("latin-1")
        if text in self.origins:
            return None
        return (
            f"origin {shown(text)} may not call this API from a browser; "
            "add it to http.cors_origins"
        )

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, message: str
    ) -> None:
        extra = self.tls_headers if scope.get("scheme") == "https" else self.plain_headers
        answer = error_response(status, message)
        answer.raw_headers = _with_headers(answer.raw_headers, extra)
        await answer(scope, receive, send)


async def gone(request: Request, exc: Exception) -> Response:
    """A client that hung up while its body was being read (any route that reads one:
    ingest, reviews, the JSON writes): nothing was taken, nobody is left to answer, and it
    is the client's doing, so no traceback in the node's log, just a line at debug level."""
    log.debug(
        "%s %s: the client went away before its body arrived", request.method, request.url.path
    )
    return Response(status_code=400)


def install(app: FastAPI, http: HttpConfig, registry: StatsRegistry) -> None:
    """Put this module's checks on ``app`` as ``http`` configures them; refusals count in
    ``registry`` (each reason shown from the start, at 0)."""
    registry.add_many(STATS_GROUP, **{f"refused_{r}": 0 for r in REFUSAL_REASONS})

    def count(reason: str) -> None:
        registry.add(STATS_GROUP, f"refused_{reason}")

    async def refused(request: Request, exc: Exception) -> Response:
        # in place of auth.install's handler (one per class): counts, then answers the same way
        if isinstance(exc, RequestRefused) and exc.reason is not None:
            count(exc.reason)
        return await answer_refusal(request, exc)

    app.add_exception_handler(RequestRefused, refused)
    app.add_exception_handler(ClientDisconnect, gone)
    origins = [origin.strip().lower() for origin in http.cors_origins]  # as browsers send them
    if origins:  # added first: inside the safety middleware, which answers unlisted preflights
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=("Retry-After",),
        )
    app.add_middleware(
        SafetyMiddleware,
        hosts=HostAllowList.from_config(http),
        origins=frozenset(origins),
        hsts=http.hsts,
        count=count,
    )
