"""The node's HTTP API: health, stats, Prometheus metrics, HTTP ingest and SSE subscriptions.

It runs inside the node process's asyncio loop (under uvicorn), next to the collectors, so it
must never block that loop: every bus or file access runs in a worker thread. Each resource's
routes are a router of their own in :mod:`logfactory.api.routes`, built from the node's
:class:`~logfactory.api.context.NodeContext` and the API's shared state; who may call them is
checked by dependencies from :mod:`logfactory.api.auth`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from logfactory.access import Role
from logfactory.api import compression, safety
from logfactory.api.auth import Authenticator, required_role
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.routes import (
    audit,
    docs,
    health,
    ingest,
    patterns,
    search,
    session,
    stats,
    subscribe,
    tokens,
    topics,
    users,
)

__all__ = ["ROUTE_MODULES", "create_app"]

#: every route module, in the order their routes appear in ``/openapi.json`` and the docs
ROUTE_MODULES: tuple[ModuleType, ...] = (
    health,
    stats,
    ingest,
    subscribe,
    topics,
    patterns,
    search,
    session,
    users,
    tokens,
    audit,
    docs,
)


def create_app(ctx: NodeContext) -> FastAPI:
    """The API for one node; routes are listed in docs/http-api.md."""
    state = ApiState(ctx.registry, Authenticator(ctx.access, ctx.config), ctx.config.http)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await run_in_threadpool(state.close)  # the store's reader, if a search opened it

    app = FastAPI(
        lifespan=lifespan,
        title="logfactory",
        summary="Raw logs in, typed events out: ingest, subscriptions, metrics, log search.",
        docs_url=None,  # /docs and /redoc come from routes.docs, served without a CDN
        redoc_url=None,
        openapi_url=None,  # routes.docs serves it too, behind a credential
    )
    app.state.api = state
    safety.install(app, ctx.config.http, ctx.registry)  # Host, secure headers, CORS, 415
    compression.install(app)  # zstd or gzip as accepted; never SSE
    for module in ROUTE_MODULES:
        router = module.router(ctx, state)
        _declare_refusals(router)
        app.include_router(router)
    return app


def _route_role(dependant: Dependant) -> Role | None:
    """The role the route of ``dependant`` requires (found among its dependencies), or None."""
    for dep in dependant.dependencies:
        role = required_role(dep.call) or _route_role(dep)
        if role is not None:
            return role
    return None


def _declare_refusals(router: APIRouter) -> None:
    """Every route that needs a role says so in the OpenAPI description (and the endpoint
    reference made from it): its 401 and 403, written once here rather than on each route."""
    for route in router.routes:
        if isinstance(route, APIRoute) and (role := _route_role(route.dependant)) is not None:
            route.responses.setdefault(
                401, {"description": "no credential, or one this node does not know"}
            )
            route.responses.setdefault(
                403, {"description": f"needs the role {role} (or above); or a scoped token"}
            )
