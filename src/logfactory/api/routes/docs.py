"""The API's own documentation, served by the node itself: ``/docs``, ``/redoc`` and ``/``.

FastAPI's default pages load Swagger UI, ReDoc, a favicon and Google Fonts from CDNs, so on a
site without internet access (most log collection networks) they stay blank. Here the same pages
(FastAPI's own HTML builders) point at files the node serves from ``/docs/static/``: Swagger UI's
and ReDoc's release bundles as shipped by the ``fastapi-offline`` wheel, so a ``pip install`` is
all the node needs. Only the static files come from that package; the routes are ours, and so
is ``/openapi.json`` (the app is built with ``openapi_url=None``): every page here needs the
role ``viewer``, like the data it describes.

The static files hold no data of the node (they are the same for every installation), which is
why they stay public: the login page's browser may load them before it has a credential.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from logfactory.access import Role
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.safety import BASE_POLICY

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "STATIC_PREFIX",
    "page_policy",
    "router",
    "static_dir",
]

STATIC_PREFIX = "/docs/static"
# Swagger UI asks validator.swagger.io to grade the spec unless told not to: a request to the
# internet from every page view, and a broken badge without it.
_SWAGGER_PARAMETERS = {"validatorUrl": None}
# The browser enforces what the HTML alone cannot: ReDoc's bundle fetches its maker's logo from
# cdn.redoc.ly for the menu's footer (hidden when it fails to load). Every load stays on this
# node (the API's own policy, BASE_POLICY, plus what these pages need): FastAPI starts Swagger
# UI with an inline script, allowed by its hash (page_policy) so that no other inline script
# runs; both pages style themselves at run time (inline styles, which cannot be hashed ahead),
# and ReDoc's search runs in a blob: worker.
CONTENT_SECURITY_POLICY = (
    f"{BASE_POLICY}; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def static_dir() -> Path:
    """The directory of the installed ``fastapi_offline`` package's Swagger UI and ReDoc files."""
    return Path(str(files("fastapi_offline") / "static"))


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """``/``, ``/docs``, ``/redoc`` and their static files, for an app built with
    ``docs_url=None, redoc_url=None`` (FastAPI's CDN-backed pages would otherwise win)."""
    api = APIRouter()
    api.mount(STATIC_PREFIX, StaticFiles(directory=static_dir()), name="docs-static")
    node_name = ctx.config.node.name
    viewer = [Depends(state.auth.requires(Role.VIEWER))]

    def openapi_url(request: Request) -> str:
        return str(getattr(request.app, "openapi_url", None) or "/openapi.json")

    def title(request: Request) -> str:
        return str(getattr(request.app, "title", "logfactory"))

    def prefix(request: Request) -> str:
        # behind a proxy that mounts the node under a path, links must keep that path
        return str(request.scope.get("root_path", "")).rstrip("/")

    @api.get("/openapi.json", include_in_schema=False, dependencies=viewer)
    def openapi(request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    @api.get("/", include_in_schema=False, dependencies=viewer)
    def index(request: Request) -> HTMLResponse:
        """Where a person who types the node's address lands (until the console exists)."""
        return HTMLResponse(index_html(node_name, prefix(request)))  # the API's own policy

    @api.get("/docs", include_in_schema=False, dependencies=viewer)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url(request),
            title=f"{title(request)} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PREFIX}/favicon.png",
            swagger_ui_parameters=_SWAGGER_PARAMETERS,
        )
        return confined(page)

    @api.get("/redoc", include_in_schema=False, dependencies=viewer)
    def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_redoc_html(
            openapi_url=root + openapi_url(request),
            title=f"{title(request)} - ReDoc",
            redoc_js_url=f"{root}{STATIC_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
        return confined(page)

    return api


def page_policy(body: bytes) -> str:
    """:data:`CONTENT_SECURITY_POLICY` allowing the inline scripts of ``body`` by their SHA-256
    (the page is made per request: its spec URL follows the proxy's path prefix)."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(body)
    )
    return CONTENT_SECURITY_POLICY.replace("script-src 'self'", f"script-src 'self'{hashes}", 1)


def confined(page: HTMLResponse) -> HTMLResponse:
    """``page`` with the policy that keeps every load it makes on this node."""
    page.headers["Content-Security-Policy"] = page_policy(bytes(page.body))
    return page


def index_html(node_name: str, root: str = "") -> str:
    """A plain page with links to the API's documentation and health (no script, no styles)."""
    links = [
        ("/docs", "API reference (Swagger UI): try the routes from the browser"),
        ("/redoc", "API reference (ReDoc): the same, for reading"),
        ("/api/v1/health", "health: 200 when every process of the node reports"),
    ]
    items = "\n".join(
        f'<li><a href="{html.escape(root + path)}">{path}</a> — {html.escape(text)}</li>'
        for path, text in links
    )
    name = html.escape(node_name)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{name} - logfactory</title></head>\n'
        f"<body><h1>logfactory node {name}</h1>\n<ul>\n{items}\n</ul></body></html>\n"
    )
