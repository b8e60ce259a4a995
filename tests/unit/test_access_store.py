"""The access store and its credentials: only hashes kept, a token's secret shown once, odd input
refused without a crash, the audit trail append-only and searchable, sessions that end when they
should, an owner-only file whatever the umask, and two processes on one file that see each
other's revocations at once."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers.access import PASSWORD, count_rows
from tests.helpers.waiting import wait_for

from logfactory.access import Role, credentials
from logfactory.access.bootstrap import ADMIN_FILE, ensure_admin, local_token, renew_admin_token
from logfactory.access.credentials import MAX_PASSWORD_WORK, check_password, parse_token
from logfactory.access.store import AccessStore, LastAdminError
from logfactory.api.auth import match_bearer
from logfactory.errors import LocalCredentialError

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[AccessStore]:
    s = AccessStore.in_dir(tmp_path / "data", clock)
    yield s
    s.close()


def file_bytes(store: AccessStore) -> bytes:
    """Everything SQLite wrote for the store: the file and its WAL."""
    out = b""
    for suffix in ("", "-wal"):
        path = Path(str(store.path) + suffix)
        if path.exists():
            out += path.read_bytes()
    return out


# -- secrets are kept as hashes ----------------------------------------------------------------
def test_the_file_holds_hashes_never_a_password_or_a_token_secret(store: AccessStore) -> None:
    store.add_user("alice", Role.VIEWER, PASSWORD)
    token, info = store.create_token("grafana", Role.VIEWER, "test")
    secret = token.split("_", 2)[2]
    db = sqlite3.connect(store.path)
    (pw_hash,) = db.execute("SELECT password_hash FROM users WHERE name = 'alice'").fetchone()
    (secret_hash,) = db.execute(
        "SELECT secret_hash FROM tokens WHERE id = ?", (info.id,)
    ).fetchone()
    db.close()
    assert pw_hash != PASSWORD
    assert pw_hash.startswith("$argon2id$")
    assert PASSWORD not in pw_hash
    assert secret_hash != secret.encode()
    assert secret.encode() not in secret_hash
    raw = file_bytes(store)
    assert PASSWORD.encode() not in raw
    assert secret.encode() not in raw
    # two users with one password get two hashes (salted)
    store.add_user("bob", Role.VIEWER, PASSWORD)
    db = sqlite3.connect(store.path)
    hashes = {h for (h,) in db.execute("SELECT password_hash FROM users")}
    db.close()
    assert len(hashes) == 2


def test_a_token_secret_is_shown_once_and_never_listed(store: AccessStore) -> None:
    token, info = store.create_token("edge web01", Role.INGEST, "test", scopes=["topic:x"])
    secret = token.split("_", 2)[2]
    assert token == f"lf_{info.id}_{secret}"
    listed = json.dumps([t.as_json() for t in store.tokens()])
    assert secret not in listed
    assert token not in listed
    assert secret not in json.dumps(store.token(info.id).as_json())  # type: ignore[union-attr]
    assert store.check_token(token) == info
    # a second token of the same name is another token with another secret
    token2, info2 = store.create_token("edge web01", Role.INGEST, "test")
    assert info2.id != info.id
    assert token2 != token


def test_a_password_is_checked_only_against_its_user(store: AccessStore) -> None:
    store.add_user("alice", Role.OPERATOR, PASSWORD)
    user = store.verify_password("alice", PASSWORD)
    assert user is not None
    assert user.role is Role.OPERATOR
    assert store.verify_password("alice", PASSWORD + "x") is None
    assert store.verify_password("nobody", PASSWORD) is None
    assert not check_password(PASSWORD, None)


class _HeldHasher:
    """An Argon2 stand-in whose checks wait until released, counting how many run at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.peak = 0
        self.release = threading.Event()
        self._lock = threading.Lock()

    def verify(self, stored: str, password: str) -> bool:
        with self._lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        self.release.wait(30)
        with self._lock:
            self.inside -= 1
        return False


