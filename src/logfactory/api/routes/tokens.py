"""``/api/v1/tokens``: API tokens, managed by admins.

A token has a name (what it is for: ``edge web01``, ``grafana``), a role, optional scopes, an
optional expiry, and its secret, shown once in the answer that creates it and stored only as a
hash. Scopes narrow a token below its role: ``type:JOB_STATUS`` (it may subscribe to that
event type only), ``topic:logs.parsed`` (it may read that topic only); an admin token takes
none, since it could create itself an unscoped token. Revoking is for good; a
token is never deleted, so the audit trail's ``token:<id>`` always names something listable.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from logfactory.access import Principal, Role
from logfactory.access.store import TokenInfo
from logfactory.api.auth import client_address
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.expiry import expiry, new_end
from logfactory.api.json_body import read_json
from logfactory.api.responses import error_response
from logfactory.errors import RequestRefused
from logfactory.topics import event_types

__all__ = ["router", "scope_problem"]

# matched whole (fullmatch): "$" would let a trailing line break through
_TOKEN_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,200}")
_UNKNOWN = {"description": "no such token"}


class NewToken(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: Role
    expires_in: str | float | None = None
    scopes: list[str] = []


class TokenChange(msgspec.Struct, forbid_unknown_fields=True):
    expires_in: str | float


def scope_problem(scope: str, known_types: list[str]) -> str | None:
    """Why ``scope`` is not a scope, or None."""
    kind, _, value = scope.partition(":")
    if kind == "type" and value in known_types:
        return None
    if kind == "topic" and _TOPIC.fullmatch(value):
        return None
    return (
        f"{scope!r} is not a scope: write type:EVENT_TYPE (one of {', '.join(known_types)}) "
        "or topic:TOPIC"
    )


def new_token_problem(body: NewToken, known_types: list[str]) -> str | None:
    """Why ``body`` cannot be a token, or None."""
    if not _TOKEN_NAME.fullmatch(body.name):
        return "a token's name is 1-100 printable characters"
    if len(body.scopes) > 100:
        return "at most 100 scopes"
    if body.scopes and body.role is Role.ADMIN:
        # scopes narrow what a token reads; an admin token could mint itself one without them
        return (
            "an admin token cannot be scoped (it could make an unscoped token); give scopes "
            "to a viewer, operator or ingest token"
        )
    return next((p for p in (scope_problem(s, known_types) for s in body.scopes) if p), None)


def end_time(expires_in: str | float) -> float:
    """When a token changed with ``expires_in`` ends (``0s``: now), or RequestRefused."""
    try:
        return new_end(expires_in, time.time())
    except ValueError as exc:
        raise RequestRefused(400, str(exc)) from None


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """The token routes of the node ``ctx`` describes."""
    api = APIRouter()
    store = ctx.access
    needs_admin = state.auth.requires(Role.ADMIN)
    known = sorted(event_types(ctx.config))

    @api.get("/api/v1/tokens", dependencies=[Depends(needs_admin)])
    def list_tokens() -> list[dict[str, object]]:
        """Every token, oldest first, revoked and expired ones too (never a secret)."""
        return [t.as_json() for t in store.tokens()]

    @api.post(
        "/api/v1/tokens",
        status_code=201,
        responses={400: {"description": "a bad name, role, expiry or scope"}},
    )
    async def create_token(request: Request, caller: Principal = Depends(needs_admin)) -> Response:
        """A new token; the answer's ``token`` is the only time its secret is shown."""
        body = await read_json(request, NewToken)
        problem = new_token_problem(body, known)
        if problem:
            return error_response(400, problem)
        try:
            expires = expiry(body.expires_in, time.time())
        except ValueError as exc:
            return error_response(400, str(exc))

        def create() -> tuple[str, TokenInfo]:
            token, info = store.create_token(
                body.name, body.role, caller.key, expires=expires, scopes=body.scopes
            )
            store.audit(
                caller.key,
                "token_created",
                target=f"token:{info.id}",
                address=client_address(request),
                detail={"name": info.name, "role": str(info.role), "scopes": list(info.scopes)},
            )
            return token, info

        token, info = await run_in_threadpool(create)
        return JSONResponse({"token": token, **info.as_json()}, status_code=201)

    @api.patch(
        "/api/v1/tokens/{token_id}", responses={400: {"description": "a bad expiry"}, 404: _UNKNOWN}
    )
    async def change_token(
        token_id: str, request: Request, caller: Principal = Depends(needs_admin)
    ) -> Response:
        """Set when a token expires (``expires_in``: ``0s`` ends it now, ``30d`` in 30 days)."""
        body = await read_json(request, TokenChange)
        when = end_time(body.expires_in)
        return await _changed(
            store.expire_token, token_id, when, "token_expiry_changed", caller, request
        )

    @api.delete("/api/v1/tokens/{token_id}", responses={404: _UNKNOWN})
    async def revoke_token(
        token_id: str, request: Request, caller: Principal = Depends(needs_admin)
    ) -> Response:
        """Revoke a token for good: the next request with it gets 401."""
        return await _changed(store.revoke_token, token_id, None, "token_revoked", caller, request)

    async def _changed(
        change: Callable[..., TokenInfo | None],
        token_id: str,
        when: float | None,
        action: str,
        caller: Principal,
        request: Request,
    ) -> Response:
        """``change(token_id[, when])`` in a worker thread, audited; 404 for no such token."""

        def work() -> TokenInfo | None:
            info = change(token_id, when) if when is not None else change(token_id)
            if info is not None:
                detail = {"name": info.name, "expires": info.expires}
                store.audit(
                    caller.key,
                    action,
                    target=f"token:{token_id}",
                    address=client_address(request),
                    detail=detail,
                )
            return info

        info = await run_in_threadpool(work)
        if info is None:
            return error_response(404, f"no token {token_id!r}")
        return JSONResponse(info.as_json())

    return api
