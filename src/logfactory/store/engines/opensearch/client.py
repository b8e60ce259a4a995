"""The opensearch-py client as the store uses it, and engine trouble as :class:`StoreUnavailable`.

The client retries nothing itself (``max_retries=0``): the writer's bulk loop owns retries and
backoff, and a reader answers at once that the engine is down rather than hang. Note that
opensearch-py reads a ``timeout=`` argument as its own socket timeout; per request the store
passes ``request_timeout``, and a search's own deadline goes in its body.
"""

from __future__ import annotations

from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from logfactory.config.store import OpenSearchConfig
from logfactory.errors import StoreUnavailable

__all__ = ["is_retryable", "make_client", "unavailable"]


def make_client(config: OpenSearchConfig) -> OpenSearch:
    options: dict[str, Any] = {
        "hosts": list(config.hosts),
        "timeout": float(config.request_timeout),
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": config.verify_certs,
        "ssl_show_warn": False,
    }
    if config.username is not None and config.password is not None:
        options["http_auth"] = (config.username, config.password)
    if config.ca_file:
        options["ca_certs"] = config.ca_file
    return OpenSearch(**options)


def describe(exc: BaseException) -> str:
    """A short cause for a person: the status and OpenSearch's reason, or the socket error."""
    if isinstance(exc, OSConnectionError):
        return f"cannot connect ({exc.info or exc.error})"
    if isinstance(exc, TransportError):
        info = exc.info
        reason = ""
        if isinstance(info, dict):
            error = info.get("error")
            reason = error.get("reason", "") if isinstance(error, dict) else str(error or "")
        return f"HTTP {exc.status_code} {exc.error}{': ' + reason if reason else ''}"
    return f"{type(exc).__name__}: {exc}"


def unavailable(config: OpenSearchConfig, doing: str, exc: BaseException) -> StoreUnavailable:
    hosts = ", ".join(config.hosts)
    return StoreUnavailable(f"OpenSearch at {hosts}: {doing} failed: {describe(exc)}")


def is_retryable(exc: BaseException) -> bool:
    """Worth trying again: no connection, a timeout, too many requests, a server error."""
    if isinstance(exc, OSConnectionError):
        return True
    if isinstance(exc, TransportError):
        status = exc.status_code
        return isinstance(status, int) and (status == 429 or status >= 500)
    return False