def test_at_most_max_password_work_argon2_computations_run_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each takes 64 MiB: a flood of logins must queue, not take the node's memory."""
    held = _HeldHasher()
    monkeypatch.setattr(credentials, "_hasher", held)
    threads = [
        threading.Thread(target=check_password, args=(PASSWORD, None))
        for _ in range(MAX_PASSWORD_WORK + 4)
    ]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: held.inside == MAX_PASSWORD_WORK, 10, "the first checks to run")
        assert all(t.is_alive() for t in threads)  # the others wait their turn
    finally:
        held.release.set()
        for t in threads:
            t.join(30)
    assert held.peak == MAX_PASSWORD_WORK
    assert held.inside == 0


# -- odd input: refused, never a crash ----------------------------------------------------------
ODD_TOKENS = [
    "",
    "lf_",
    "lf__",
    "lf_zzzzzzzzzzzz_" + "A" * 43,
    "lf_000000000000_" + "A" * 43,
    "lf_0000000000001_" + "A" * 43,
    "lf_ABCDEFABCDEF_" + "A" * 43,
    "lf_" + "a" * 10_000,
    "lf_000000000000_" + "A" * 10_000,
    "lf_000000000000_" + "A" * 43 + "\n",
    "lf_00000000000\u0660_" + "A" * 43,
    "lf_000000000000_" + "\u00e9" * 43,
    "\x00" * 64,
    "Bearer lf_000000000000_" + "A" * 43,
]


@pytest.mark.parametrize("odd", ODD_TOKENS, ids=range(len(ODD_TOKENS)))
def test_odd_tokens_are_refused_without_a_crash(store: AccessStore, odd: str) -> None:
    token, _ = store.create_token("real", Role.ADMIN, "test")
    assert store.check_token(odd) is None
    assert match_bearer(f"Bearer {odd}", [token]) is None
    # a real token's id with an odd secret
    token_id = token.split("_")[1]
    assert store.check_token(f"lf_{token_id}_{odd}") is None


def test_a_token_with_a_line_break_after_it_is_not_that_token(store: AccessStore) -> None:
    token, _ = store.create_token("real", Role.ADMIN, "test")
    assert parse_token(token) is not None
    assert parse_token(token + "\n") is None
    assert store.check_token(token + "\n") is None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccessStore]:
    """A store for the Hypothesis examples (function-scoped fixtures are not reset per example)."""
    s = AccessStore.in_dir(tmp_path_factory.mktemp("scratch"))
    s.create_token("real", Role.ADMIN, "test")
    yield s
    s.close()


@given(st.text(max_size=300))
def test_any_text_is_not_a_token_and_checking_it_does_not_crash(
    scratch: AccessStore, text: str
) -> None:
    assert scratch.check_token(text) is None
    assert scratch.check_token("lf_" + text) is None
    assert scratch.session(text, 3600) is None
    assert match_bearer(text, ["lf_000000000000_" + "A" * 43]) is None


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("alice\x00", PASSWORD),
        ("\u202eecila", PASSWORD),
        ("a" * 10_000, PASSWORD),
        ("alice", "\x00" * 50),
        ("alice", "\U0001f510" * 500),
        ("alice", "p" * 10_000),
        ("", ""),
    ],
    ids=["nul", "bidi", "10k-name", "nul-password", "emoji-password", "10k-password", "empty"],
)
def test_odd_names_and_passwords_do_not_log_in_or_crash(
    store: AccessStore, name: str, password: str
) -> None:
    store.add_user("alice", Role.ADMIN, PASSWORD)
    assert store.verify_password(name, password) is None


# -- the audit trail ----------------------------------------------------------------------------
def test_the_audit_trail_cannot_be_changed_through_sqlite(store: AccessStore) -> None:
    store.audit("user:alice", "login", address="192.0.2.1")
    db = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE audit SET actor = 'user:mallory'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM audit")
    finally:
        db.close()
    (line,) = store.audit_trail()
    assert line.actor == "user:alice"
    assert count_rows(store.path, "audit") == 1


