"""How secrets are made, written and checked: API tokens, session ids, passwords.

API tokens look like ``lf_<id>_<secret>``: the id (public, 12 hex digits) finds the row, the
secret (32 random bytes) is stored only as its SHA-256. A fast hash is right for 256 random bits
(nobody can guess through it, as GitHub's tokens); a password, chosen by a person, gets Argon2id
(argon2-cffi, salted, memory-hard) because it can be guessed. Comparisons run in constant time.

Memory-hard means each Argon2 hash or check takes 64 MiB for a tenth of a second: a flood of
logins on a server's thread pool (40 threads) would take gigabytes. At most
:data:`MAX_PASSWORD_WORK` of them run at once in a process; the rest wait their turn.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "MAX_PASSWORD_WORK",
    "MIN_PASSWORD_LENGTH",
    "USER_NAME",
    "check_password",
    "digest",
    "digest_matches",
    "hash_password",
    "new_password",
    "new_secret",
    "new_token",
    "parse_token",
    "password_problem",
]

MIN_PASSWORD_LENGTH = 12
# matched whole (fullmatch): "$" would let a trailing line break through
_TOKEN = re.compile(r"lf_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})")
_hasher = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106's low-memory profile
#: Argon2 computations (hash or check) running at once in this process, at most
MAX_PASSWORD_WORK = max(2, os.cpu_count() or 2)
_password_work = threading.BoundedSemaphore(MAX_PASSWORD_WORK)
# verified against when the user does not exist, so "no such user" takes as long as "wrong
# password" and timing does not tell which names exist
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


#: what a user name may be, matched whole (``fullmatch``: "$" would let "alice\n" through)
USER_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,64}")


def new_secret() -> str:
    """32 random bytes, URL-safe: a session id, a CSRF token, a token's secret."""
    return secrets.token_urlsafe(32)


def new_token() -> tuple[str, str, str]:
    """``(token, id, secret)`` of a new API token."""
    token_id = secrets.token_hex(6)
    secret = new_secret()
    return f"lf_{token_id}_{secret}", token_id, secret


def parse_token(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of an API token, or None when ``token`` is not one."""
    m = _TOKEN.fullmatch(token)
    return (m.group(1), m.group(2)) if m else None


def digest(secret: str) -> bytes:
    """What the store keeps of a high-entropy secret (token secret, session id)."""
    return hashlib.sha256(secret.encode()).digest()


def digest_matches(secret: str, stored: bytes) -> bool:
    """Whether ``secret`` is the one ``stored`` was made from, in constant time."""
    return hmac.compare_digest(digest(secret), stored)


def new_password() -> str:
    """A generated password (the first admin's): 24 URL-safe characters, 144 bits."""
    return secrets.token_urlsafe(18)


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be set, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > 1024:
        return "a password may have at most 1024 characters"
    return None


def hash_password(password: str) -> str:
    """The Argon2id hash (salt and parameters inside) of ``password``; slow on purpose."""
    with _password_work:
        return _hasher.hash(password)


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (None: no such user; the same work is done)."""
    try:
        with _password_work:
            return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
