"""Answers several route modules give: an error is ``{"error": "<what to do>"}`` with its status.

Every refusal of the API has this one shape, so a client reads ``error`` whichever route it
called; FastAPI's own ``{"detail": ...}`` appears only for parameters that fail validation (422).
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

__all__ = ["error_response"]


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """``{"error": message}`` with ``status`` (and ``headers``, e.g. ``Retry-After``)."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)