def test_the_audit_trail_filters_and_pages(store: AccessStore, clock: Clock) -> None:
    start = clock.now
    for i in range(25):
        clock.now = start + i
        actor = "user:alice" if i % 2 else "user:bob"
        action = "login" if i % 3 else "login_failed"
        store.audit(actor, action, target=f"t{i}", address=f"192.0.2.{i}", detail={"n": i})
    everything = store.audit_trail(limit=1000)
    assert [e.detail["n"] for e in everything] == list(range(24, -1, -1))  # newest first
    assert {e.actor for e in store.audit_trail(actor="user:alice")} == {"user:alice"}
    assert len(store.audit_trail(actor="user:alice")) == 12
    assert len(store.audit_trail(action="login_failed")) == 9
    assert len(store.audit_trail(actor="user:bob", action="login_failed")) == 5
    window = store.audit_trail(since=start + 5, until=start + 10)
    assert [e.detail["n"] for e in window] == [9, 8, 7, 6, 5]
    assert [e.detail["n"] for e in store.audit_trail(text="192.0.2.17")] == [17]
    assert [e.detail["n"] for e in store.audit_trail(text="t13")] == [13]
    assert store.audit_trail(text="nothing like it") == []
    # paging: each page continues before the last line of the one before
    seen: list[int] = []
    before = None
    while True:
        page = store.audit_trail(limit=10, before=before)
        if not page:
            break
        assert len(page) <= 10
        seen += [e.detail["n"] for e in page]
        before = page[-1].seq
    assert seen == list(range(24, -1, -1))
    # text as typed, beyond ASCII, is found in the details too
    store.audit("user:zoë", "token_created", detail={"name": "café prod"})
    assert [e.actor for e in store.audit_trail(text="café prod")] == ["user:zoë"]
    assert [e.actor for e in store.audit_trail(text="zoë")] == ["user:zoë"]


# -- sessions end when they should ---------------------------------------------------------------
def test_a_session_ends_at_its_lifetime(store: AccessStore, clock: Clock) -> None:
    store.add_user("alice", Role.VIEWER, PASSWORD)
    sid, csrf, expires = store.open_session("alice", 100, "192.0.2.1")
    assert expires == clock.now + 100
    session = store.session(sid, idle_s=1000)
    assert session is not None
    assert session.csrf == csrf
    assert session.user.name == "alice"
    clock.now += 99
    assert store.session(sid, idle_s=1000) is not None
    clock.now += 1
    assert store.session(sid, idle_s=1000) is None


def test_a_session_ends_when_idle_and_lives_while_used(store: AccessStore, clock: Clock) -> None:
    """Used as the API uses it (touched when due), a session in use stays alive past its idle
    timeout, whatever that timeout, and one left alone ends at it."""
    store.add_user("alice", Role.VIEWER, PASSWORD)
    for idle in (30.0, 600.0):
        used, _, _ = store.open_session("alice", 100_000, None)
        left, _, _ = store.open_session("alice", 100_000, None)
        for _ in range(12):  # four idle timeouts' worth of use
            clock.now += idle / 3
            session = store.session(used, idle_s=idle)
            assert session is not None, f"a session used every {idle / 3:g} s ended"
            if session.touch_due:
                store.touch_session(used)
        assert store.session(left, idle_s=idle) is None


@pytest.mark.parametrize(
    "change",
    [
        {"password": "a brand new password"},
        {"role": Role.OPERATOR},
        {"disabled": True},
        {"expires": 1.0},
    ],
    ids=["password", "role", "disabled", "expiry"],
)
def test_changing_a_user_ends_their_sessions(store: AccessStore, change: dict[str, object]) -> None:
    store.add_user("alice", Role.VIEWER, PASSWORD)
    store.add_user("bob", Role.VIEWER, PASSWORD)
    sid, _, _ = store.open_session("alice", 3600, None)
    other, _, _ = store.open_session("bob", 3600, None)
    assert store.change_user("alice", **change) is not None  # type: ignore[arg-type]
    assert store.session(sid, 3600) is None
    assert store.session(other, 3600) is not None  # nobody else's


