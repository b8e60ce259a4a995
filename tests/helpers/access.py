"""Credentials for the API tests: users with known passwords, login sessions as a browser holds
them, and what a request must carry to use one.

A session is a ``(session id, CSRF token)`` pair; :func:`session_headers` turns it into the
``Cookie`` (and, for a write, ``X-CSRF-Token``) a browser would send, so a test can switch
between credentials per request without touching the client's cookie jar.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

from tests.helpers.clients import TestClient

from logfactory.access import Role
from logfactory.access.store import AccessStore

__all__ = [
    "PASSWORD",
    "count_rows",
    "login",
    "new_user",
    "open_session",
    "session_headers",
]

#: the password :func:`new_user` gives unless told otherwise (long enough for the rules)
PASSWORD = "correct horse battery staple"


def new_user(store: AccessStore, role: Role, name: str | None = None) -> str:
    """A new user of ``role`` whose password is :data:`PASSWORD`; its name."""
    name = name or f"{role}-{secrets.token_hex(3)}"
    store.add_user(name, role, PASSWORD)
    return name


def open_session(store: AccessStore, user: str, lifetime_s: float = 3600.0) -> tuple[str, str]:
    """``(session id, csrf token)`` of a new login of ``user``, made in the store directly (no
    Argon2 check: for tests about what a session may do, not about logging in)."""
    sid, csrf, _ = store.open_session(user, lifetime_s, "192.0.2.9")
    return sid, csrf


def session_headers(session: tuple[str, str], *, write: bool = False) -> dict[str, str]:
    """The headers a browser holding ``session`` sends (with the CSRF token on a write)."""
    sid, csrf = session
    headers = {"Cookie": f"lf_session={sid}"}
    if write:
        headers["X-CSRF-Token"] = csrf
    return headers


def login(client: TestClient, user: str, password: str = PASSWORD) -> tuple[str, str]:
    """Log in through the API; ``(session id, csrf token)`` from the answer's cookie and body.
    The client's cookie jar is left empty, so later requests carry only what they say."""
    answer = client.post("/api/v1/auth/login", json={"user": user, "password": password})
    assert answer.status_code == 200, answer.text
    sid = answer.cookies["lf_session"]
    client.cookies.clear()
    return sid, str(answer.json()["csrf_token"])


def count_rows(path: Path, table: str) -> int:
    """Rows of ``table`` in the access store at ``path``, read through a connection of its own."""
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        db.close()
