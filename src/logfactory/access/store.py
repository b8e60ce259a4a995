"""The access store: users, API tokens, login sessions and the audit trail, in one SQLite file.

Why SQLite in the data directory: every process of a node on that directory (the API in
``run`` or ``serve``, the CLI's ``users`` and ``tokens``) shares it, WAL lets the API read while
another process writes, and a revoked token is refused at the very next request because every
check reads the row (a primary-key read: microseconds, cheap enough to do per request on the
event loop, where WAL readers never wait for writers).

The audit table is append-only: triggers refuse UPDATE and DELETE, and no API or CLI path
changes a row, so the trail of who logged in, reviewed or changed what cannot be edited through
logfactory (the file's owner can of course edit the file; the docs say so).

The file is created owner-only (0600); secrets are kept only as hashes (see
:mod:`logfactory.access.credentials`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logfactory.access.credentials import (
    check_password,
    digest,
    digest_matches,
    hash_password,
    new_secret,
    new_token,
    parse_token,
)
from logfactory.access.roles import Role
from logfactory.errors import LastAdminError

__all__ = [
    "ACCESS_DB",
    "AccessStore",
    "AuditEntry",
    "LastAdminError",
    "Session",
    "TokenInfo",
    "UserInfo",
]

#: the store's file name in the data directory
ACCESS_DB = "access.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created REAL NOT NULL,
    changed REAL NOT NULL,
    expires REAL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    secret_hash BLOB NOT NULL,
    created REAL NOT NULL,
    created_by TEXT NOT NULL,
    expires REAL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS token_addresses (
    token_id TEXT NOT NULL,
    address TEXT NOT NULL,
    first_seen REAL NOT NULL,
    PRIMARY KEY (token_id, address)
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash BLOB PRIMARY KEY,
    user TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    last_seen REAL NOT NULL,
    address TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    address TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""

#: a session's last_seen is written at most this often (seconds), or twice per idle timeout when
#: that is shorter: not a write per request
_TOUCH_EVERY_S = 60.0
#: tokens whose new addresses are remembered at most (per token); beyond, each use is not noted
_MAX_ADDRESSES_PER_TOKEN = 1000


_ACTIVE_ADMINS = (
    "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 "
    "AND (expires IS NULL OR expires > ?)"
)


@dataclass(frozen=True)
class UserInfo:
    """A user as listed (never the hash)."""

    name: str
    role: Role
    created: float
    changed: float
    expires: float | None
    disabled: bool

    def active(self, now: float) -> bool:
        return not self.disabled and (self.expires is None or self.expires > now)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": str(self.role),
            "created": self.created,
            "changed": self.changed,
            "expires": self.expires,
            "disabled": self.disabled,
        }


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed (never its secret, which is shown once, at creation)."""

    id: str
    name: str
    role: Role
    scopes: tuple[str, ...]
    created: float
    created_by: str
    expires: float | None
    revoked: float | None

    def active(self, now: float) -> bool:
        return self.revoked is None and (self.expires is None or self.expires > now)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": str(self.role),
            "scopes": list(self.scopes),
            "created": self.created,
            "created_by": self.created_by,
            "expires": self.expires,
            "revoked": self.revoked,
        }


