"""``GET /api/v1/audit``: the audit trail, searchable, for admins; there is no route that
changes or deletes a line of it (and the store refuses to, see
:mod:`logfactory.access.store`).

Each line says who (``actor``: ``user:alice``, ``token:<id>``, ``local:root`` for the CLI on the
node's machine, ``node``), what (``action``: login, login_failed, logout, token_new_address,
token_created, token_revoked, token_expiry_changed, user_created, user_changed, user_removed,
password_changed, pattern_reviewed, admin_created, store_exported), on what (``target``),
when, from where (``address``) and how it ended (``outcome``: ok or refused), with details.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from logfactory.access import Role
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.responses import error_response

__all__ = ["parse_time", "router"]

#: the largest sequence number SQLite holds; a larger ``before`` is a 422, not an overflow
_MAX_SEQ = 2**63 - 1


def parse_time(text: str) -> float:
    """Seconds since the epoch from ISO 8601 (``2026-12-06T09:00:00Z``) or a number."""
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z or +HH:MM")
    return moment.timestamp()


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """The audit route of the node ``ctx`` describes."""
    api = APIRouter()
    store = ctx.access

    @api.get(
        "/api/v1/audit",
        dependencies=[Depends(state.auth.requires(Role.ADMIN))],
        responses={400: {"description": "a time that is not ISO 8601 with a zone"}},
    )
    async def audit_trail(
        actor: str | None = Query(None, description="e.g. user:alice, token:3f2a9c01b7de"),
        action: str | None = Query(None, description="e.g. login_failed, pattern_reviewed"),
        since: str | None = Query(None, description="ISO 8601 time (with a zone) or epoch s"),
        until: str | None = Query(None, description="ISO 8601 time (with a zone) or epoch s"),
        q: str | None = Query(
            None, max_length=200, description="substring of target, address, actor or details"
        ),
        before: int | None = Query(
            None, ge=1, le=_MAX_SEQ, description="only lines older than this seq"
        ),
        limit: int = Query(100, ge=1, le=1000),
    ) -> Response:
        """Audit lines, newest first; page with ``before`` = the last line's ``seq``."""
        try:
            start = parse_time(since) if since else None
            end = parse_time(until) if until else None
        except ValueError as exc:
            return error_response(400, f"since/until: {exc}")

        def read() -> list[dict[str, object]]:
            lines = store.audit_trail(
                actor=actor,
                action=action,
                since=start,
                until=end,
                text=q,
                before=before,
                limit=limit,
            )
            return [line.as_json() for line in lines]

        return JSONResponse({"entries": await run_in_threadpool(read)})

    return api
