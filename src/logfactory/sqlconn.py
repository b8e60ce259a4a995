"""The SQL source's connection string and query, checked without connecting anywhere.

``connection`` is either an ODBC connection string (``DRIVER={SQLite3};Database=...``,
``DSN=name``) or a DB-API URL; ``sqlite:///relative.db`` / ``sqlite:////absolute.db`` is read
with the stdlib ``sqlite3``. The query has exactly one placeholder, ``?`` or ``:last``, which
receives the last tracked value, e.g. ``SELECT id, ts, msg FROM events WHERE id > ? ORDER BY id``.

Why a module of its own that imports nothing of logfactory: the configuration layer checks
these settings when it loads a file (``logfactory check``), and the SQL collector parses them
when it starts; neither may import the other.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["parse_connection", "prepare_query"]

_NAMED = re.compile(r"(?<![:\w]):last\b")
_LITERALS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_DB_NAME = re.compile(r"(?i)(?:^|;)\s*(?:database|dbq|dsn)\s*=\s*([^;]*)")
_EXAMPLE = "SELECT id, msg FROM events WHERE id > ? ORDER BY id"


def parse_connection(connection: str) -> tuple[str, str, str]:
    """``(kind, target, db_name)``: kind ``sqlite`` (target = a file path) or ``odbc`` (target =
    the connection string); raises ValueError naming the supported forms."""
    text = connection.strip()
    scheme = re.match(r"^([A-Za-z][\w+.-]*)://", text)
    if scheme:
        if scheme.group(1).lower() != "sqlite":
            raise ValueError(
                f"unsupported connection URL scheme {scheme.group(1)!r}: use sqlite:///PATH.db "
                "(stdlib sqlite3) or an ODBC connection string (DRIVER={...};... or DSN=name)"
            )
        path = text[len("sqlite:///") :] if text.startswith("sqlite:///") else ""
        if not path:
            raise ValueError("write a SQLite URL as sqlite:///relative.db or sqlite:////abs.db")
        return "sqlite", path, Path(path).stem
    if "=" not in text:
        raise ValueError(
            f"{connection!r} is neither a DB-API URL (sqlite:///PATH.db) nor an ODBC connection "
            "string (DRIVER={SQLite3};Database=PATH or DSN=name)"
        )
    m = _DB_NAME.search(text)
    name = Path(m.group(1).strip()).stem if m and m.group(1).strip() else ""
    return "odbc", text, name


def prepare_query(query: str) -> str:
    """The query with its one placeholder as ``?`` (both drivers take qmark); raises ValueError
    unless there is exactly one ``?`` or ``:last`` outside string literals."""
    bare = _LITERALS.sub("''", query)
    named = len(_NAMED.findall(bare))
    count = bare.count("?") + named
    if count != 1:
        raise ValueError(
            "the query needs exactly one placeholder for the last tracked value (? or :last), "
            f"found {count}; e.g. " + _EXAMPLE
        )
    return _NAMED.sub("?", query) if named else query