@dataclass(frozen=True)
class Session:
    """A live console login: whose, its CSRF token, when it ends."""

    user: UserInfo
    csrf: str
    expires: float
    touch_due: bool


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit trail."""

    seq: int
    time: float
    actor: str
    action: str
    target: str | None
    outcome: str
    address: str | None
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "address": self.address,
            "detail": self.detail,
        }


def _user(row: Sequence[Any]) -> UserInfo:
    name, role, created, changed, expires, disabled = row
    return UserInfo(name, Role(role), created, changed, expires, bool(disabled))


def _token(row: Sequence[Any]) -> TokenInfo:
    tid, name, role, scopes, created, created_by, expires, revoked = row
    return TokenInfo(
        tid, name, Role(role), tuple(json.loads(scopes)), created, created_by, expires, revoked
    )


_USER_COLS = "name, role, created, changed, expires, disabled"
_TOKEN_COLS = "id, name, role, scopes, created, created_by, expires, revoked"  # noqa: S105


class AccessStore:
    """One node's credentials and audit trail (``<data_dir>/access.db``); thread-safe."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # created owner-only before SQLite opens it; SQLite gives -wal/-shm the same mode
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)

    @classmethod
    def in_dir(cls, data_dir: Path, clock: Callable[[], float] = time.time) -> AccessStore:
        """The store of the node whose data directory is ``data_dir``."""
        return cls(data_dir / ACCESS_DB, clock)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: Sequence[Any]) -> Any:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def is_empty(self) -> bool:
        """Whether no user and no token was ever made (a node's first start)."""
        row = self._one("SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM tokens)", ())
        return int(row[0]) == 0

    # -- users ------------------------------------------------------------------------------
    def user(self, name: str) -> UserInfo | None:
        row = self._one(f"SELECT {_USER_COLS} FROM users WHERE name = ?", (name,))  # noqa: S608
        return _user(row) if row else None

    def users(self) -> list[UserInfo]:
        return [_user(r) for r in self._all(f"SELECT {_USER_COLS} FROM users ORDER BY name")]  # noqa: S608

    def add_user(self, name: str, role: Role, password: str, expires: float | None = None) -> None:
        """A new user (KeyError-free: ValueError when the name is taken)."""
        pw_hash = hash_password(password)
        now = self._clock()
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO users (name, role, password_hash, created, changed, expires) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (name, str(role), pw_hash, now, now, expires),
                )
        except sqlite3.IntegrityError:
            raise ValueError(f"a user {name!r} exists already") from None

    def change_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        password: str | None = None,
        disabled: bool | None = None,
        expires: float | bool | None = False,
        keep_admin: bool = True,
    ) -> UserInfo | None:
        """Change what is given (``expires=False``: unchanged); ending a user's sessions when
        their password, role or standing changes. None when there is no such user.

        With ``keep_admin``, :class:`LastAdminError` (and nothing changed) when the change would
        leave no active admin user where there was one: checked in the change's own
        transaction, so two admins demoting each other at once cannot both succeed."""
        sets: list[str] = []
        args: list[Any] = []
        if role is not None:
            sets.append("role = ?")
            args.append(str(role))
        if password is not None:
            sets.append("password_hash = ?")
            args.append(hash_password(password))
        if disabled is not None:
            sets.append("disabled = ?")
            args.append(int(disabled))
        if expires is not False:
            sets.append("expires = ?")
            args.append(expires)
        with self._tx() as db:
            if sets:
                admins = self._active_admins(db)
                cur = db.execute(
                    f"UPDATE users SET {', '.join(sets)}, changed = ? WHERE name = ?",  # noqa: S608
                    (*args, self._clock(), name),
                )
                if cur.rowcount == 0:
                    return None
                if keep_admin:
                    self._keep_an_admin(db, admins, name)
                db.execute("DELETE FROM sessions WHERE user = ?", (name,))
        return self.user(name)

    def remove_user(self, name: str, *, keep_admin: bool = True) -> bool:
        """Remove the user and their sessions; False when there is no such user. With
        ``keep_admin``, :class:`LastAdminError` when they are the last active admin."""
        with self._tx() as db:
            admins = self._active_admins(db)
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))
            removed = db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0
            if removed and keep_admin:
                self._keep_an_admin(db, admins, name)
            return removed

    def _active_admins(self, db: sqlite3.Connection) -> int:
        return int(db.execute(_ACTIVE_ADMINS, (self._clock(),)).fetchone()[0])

    def _keep_an_admin(self, db: sqlite3.Connection, before: int, name: str) -> None:
        """Inside a change's transaction: refuse it (rolled back) if it ended the last admin."""
        if before > 0 and self._active_admins(db) == 0:
            raise LastAdminError(f"{name!r} is the last active admin; make another admin first")

    def verify_password(self, name: str, password: str) -> UserInfo | None:
        """The user, when ``password`` is theirs and they may log in; None otherwise (the same
        Argon2 work either way). Slow on purpose: call it from a worker thread."""
        row = self._one("SELECT password_hash FROM users WHERE name = ?", (name,))
        if not check_password(password, row[0] if row else None):
            return None
        user = self.user(name)
        return user if user is not None and user.active(self._clock()) else None

    # -- sessions ---------------------------------------------------------------------------
    def open_session(
        self, user: str, lifetime_s: float, address: str | None
    ) -> tuple[str, str, float]:
        """``(session id, csrf token, expires)`` of a new login of ``user``."""
        sid, csrf = new_secret(), new_secret()
        now = self._clock()
        expires = now + lifetime_s
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (digest(sid), user, csrf, now, expires, now, address),
            )
        return sid, csrf, expires

    def session(self, sid: str, idle_s: float) -> Session | None:
        """The live session ``sid`` names (not expired, not idle longer than ``idle_s``, its
        user active), or None."""
        row = self._one(
            "SELECT user, csrf, expires, last_seen FROM sessions WHERE id_hash = ?",
            (digest(sid),),
        )
        now = self._clock()
        if row is None or row[2] <= now or row[3] + idle_s <= now:
            return None
        user = self.user(row[0])
        if user is None or not user.active(now):
            return None
        # touched at least twice per idle timeout, or a session in use would end at a short one
        touch_every = min(_TOUCH_EVERY_S, idle_s / 2)
        return Session(user, row[1], row[2], touch_due=row[3] + touch_every <= now)

    def touch_session(self, sid: str) -> None:
        """Note that ``sid`` was used now (the idle timeout counts from here)."""
        with self._tx() as db:
            db.execute(
                "UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (self._clock(), digest(sid))
            )

    def close_session(self, sid: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE id_hash = ?", (digest(sid),))

    # -- API tokens -------------------------------------------------------------------------
    def create_token(
        self,
        name: str,
        role: Role,
        created_by: str,
        *,
        expires: float | None = None,
        scopes: Sequence[str] = (),
    ) -> tuple[str, TokenInfo]:
        """A new token: ``(the token itself, shown once; its listing)``."""
        token, token_id, secret = new_token()
        now = self._clock()
        with self._tx() as db:
            db.execute(
                "INSERT INTO tokens (id, name, role, scopes, secret_hash, created, created_by, "
                "expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token_id,
                    name,
                    str(role),
                    json.dumps(list(scopes)),
                    digest(secret),
                    now,
                    created_by,
                    expires,
                ),
            )
        info = TokenInfo(token_id, name, role, tuple(scopes), now, created_by, expires, None)
        return token, info

    def token(self, token_id: str) -> TokenInfo | None:
        row = self._one(f"SELECT {_TOKEN_COLS} FROM tokens WHERE id = ?", (token_id,))  # noqa: S608
        return _token(row) if row else None

    def tokens(self) -> list[TokenInfo]:
        rows = self._all(f"SELECT {_TOKEN_COLS} FROM tokens ORDER BY created")  # noqa: S608
        return [_token(r) for r in rows]

    def check_token(self, token: str) -> TokenInfo | None:
        """The active token ``token`` is, or None (unknown, wrong secret, revoked, expired)."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        token_id, secret = parsed
        row = self._one(
            f"SELECT {_TOKEN_COLS}, secret_hash FROM tokens WHERE id = ?",  # noqa: S608
            (token_id,),
        )
        if row is None or not digest_matches(secret, row[-1]):
            return None
        info = _token(row[:-1])
        return info if info.active(self._clock()) else None

    def revoke_token(self, token_id: str) -> TokenInfo | None:
        """Revoke (for good); None when there is no such token."""
        with self._tx() as db:
            db.execute(
                "UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                (self._clock(), token_id),
            )
        return self.token(token_id)

    def expire_token(self, token_id: str, when: float) -> TokenInfo | None:
        """Make the token end at ``when`` (now or later); None when there is no such token."""
        with self._tx() as db:
            db.execute("UPDATE tokens SET expires = ? WHERE id = ?", (when, token_id))
        return self.token(token_id)

    def known_address(self, token_id: str, address: str) -> bool:
        row = self._one(
            "SELECT 1 FROM token_addresses WHERE token_id = ? AND address = ?",
            (token_id, address),
        )
        return row is not None

    def note_address(self, token_id: str, address: str) -> bool:
        """Remember that ``token_id`` was used from ``address``; True when that was new."""
        with self._tx() as db:
            count = db.execute(
                "SELECT count(*) FROM token_addresses WHERE token_id = ?", (token_id,)
            ).fetchone()[0]
            if count >= _MAX_ADDRESSES_PER_TOKEN:
                return False
            cur = db.execute(
                "INSERT OR IGNORE INTO token_addresses VALUES (?, ?, ?)",
                (token_id, address, self._clock()),
            )
            return cur.rowcount > 0

    # -- audit ------------------------------------------------------------------------------
    def audit(
        self,
        actor: str,
        action: str,
        *,
        target: str | None = None,
        outcome: str = "ok",
        address: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one line to the audit trail."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO audit (time, actor, action, target, outcome, address, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self._clock(),
                    actor,
                    action,
                    target,
                    outcome,
                    address,
                    # unescaped, so a search (instr) finds "café" in the details as typed
                    json.dumps(detail or {}, sort_keys=True, ensure_ascii=False),
                ),
            )

    def audit_trail(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Audit lines, newest first, matching every filter given (``text``: a substring of the
        target, address or detail; ``before``: only lines older than that ``seq``, to page)."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("actor", actor), ("action", action)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if until is not None:
            where.append("time < ?")
            args.append(until)
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        if text:
            where.append(
                "(instr(coalesce(target, ''), ?) OR instr(coalesce(address, ''), ?) "
                "OR instr(detail, ?) OR instr(actor, ?))"
            )
            args.extend([text] * 4)
        # the filters are fixed column names; the values are parameters
        sql = (
            "SELECT seq, time, actor, action, target, outcome, address, detail FROM audit"  # noqa: S608
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY seq DESC LIMIT ?"
        )
        rows = self._all(sql, (*args, limit))
        return [
            AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows
        ]