def test_a_removed_user_s_sessions_end_and_a_new_user_of_that_name_gets_none(
    store: AccessStore,
) -> None:
    store.add_user("alice", Role.OPERATOR, PASSWORD)
    sid, _, _ = store.open_session("alice", 3600, None)
    assert store.remove_user("alice")
    assert store.session(sid, 3600) is None
    store.add_user("alice", Role.OPERATOR, PASSWORD)
    assert store.session(sid, 3600) is None
    assert not store.remove_user("nobody")


def test_the_store_keeps_an_active_admin(store: AccessStore, clock: Clock) -> None:
    """The last active admin user cannot be removed, disabled or demoted (nothing changes, not
    even their sessions), unless the caller says so (``keep_admin=False``)."""
    store.add_user("root", Role.ADMIN, PASSWORD)
    store.add_user("old", Role.ADMIN, PASSWORD, expires=clock.now - 1)  # ended: does not count
    sid, _, _ = store.open_session("root", 3600, None)
    for change in ({"role": Role.VIEWER}, {"disabled": True}, {"expires": clock.now}):
        with pytest.raises(LastAdminError, match="last active admin"):
            store.change_user("root", **change)
    with pytest.raises(LastAdminError):
        store.remove_user("root")
    root = store.user("root")
    assert root is not None
    assert (root.role, root.disabled, root.expires) == (Role.ADMIN, False, None)
    assert store.session(sid, 3600) is not None
    # what keeps them an admin is fine, and so is anything once another admin is active
    assert store.change_user("root", password="another passphrase") is not None
    store.change_user("old", expires=None)
    assert store.change_user("root", role=Role.VIEWER) is not None
    assert store.remove_user("root")
    # a store with no active admin user (the admin token only) changes users freely
    assert store.change_user("old", disabled=True, keep_admin=False) is not None
    store.add_user("alice", Role.VIEWER, PASSWORD)
    assert store.change_user("alice", role=Role.OPERATOR) is not None
    assert store.remove_user("alice")


def test_a_disabled_or_expired_user_cannot_log_in(store: AccessStore, clock: Clock) -> None:
    store.add_user("alice", Role.VIEWER, PASSWORD, expires=clock.now + 10)
    assert store.verify_password("alice", PASSWORD) is not None
    clock.now += 10
    assert store.verify_password("alice", PASSWORD) is None
    store.add_user("bob", Role.VIEWER, PASSWORD)
    store.change_user("bob", disabled=True)
    assert store.verify_password("bob", PASSWORD) is None


# -- tokens end when they should -----------------------------------------------------------------
def test_a_token_ends_at_its_expiry_and_at_revocation(store: AccessStore, clock: Clock) -> None:
    token, info = store.create_token("t", Role.VIEWER, "test", expires=clock.now + 5)
    assert store.check_token(token) is not None
    clock.now += 5
    assert store.check_token(token) is None
    store.expire_token(info.id, clock.now + 60)
    assert store.check_token(token) is not None
    revoked = store.revoke_token(info.id)
    assert revoked is not None
    assert revoked.revoked == clock.now
    assert store.check_token(token) is None
    # revoking again keeps the first time; the row stays listable
    clock.now += 1
    again = store.revoke_token(info.id)
    assert again is not None
    assert again.revoked == revoked.revoked
    assert store.revoke_token("000000000000") is None


