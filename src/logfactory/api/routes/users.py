"""``/api/v1/users``: the console's users, managed by admins.

A user has a name, one role, an Argon2id password hash (never shown, never logged), an optional
expiry and a disabled flag. Changing a user's password, role or standing ends their sessions.
The last active admin user cannot be removed, disabled or demoted: an admin must always be
able to log in (the local admin token, ``logfactory token --renew``, is the other way back).
Every change is in the audit trail with who made it and from where.
"""

from __future__ import annotations

import time

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from logfactory.access import Principal, Role
from logfactory.access.credentials import USER_NAME, password_problem
from logfactory.access.store import AccessStore, LastAdminError, UserInfo
from logfactory.api.auth import client_address
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.expiry import expiry
from logfactory.api.json_body import read_json
from logfactory.errors import RequestRefused

__all__ = ["add_user", "apply_change", "remove", "router"]

_UNKNOWN = {"description": "no such user"}
_BAD_NAME = "a user name is 1-64 letters, digits or . _ @ + -"
_LAST = "{name!r} is the last active admin; make another admin first"


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: Role
    password: str
    expires_in: str | float | None = None


class UserChange(msgspec.Struct, forbid_unknown_fields=True):
    role: Role | None = None
    password: str | None = None
    disabled: bool | None = None
    expires_in: str | float | None = None
    never_expires: bool = False


def _last_admin(store: AccessStore, name: str) -> bool:
    """Whether ``name`` is the only active admin user."""
    now = time.time()
    admins = [u for u in store.users() if u.role is Role.ADMIN and u.active(now)]
    return [u.name for u in admins] == [name]


def _refuse(status: int, message: str | None) -> None:
    if message:
        raise RequestRefused(status, message)


def add_user(store: AccessStore, body: NewUser, caller: Principal, address: str) -> UserInfo:
    """Create the user ``body`` describes (in a worker thread), or :class:`RequestRefused`."""
    _refuse(400, None if USER_NAME.fullmatch(body.name) else _BAD_NAME)
    _refuse(400, password_problem(body.password))
    try:
        expires = expiry(body.expires_in, time.time())
        store.add_user(body.name, body.role, body.password, expires)
    except ValueError as exc:  # a bad expiry, or a name taken
        raise RequestRefused(409 if "exists" in str(exc) else 400, str(exc)) from None
    store.audit(
        caller.key,
        "user_created",
        target=body.name,
        address=address,
        detail={"role": str(body.role), "expires": expires},
    )
    return store.user(body.name) or _gone(body.name)


def _gone(name: str) -> UserInfo:
    raise RequestRefused(404, f"no user {name!r}")


def _new_expiry(body: UserChange) -> float | bool | None:
    """The change's expiry: a time, None (never) or False (unchanged)."""
    if body.never_expires and body.expires_in is not None:
        raise RequestRefused(400, "give expires_in or never_expires, not both")
    if body.never_expires:
        return None
    if body.expires_in is None:
        return False
    try:
        return expiry(body.expires_in, time.time())
    except ValueError as exc:
        raise RequestRefused(400, str(exc)) from None


def apply_change(
    store: AccessStore, name: str, body: UserChange, caller: Principal, address: str
) -> UserInfo:
    """Make the change (in a worker thread), or :class:`RequestRefused` (a bad password or
    expiry, no such user, or the change would leave no active admin)."""
    if body.password is not None:
        _refuse(400, password_problem(body.password))
    expires = _new_expiry(body)
    # an end date for the only admin is refused too: they would lock everyone out on that day
    if isinstance(expires, float) and _last_admin(store, name):
        raise RequestRefused(409, _LAST.format(name=name))
    try:
        user = store.change_user(
            name, role=body.role, password=body.password, disabled=body.disabled, expires=expires
        ) or _gone(name)
    except LastAdminError as exc:  # checked in the change's own transaction (no race)
        raise RequestRefused(409, str(exc)) from None
    changed = [k for k in ("role", "password", "disabled") if getattr(body, k) is not None]
    if expires is not False:
        changed.append("expires")
    store.audit(
        caller.key,
        "user_changed",
        target=name,
        address=address,
        detail={"changed": changed, "role": str(user.role), "disabled": user.disabled},
    )
    return user


def remove(store: AccessStore, name: str, caller: Principal, address: str) -> None:
    """Remove the user (in a worker thread), or :class:`RequestRefused`."""
    try:
        removed = store.remove_user(name)
    except LastAdminError as exc:
        raise RequestRefused(409, str(exc)) from None
    if not removed:
        _gone(name)
    store.audit(caller.key, "user_removed", target=name, address=address)


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """The user routes of the node ``ctx`` describes."""
    api = APIRouter()
    store = ctx.access
    needs_admin = state.auth.requires(Role.ADMIN)

    @api.get("/api/v1/users", dependencies=[Depends(needs_admin)])
    def list_users() -> list[dict[str, object]]:
        """Every user, by name (never a password hash)."""
        return [u.as_json() for u in store.users()]

    @api.post(
        "/api/v1/users",
        status_code=201,
        responses={
            400: {"description": "a bad name, role, expiry or password"},
            409: {"description": "the name is taken"},
        },
    )
    async def create_user(request: Request, caller: Principal = Depends(needs_admin)) -> Response:
        """A new user with a role and a password (12 characters or more)."""
        body = await read_json(request, NewUser)
        address = client_address(request)
        user = await run_in_threadpool(add_user, store, body, caller, address)
        return JSONResponse(user.as_json(), status_code=201)

    @api.patch(
        "/api/v1/users/{name}",
        responses={
            400: {"description": "a bad role, expiry or password"},
            404: _UNKNOWN,
            409: {"description": "the last admin"},
        },
    )
    async def change_user(
        name: str, request: Request, caller: Principal = Depends(needs_admin)
    ) -> Response:
        """Change a user's role, password, expiry or disabled flag; their sessions end."""
        body = await read_json(request, UserChange)
        address = client_address(request)
        user = await run_in_threadpool(apply_change, store, name, body, caller, address)
        return JSONResponse(user.as_json())

    @api.delete(
        "/api/v1/users/{name}", responses={404: _UNKNOWN, 409: {"description": "the last admin"}}
    )
    async def remove_user(
        name: str, request: Request, caller: Principal = Depends(needs_admin)
    ) -> Response:
        """Remove a user and end their sessions (the audit trail keeps what they did)."""
        await run_in_threadpool(remove, store, name, caller, client_address(request))
        return JSONResponse({"removed": name})

    return api
