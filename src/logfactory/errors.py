"""Every exception logfactory raises on purpose, under one root.

Catching :class:`LogfactoryError` catches any failure that logfactory has already phrased for a
person (the message says what is wrong and what to do), and nothing else: a bug still shows as
the built-in exception it is. Each class also keeps the built-in base it had before this tree
existed (``ValueError``, ``RuntimeError``), so ``except ValueError`` written against older
versions still catches what it caught. The modules that raise them re-export them under their
old names (``logfactory.config.ConfigError`` is this module's class).

This module imports nothing else of logfactory: it is the bottom layer, importable from any.

The hierarchy (``test_errors.py`` checks that it names every class):

* LogfactoryError
    * ConfigError
    * TlsConfigError
    * NodeError
    * BusError
        * FencedError
        * MissingBusError
        * DamagedBusError
            * LostBusError
            * SwappedBusError
        * NothingToSalvage
        * RepairRefused
        * NoNodeError
    * CursorError
    * DecodeError
    * RelpError
    * IngestBodyError
        * BodyTooLarge
        * BadBody
        * UnsupportedEncoding
    * RequestRefused
        * AuthError
        * RateLimited
    * LearnError
    * LibraryFileError
    * ReviewError
    * LastAdminError
    * LocalCredentialError
    * StoreError
        * StoreUnavailable
        * QueryError

The CLI turns one that no command handled into one ``Error:`` line: exit status 2 for a
:class:`ConfigError`, 1 for any other (see docs/architecture.md, exit statuses).
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BadBody",
    "BodyTooLarge",
    "BusError",
    "ConfigError",
    "CursorError",
    "DamagedBusError",
    "DecodeError",
    "FencedError",
    "IngestBodyError",
    "LastAdminError",
    "LearnError",
    "LibraryFileError",
    "LocalCredentialError",
    "LogfactoryError",
    "LostBusError",
    "MissingBusError",
    "NoNodeError",
    "NodeError",
    "NothingToSalvage",
    "QueryError",
    "RateLimited",
    "RelpError",
    "RepairRefused",
    "RequestRefused",
    "ReviewError",
    "StoreError",
    "StoreUnavailable",
    "SwappedBusError",
    "TlsConfigError",
    "UnsupportedEncoding",
]


class LogfactoryError(Exception):
    """The root: a failure logfactory expected and has phrased for a person."""


# -- configuration and starting a node ----------------------------------------------------
class ConfigError(LogfactoryError, ValueError):
    """A configuration mistake, already phrased as ``FILE:LINE: what is wrong; what to write``."""


class TlsConfigError(LogfactoryError, ValueError):
    """A TLS setting that cannot work (a missing or unreadable file, a key that does not match)."""


class NodeError(LogfactoryError):
    """A condition the user can fix, already phrased for them (printed without a traceback)."""


# -- the bus -------------------------------------------------------------------------------
class BusError(LogfactoryError, RuntimeError):
    """The bus could not do what was asked; the message says why and what to check."""


class FencedError(BusError):
    """This consumer no longer owns a partition it tried to commit: another member took it over."""


class MissingBusError(BusError):
    """A reader opened a bus that no node has created (no directory, database or schema).

    Readers open with ``create=False`` so that a wrong ``data_dir`` is reported instead of
    becoming an empty bus that is then waited on forever.
    """


class DamagedBusError(BusError):
    """The bus database cannot be used as it is: SQLite finds it damaged (not a database, or
    a page that does not hold what it should), or it is not the database this directory had
    (see :mod:`logfactory.bus.local.marker`). The message names the file and the way out
    (``logfactory bus check`` / ``repair``); the node prints it as one line and refuses to
    start, rather than running on, or creating anew, a bus whose history is gone."""


class LostBusError(DamagedBusError):
    """The marker says this directory had a bus, but its database is missing or empty."""


class SwappedBusError(DamagedBusError):
    """The database is not the one the marker names: replaced by another bus's file."""


class NothingToSalvage(BusError):
    """Not even the damaged bus's list of topics can be read: no message can be named."""


class RepairRefused(BusError):
    """The repair needs a decision only a person can make (``--accept-loss``, ``--adopt``)."""


class NoNodeError(BusError):
    """A reader found no bus, or would wait for messages that no running node can write.

    ``text`` says which directory, which config and how to start a node; ``str()`` adds the
    SDK's way to wait instead, and the CLI adds its own (``--wait``).
    """

    def __init__(self, text: str) -> None:
        super().__init__(f"{text}, or pass wait=True to wait for one")
        self.text = text


# -- reading input -------------------------------------------------------------------------
class CursorError(LogfactoryError, ValueError):
    """The text is not a cursor this version wrote (corrupted, truncated or foreign)."""


class DecodeError(LogfactoryError, ValueError):
    """A record this workshop cannot decode; ``reason`` goes into the dead letter verbatim."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RelpError(LogfactoryError, ValueError):
    """The stream broke the framing or the session's rules; the message says how."""


class IngestBodyError(LogfactoryError, ValueError):
    """An HTTP ingest body that cannot be taken; the subclass picks the HTTP status."""


class BodyTooLarge(IngestBodyError):
    """The body (after decompression) is larger than the source's ``max_body_bytes``."""


class BadBody(IngestBodyError):
    """The body cannot be read as announced (corrupt or truncated compression, bad JSON array)."""


class UnsupportedEncoding(IngestBodyError):
    """A ``Content-Encoding`` this endpoint does not speak."""


class RequestRefused(LogfactoryError):
    """An HTTP request the API refuses while reading it (a body that is not what the route
    takes, a limit reached): ``status`` is the answer's, ``headers`` go with it, ``message``
    says what to send instead; ``reason``, when given, names the counter the refusal adds to
    (``logfactory_api_refused_total{reason=...}``). The API answers it ``{"error": message}``."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.reason = reason


class AuthError(RequestRefused):
    """An HTTP request refused for want of a (good enough) credential: 401 (none, or one the
    node does not know; ``WWW-Authenticate`` goes with it) or 403 (a role or scope too small)."""


class RateLimited(RequestRefused):
    """A request refused because its caller reached a limit against abuse (queries per second,
    login lock-out): always 429, with ``Retry-After`` in whole seconds; ``retry_after`` is what
    the header says."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(429, message, {"Retry-After": str(retry_after)})
        self.retry_after = retry_after


# -- the pattern library -------------------------------------------------------------------
class LearnError(LogfactoryError, ValueError):
    """The workshop asked for cannot be learned; the message says what to do."""


class LibraryFileError(LogfactoryError, ValueError):
    """A file that is not a readable pattern library; the message is ``FILE:LINE: what``."""


class ReviewError(LogfactoryError, ValueError):
    """A review request that cannot be applied; the message says what to send instead."""


# -- access control ------------------------------------------------------------------------
class LastAdminError(LogfactoryError, ValueError):
    """A change or removal of a user that would leave no active admin user; nothing changed."""


class LocalCredentialError(LogfactoryError):
    """The local admin credential cannot be read or is no longer valid; the message says why
    and what to do."""


class StoreError(LogfactoryError):
    """The log store could not do what was asked; the message says why."""


class StoreUnavailable(StoreError, RuntimeError):
    """The store's engine cannot take writes or answer now (down, full, unreachable): the
    store role pauses, keeps its place on the bus and retries; a query answers 503."""


class QueryError(StoreError, ValueError):
    """A search query a person wrote cannot be run: the message names the column (1-based)
    and what was expected there, or the limit the query would pass."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column
