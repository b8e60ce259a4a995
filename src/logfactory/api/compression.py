"""Response compression: zstd or gzip, as the client's ``Accept-Encoding`` allows.

Search answers and exports are text that shrinks five- to tenfold, and an operations centre
often reaches its log centre over a thin link. The middleware is starlette-compress's (a
maintained package doing zstd, brotli and gzip for any ASGI app, streams included): zstd is
chosen when the client accepts it, else gzip; brotli is left off (two codings are enough, and
curl and every browser speak gzip). Whatever it compresses it marks ``Vary: Accept-Encoding``.

What is compressed: JSON answers of at least :data:`MINIMUM_BYTES` and exports (NDJSON, CSV),
which are compressed incrementally as their chunks are sent, never held whole. What is not:
Server-Sent Events (``text/event-stream``: each event must reach the subscriber the moment it
is sent, and a compressor holds bytes back), bodies that already carry a ``Content-Encoding``,
and small answers, where the coding's header would outweigh the gain.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette_compress import CompressMiddleware, add_compress_type, remove_compress_type

__all__ = ["COMPRESSED_TYPES", "MINIMUM_BYTES", "install"]

MINIMUM_BYTES = 1024
#: types the middleware does not compress by default and the API sends (the exports)
COMPRESSED_TYPES = ("application/x-ndjson", "text/csv")
_LEVEL = 3  # zstd's default and gzip's fast end: compressing costs less than sending


def install(app: FastAPI) -> None:
    """Compress ``app``'s answers as the module docstring says."""
    # the middleware keeps its types process-wide; setting them again is harmless
    for media_type in COMPRESSED_TYPES:
        add_compress_type(media_type)
    remove_compress_type("text/event-stream")
    app.add_middleware(
        CompressMiddleware,
        minimum_size=MINIMUM_BYTES,
        zstd=True,
        zstd_level=_LEVEL,
        brotli=False,
        gzip=True,
        gzip_level=_LEVEL,
    )
