"""``logfactory token``, ``users``, ``tokens`` and ``audit``: who may use a node, and what they did.

``token`` works on this machine only: it prints the admin token the node wrote to
``<data_dir>/admin-credentials.json`` on its first start (so ``$(logfactory token)`` can go
into a ``curl`` header), or with ``--renew`` replaces it in the access store. The others talk
to the node's HTTP API (:mod:`logfactory.cli_api`: local or remote, every change audited under
the credential that made it). Lists are tables for people, ``--json`` for programs; times are
ISO 8601 in UTC. A password never comes from the command line, where ``ps`` and the shell's
history would keep it: it is asked on the terminal (twice) or read from stdin.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from logfactory.access.roles import ROLES
from logfactory.cli_api import (
    CONFIG_HELP,
    Api,
    api_options,
    done,
    iso,
    json_option,
    print_json,
    segment,
    table,
)
from logfactory.config.units import parse_duration

__all__ = ["audit", "token", "tokens", "users"]

_ROLE = click.Choice([str(r) for r in ROLES])
_PAGE = 1000  # audit lines per request: the API's largest page
_PASSWORD_LINE = 4096  # read from stdin at most: a password has at most 1024 characters


def _read_password(from_stdin: bool) -> str:
    """A password from stdin (one line), or asked twice on the terminal, never echoed."""
    if from_stdin and not sys.stdin.isatty():
        password = sys.stdin.readline(_PASSWORD_LINE).rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on stdin (--password-stdin reads one line)")
        return password
    if not sys.stdin.isatty():
        raise click.ClickException(
            "no terminal to ask for the password on: give it on stdin with --password-stdin"
        )
    entered: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password", err=True
    )
    return entered


def _expires_in(value: str | None, option: str = "--expires") -> str | None:
    """A duration option checked here, so a typo is a usage error before anything is sent."""
    if value is not None:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None
    return value


# -- logfactory token ----------------------------------------------------------------------
@click.command(short_help="Print the local node's admin API token.")
@click.option("-c", "--config", "config_path", default=None, help=CONFIG_HELP)
@click.option(
    "--renew", is_flag=True, help="make a new admin token, revoke the old one, rewrite the file"
)
def token(config_path: str | None, renew: bool) -> None:
    """Print the admin API token of the node on this machine, and nothing else, so that
    $(logfactory token) can go into an Authorization header. The node writes it on its first
    start to <data_dir>/admin-credentials.json (readable by its owner only: run this as the
    node's user). With --renew: a new admin token in the node's access store, the old one
    revoked (also when it was lost or revoked already), the file rewritten; takes effect at
    once, also while the node runs.

    \b
    Examples:
      logfactory token
      logfactory token -c site.yaml
      logfactory token --renew -c site.yaml
    """
    import sqlite3

    from logfactory.access.bootstrap import (
        ADMIN_FILE,
        LocalCredentialError,
        local_token,
        renew_admin_token,
    )
    from logfactory.access.store import ACCESS_DB, AccessStore
    from logfactory.subscribe import find_config

    config = find_config(config_path)
    data_dir = config.data_dir
    if not renew:
        try:
            click.echo(local_token(data_dir))
        except LocalCredentialError as exc:
            raise click.ClickException(str(exc)) from None
        return
    if not (data_dir / ACCESS_DB).is_file():
        raise click.ClickException(
            f"no {data_dir / ACCESS_DB}: no node has started with {config.path} here yet; "
            f"its first start (logfactory run -c {config.path}) makes the admin token"
        )
    owner = data_dir.stat().st_uid
    if owner != os.geteuid():  # as root, the files written would be root's: the node's no more
        raise click.ClickException(
            f"{data_dir} belongs to {_user_name(owner)}: run this as that user, e.g. "
            f"`sudo -u {_user_name(owner)} logfactory token --renew -c {config.path}`"
        )
    try:
        store = AccessStore.in_dir(data_dir)
        try:
            new = renew_admin_token(store, data_dir)
        finally:
            store.close()
    except (OSError, sqlite3.Error) as exc:
        raise click.ClickException(
            f"cannot renew the admin token in {data_dir}: {exc} (run as the node's user)"
        ) from None
    click.echo(new)
    done(f"a new admin token is in {data_dir / ADMIN_FILE}; the old one is revoked")


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


# -- logfactory users ----------------------------------------------------------------------
@click.group(short_help="List, add, change or remove the console's users.")
def users() -> None:
    """The users who log in to the console (and the API) with a password, through the
    node's API: admins only, every change audited. See also `logfactory tokens`."""


def _state(item: dict[str, Any], stopped: str) -> str:
    """``stopped`` when the item's field of that name is set (a user ``disabled``, a token
    ``revoked``), else expired or active."""
    if item.get(stopped) not in (None, False):
        return stopped
    expires = item.get("expires")
    return "expired" if expires is not None and expires <= time.time() else "active"


@users.command("list", short_help="List the users.")
@json_option("the users")
@api_options
def users_list(api: Api, as_json: bool) -> None:
    """List the users: name, role, state (active, disabled, expired), when they expire, were
    made and last changed.

    \b
    Examples:
      logfactory users list
      logfactory users list --json --url https://logs.example.org:8443
    """
    listed = api.call("GET", "/api/v1/users")
    if as_json:
        print_json(listed)
        return
    rows = [
        (u["name"], u["role"], _state(u, "disabled"), iso(u.get("expires")), iso(u["created"]),
         iso(u["changed"]))
        for u in listed
    ]  # fmt: skip
    table(("NAME", "ROLE", "STATE", "EXPIRES", "CREATED", "CHANGED"), rows)


@users.command("add", short_help="Add a user with a role and a password.")
@click.argument("name")
@click.option("--role", type=_ROLE, required=True, help="what the user may do")
@click.option("--expires", default=None, help="the user ends after this long, e.g. 90d")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin (one line)")
@api_options
def users_add(api: Api, name: str, role: str, expires: str | None, password_stdin: bool) -> None:
    """Add a user who logs in with NAME and a password (12 characters or more), asked twice
    on the terminal or read from stdin; never on the command line.

    \b
    Examples:
      logfactory users add alice --role operator
      logfactory users add bot --role viewer --expires 30d --password-stdin < pw.txt
    """
    body: dict[str, Any] = {"name": name, "role": role, "expires_in": _expires_in(expires)}
    body["password"] = _read_password(password_stdin)
    user = api.call("POST", "/api/v1/users", body)
    done(f"user {user['name']} added, role {user['role']}, expires {iso(user['expires'])}")


@users.command("set", short_help="Change a user's role, password, expiry or standing.")
@click.argument("name")
@click.option("--role", type=_ROLE, default=None, help="the user's new role")
@click.option(
    "--disable/--enable", "disabled", default=None, help="stop (or allow again) their logins"
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="a new password, read from stdin (on a terminal: asked twice)",
)
@click.option("--expires", default=None, help="the user ends after this long from now, e.g. 30d")
@click.option("--never-expires", is_flag=True, help="the user no longer ends")
@api_options
def users_set(
    api: Api,
    name: str,
    role: str | None,
    disabled: bool | None,
    password_stdin: bool,
    expires: str | None,
    never_expires: bool,
) -> None:
    """Change what the options give; the user's login sessions end. The last active admin
    cannot be demoted, disabled or given an expiry.

    \b
    Examples:
      logfactory users set alice --role admin
      logfactory users set alice --disable
      logfactory users set alice --password-stdin < new-pw.txt
      logfactory users set bot --expires 30d
    """
    if expires is not None and never_expires:
        raise click.UsageError("give --expires or --never-expires, not both")
    if (role, disabled, expires) == (None, None, None) and not (password_stdin or never_expires):
        raise click.UsageError(
            "nothing to change: give --role, --disable/--enable, --password-stdin, --expires "
            "or --never-expires"
        )
    body: dict[str, Any] = {"role": role, "disabled": disabled, "never_expires": never_expires}
    body["expires_in"] = _expires_in(expires)
    if password_stdin:
        body["password"] = _read_password(True)
    user = api.call("PATCH", f"/api/v1/users/{segment(name)}", body)
    done(f"user {user['name']}: role {user['role']}, {_state(user, 'disabled')}, expires "
          f"{iso(user['expires'])}; their sessions have ended")  # fmt: skip


@users.command("remove", short_help="Remove a user.")
@click.argument("name")
@api_options
def users_remove(api: Api, name: str) -> None:
    """Remove a user and end their sessions (the audit trail keeps what they did).

    \b
    Examples:
      logfactory users remove alice
    """
    api.call("DELETE", f"/api/v1/users/{segment(name)}")
    done(f"user {name} removed")


# -- logfactory tokens ---------------------------------------------------------------------
@click.group(short_help="List, create, expire or revoke API tokens.")
def tokens() -> None:
    """API tokens, for programs and remote use (Authorization: Bearer TOKEN), through the
    node's API: admins only, every change audited. A token's secret is shown once, when it
    is made; the node keeps only a hash."""


@tokens.command("list", short_help="List the tokens (never their secrets).")
@json_option("the tokens")
@api_options
def tokens_list(api: Api, as_json: bool) -> None:
    """List every token, oldest first, revoked and expired ones too: id, name, role, state,
    expiry, when and by whom it was made, its scopes.

    \b
    Examples:
      logfactory tokens list
      logfactory tokens list --json
    """
    listed = api.call("GET", "/api/v1/tokens")
    if as_json:
        print_json(listed)
        return
    rows = [
        (t["id"], t["name"], t["role"], _state(t, "revoked"), iso(t.get("expires")),
         iso(t["created"]), t["created_by"], ",".join(t.get("scopes") or []) or "-")
        for t in listed
    ]  # fmt: skip
    headers = ("ID", "NAME", "ROLE", "STATE", "EXPIRES", "CREATED", "BY", "SCOPES")
    table(headers, rows)


@tokens.command("create", short_help="Create a token; prints it, once.")
@click.argument("name")
@click.option("--role", type=_ROLE, required=True, help="what the token may do")
@click.option("--expires", default=None, help="the token ends after this long, e.g. 90d")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="limit it further: type:EVENT_TYPE or topic:TOPIC (repeatable)",
)
@json_option("the token and its listing")
@api_options
def tokens_create(
    api: Api,
    name: str,
    role: str,
    expires: str | None,
    scopes: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a token named NAME (what it is for) and print it on stdout: the only time it is
    shown. Scopes narrow it below its role: type:JOB_STATUS lets it subscribe to that event
    type only, topic:logs.parsed read that topic only.

    \b
    Examples:
      logfactory tokens create grafana --role viewer --expires 90d
      logfactory tokens create edge-web01 --role ingest
      logfactory tokens create jobs-app --role viewer --scope type:JOB_STATUS
    """
    body = {"name": name, "role": role, "expires_in": _expires_in(expires), "scopes": [*scopes]}
    made = api.call("POST", "/api/v1/tokens", body)
    if as_json:
        print_json(made)
    else:
        click.echo(made["token"])
    scoped = f", scopes {','.join(made['scopes'])}" if made.get("scopes") else ""
    done(f"token {made['id']} ({made['name']}, role {made['role']}{scoped}, expires "
          f"{iso(made['expires'])}): shown this once, the node keeps only a hash")  # fmt: skip


@tokens.command("expire", short_help="Make a token end now or later.")
@click.argument("token_id", metavar="ID")
@click.option(
    "--in", "within", default="0s", show_default=True, help="when it ends, from now (e.g. 7d)"
)
@api_options
def tokens_expire(api: Api, token_id: str, within: str) -> None:
    """Set when the token ID ends: now (the default), or after --in. An expired token gets
    401 at its next request.

    \b
    Examples:
      logfactory tokens expire 3f2a9c01b7de
      logfactory tokens expire 3f2a9c01b7de --in 7d
    """
    changed = api.call(
        "PATCH", f"/api/v1/tokens/{segment(token_id)}", {"expires_in": _expires_in(within, "--in")}
    )
    done(f"token {changed['id']} ({changed['name']}) ends {iso(changed['expires'])}")


@tokens.command("revoke", short_help="Revoke a token for good.")
@click.argument("token_id", metavar="ID")
@api_options
def tokens_revoke(api: Api, token_id: str) -> None:
    """Revoke the token ID for good: its next request gets 401. Tokens are never deleted,
    so the audit trail's token:ID always names one that `tokens list` shows.

    \b
    Examples:
      logfactory tokens revoke 3f2a9c01b7de
    """
    revoked = api.call("DELETE", f"/api/v1/tokens/{segment(token_id)}")
    done(f"token {revoked['id']} ({revoked['name']}) revoked")


# -- logfactory audit ----------------------------------------------------------------------
def _moment(value: str | None) -> str | None:
    """``--since 2h`` is two hours ago; an ISO 8601 time goes to the node as written."""
    if value is None:
        return None
    try:
        ago = parse_duration(value)
    except ValueError:
        return value
    return iso(time.time() - ago)


@click.command(short_help="Search the audit trail: logins, changes, reviews.")
@click.option("--actor", default=None, help="who: user:alice, token:ID, local:root, node")
@click.option("--action", default=None, help="what, e.g. login_failed, token_created")
@click.option("--since", default=None, help="from this ISO 8601 time, or this long ago (2h)")
@click.option("--until", default=None, help="before this ISO 8601 time, or this long ago")
@click.option("--grep", default=None, help="text in the target, address, actor or details")
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=100, show_default=True,
    help="lines at most (the newest)",
)  # fmt: skip
@json_option("the lines")
@api_options
def audit(
    api: Api,
    actor: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    grep: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Print the audit trail, newest first: when, who (actor), what (action), on what, how it
    ended, from which address, and details. Logins and failed logins, tokens used from a new
    address, user and token changes, pattern reviews. Nothing can edit it through the API.

    \b
    Examples:
      logfactory audit --since 24h
      logfactory audit --action login_failed --limit 20
      logfactory audit --actor user:alice --json
      logfactory audit --grep 10.0.0.9
    """
    query: dict[str, Any] = {"actor": actor, "action": action, "since": _moment(since)}
    query.update(until=_moment(until), q=grep)
    lines: list[dict[str, Any]] = []
    while len(lines) < limit:
        page = min(_PAGE, limit - len(lines))
        before = lines[-1]["seq"] if lines else None
        got = api.call("GET", "/api/v1/audit", query={**query, "limit": page, "before": before})
        entries = got["entries"]
        lines += entries
        if len(entries) < page:
            break
    if as_json:
        print_json(lines)
        return
    rows = [
        (iso(e["time"]), e["actor"], e["action"], e.get("target") or "-", e["outcome"],
         e.get("address") or "-", json.dumps(e.get("detail") or {}, ensure_ascii=False))
        for e in lines
    ]  # fmt: skip
    rows = [(*r[:-1], "" if r[-1] == "{}" else r[-1]) for r in rows]
    table(("TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "ADDRESS", "DETAIL"), rows)
