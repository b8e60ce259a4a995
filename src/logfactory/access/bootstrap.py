"""The first admin credential, and how commands on the node's own machine find it.

A node starting on an empty access store creates a user ``admin`` (a generated password, for the
console) and an admin API token, and writes both to ``<data_dir>/admin-credentials.json``
(0600) — the only place the secrets exist in clear. The node prints once where that file is;
``logfactory token`` prints the token from it, so the README's ``curl`` commands work on the
same machine without copying a secret by hand, and reading it needs exactly the right to read
the data directory (its owner).
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

from logfactory.access.credentials import new_password
from logfactory.access.roles import Role
from logfactory.access.store import AccessStore
from logfactory.errors import LocalCredentialError

__all__ = [
    "ADMIN_FILE",
    "ADMIN_USER",
    "LocalCredentialError",
    "ensure_admin",
    "local_actor",
    "local_token",
    "renew_admin_token",
]

ADMIN_FILE = "admin-credentials.json"
ADMIN_USER = "admin"
ADMIN_TOKEN_NAME = "local admin"  # noqa: S105 (a name, not a secret)


def local_actor() -> str:
    """Who the audit trail names for a change made on the node's machine (the CLI)."""
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"local:uid{os.getuid()}"


def _write_owner_only(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _save(data_dir: Path, values: dict[str, str]) -> Path:
    path = data_dir / ADMIN_FILE
    _write_owner_only(path, json.dumps(values, indent=2) + "\n")
    return path


def ensure_admin(store: AccessStore, data_dir: Path) -> Path | None:
    """On a first start (nothing in ``store``): the admin user and token, written to
    ``<data_dir>/admin-credentials.json``; its path. None when credentials existed."""
    if not store.is_empty():
        return None
    password = new_password()
    store.add_user(ADMIN_USER, Role.ADMIN, password)
    token, info = store.create_token(ADMIN_TOKEN_NAME, Role.ADMIN, "node")
    path = _save(data_dir, {"user": ADMIN_USER, "password": password, "token": token})
    store.audit("node", "admin_created", target=f"user:{ADMIN_USER} token:{info.id}")
    return path


def local_token(data_dir: Path) -> str:
    """The admin token of the node whose data directory is ``data_dir``."""
    path = data_dir / ADMIN_FILE
    try:
        values = json.loads(path.read_text())
        token = values["token"]
    except FileNotFoundError:
        raise LocalCredentialError(
            f"no {path}: the node makes it on its first start (logfactory run); "
            "or is node.data_dir another directory?"
        ) from None
    except PermissionError:
        raise LocalCredentialError(
            f"cannot read {path}: it belongs to the node's user (run as that user)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LocalCredentialError(
            f"{path} is damaged ({exc}); 'logfactory token --renew' writes a new token"
        ) from None
    if not isinstance(token, str):
        raise LocalCredentialError(f"{path} holds no token; 'logfactory token --renew'")
    return token


def renew_admin_token(store: AccessStore, data_dir: Path) -> str:
    """A new admin token in place of the file's (the old one revoked), for an admin who lost
    or revoked it; needs the right to write the data directory."""
    path = data_dir / ADMIN_FILE
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            values = {}
    except (OSError, ValueError):
        values = {}
    old = store.check_token(str(values.get("token", "")))
    token, info = store.create_token(ADMIN_TOKEN_NAME, Role.ADMIN, local_actor())
    if old is not None:
        store.revoke_token(old.id)
    values["token"] = token
    _save(data_dir, {str(k): str(v) for k, v in values.items()})
    store.audit(local_actor(), "token_created", target=f"token:{info.id}", detail={"renew": True})
    return token