# -- files -----------------------------------------------------------------------------------
def test_the_store_and_the_admin_file_are_owner_only_under_umask_0(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        data = tmp_path / "data"
        store = AccessStore.in_dir(data)
        made = ensure_admin(store, data)
        store.audit("test", "something")  # the WAL and its index exist now
        wal = [Path(str(store.path) + s) for s in ("-wal", "-shm")]
        try:
            assert made == data / ADMIN_FILE
            for path in [store.path, made, *wal]:
                assert path.exists(), path
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert stat.S_IMODE(data.stat().st_mode) == 0o700
        finally:
            store.close()
    finally:
        os.umask(old)


def test_the_first_start_makes_an_admin_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = AccessStore.in_dir(data)
    try:
        made = ensure_admin(store, data)
        assert made is not None
        values = json.loads(made.read_text())
        assert set(values) == {"user", "password", "token"}
        assert store.verify_password(values["user"], values["password"]) is not None
        info = store.check_token(values["token"])
        assert info is not None
        assert info.role is Role.ADMIN
        assert local_token(data) == values["token"]
        text = made.read_text()
        assert ensure_admin(store, data) is None
        assert made.read_text() == text
        (line,) = store.audit_trail(action="admin_created")
        assert values["password"] not in json.dumps(line.as_json())
        assert values["token"] not in json.dumps(line.as_json())
    finally:
        store.close()


def test_renewing_the_admin_token_revokes_the_old_one_and_keeps_the_password(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    store = AccessStore.in_dir(data)
    try:
        made = ensure_admin(store, data)
        assert made is not None
        old = json.loads(made.read_text())
        new = renew_admin_token(store, data)
        assert new != old["token"]
        assert store.check_token(old["token"]) is None
        assert store.check_token(new) is not None
        now = json.loads(made.read_text())
        assert now == {**old, "token": new}
        assert stat.S_IMODE(made.stat().st_mode) == 0o600
        assert local_token(data) == new
        assert new not in json.dumps([e.as_json() for e in store.audit_trail()])
        # a damaged file: a message that says what to do, never a traceback
        made.write_text("{not json")
        with pytest.raises(LocalCredentialError, match="token --renew"):
            local_token(data)
        made.unlink()
        with pytest.raises(LocalCredentialError, match="first start"):
            local_token(data)
    finally:
        store.close()


# -- two processes on one file ----------------------------------------------------------------
_CHILD = """
import sys
from pathlib import Path
from logfactory.access.store import AccessStore, LastAdminError
store = AccessStore(Path(sys.argv[1]))
verb, arg = sys.argv[2], sys.argv[3]
if verb == "revoke":
    print(store.revoke_token(arg) is not None)
elif verb == "check":
    print(store.check_token(arg) is not None)
"""


def _child(path: Path, verb: str, arg: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), verb, arg],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    return result.stdout.strip()


def test_a_revocation_in_another_process_is_seen_at_the_next_check(store: AccessStore) -> None:
    token, info = store.create_token("shared", Role.VIEWER, "test")
    assert store.check_token(token) is not None
    assert _child(store.path, "check", token) == "True"
    assert _child(store.path, "revoke", info.id) == "True"
    assert store.check_token(token) is None


def test_two_stores_on_one_file_see_each_other_at_once(store: AccessStore, clock: Clock) -> None:
    other = AccessStore(store.path, clock)
    try:
        token, info = other.create_token("shared", Role.VIEWER, "test")
        assert store.check_token(token) is not None
        store.add_user("alice", Role.VIEWER, PASSWORD)
        sid, _, _ = other.open_session("alice", 3600, None)
        assert store.session(sid, 3600) is not None
        store.revoke_token(info.id)
        assert other.check_token(token) is None
        other.change_user("alice", disabled=True)
        assert store.session(sid, 3600) is None
        # and back, across processes: a token revoked here is refused there
        token2, info2 = store.create_token("shared 2", Role.VIEWER, "test")
        store.revoke_token(info2.id)
        assert _child(store.path, "check", token2) == "False"
    finally:
        other.close()
