"""Reading the small JSON bodies of the API's writes (login, users, tokens, reviews).

Each such route takes ``application/json`` only: a browser sends that type across sites only
after a CORS preflight the node refuses, so a page on another site cannot forge these writes
with a "simple" ``text/plain`` form post. Bodies are small and bounded, decoded into a
``msgspec`` struct that refuses unknown fields, and every refusal is a clear 4xx.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from fastapi import Request

from logfactory.api.safety import require_json
from logfactory.errors import RequestRefused

__all__ = ["MAX_JSON_BYTES", "read_json"]

#: the largest body these routes read
MAX_JSON_BYTES = 64 * 1024

T = TypeVar("T")


async def read_json(request: Request, kind: type[T], max_bytes: int = MAX_JSON_BYTES) -> T:
    """The request's body as a ``kind``, or :class:`RequestRefused` (415, 413 or 400)."""
    await require_json(request)  # the one Content-Type check of JSON routes
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise RequestRefused(413, f"body larger than {max_bytes} bytes")
    try:
        return msgspec.json.decode(bytes(body), type=kind)
    except msgspec.ValidationError as exc:
        raise RequestRefused(400, f"the body is not what this route takes: {exc}") from None
    except msgspec.DecodeError as exc:
        raise RequestRefused(400, f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:  # msgspec raises it, not a DecodeError, for bytes not UTF-8
        raise RequestRefused(400, "the body is not valid JSON: its text is not UTF-8") from None
