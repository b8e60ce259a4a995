"""Where the SQL source reads from, and what it asks: connection forms, drivers, the query.

``connection`` is either an ODBC connection string (``DRIVER={SQLite3};Database=...``,
``DSN=name``), used through pyodbc (imported only here: it needs unixODBC's ``libodbc``), or a
DB-API URL; ``sqlite:///relative.db`` / ``sqlite:////absolute.db`` is read with the stdlib
``sqlite3`` (read-only). The query has exactly one placeholder, ``?`` or ``:last``, which receives
the last tracked value, e.g. ``SELECT id, ts, msg FROM events WHERE id > ? ORDER BY id``.

The two checks (:func:`parse_connection`, :func:`prepare_query`) live in :mod:`logfactory.sqlconn`,
which the configuration layer uses too, so that ``logfactory check`` rejects a bad setting
without connecting anywhere.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from logfactory.sqlconn import parse_connection, prepare_query

__all__ = ["connect", "parse_connection", "prepare_query", "require_driver"]


def require_driver(kind: str, source: str) -> None:
    """Fail early, naming what to install, when ``kind`` needs pyodbc and it cannot be imported
    (``source`` is the SQL source's name)."""
    if kind == "odbc":
        try:
            importlib.import_module("pyodbc")
        except ImportError as exc:
            raise RuntimeError(
                f"sql source {source!r} needs pyodbc and unixODBC (libodbc): {exc}"
            ) from exc


def connect(kind: str, target: str) -> Any:
    """A DB-API connection for ``parse_connection``'s ``(kind, target)``; SQLite read-only."""
    if kind == "sqlite":
        import sqlite3

        uri = Path(target).absolute().as_uri() + "?mode=ro"  # never creates it
        return sqlite3.connect(uri, uri=True, check_same_thread=False)
    pyodbc = importlib.import_module("pyodbc")  # untyped: no PEP 561 stubs
    return pyodbc.connect(target, autocommit=True)
