"""The HTTP layer: the node's API (FastAPI) and everything its routes use.

Where things are:

* :mod:`.app`: :func:`create_app`, which includes every router;
* :mod:`.context`: :class:`NodeContext` (what the node hands the API) and the API's shared state;
* :mod:`.auth`: every credential check, as FastAPI dependencies;
* :mod:`.routes`: one module per resource, each exposing ``router(ctx, state)``;
* helpers the routes share: :mod:`.responses` (error answers), :mod:`.metrics` (the node's
  numbers), :mod:`.ingest_body`, :mod:`.ingest_records`, :mod:`.ingest_shipped` (HTTP ingest
  bodies), :mod:`.sse_admission`, :mod:`.sse_reads` (SSE subscribers).

The log centre's store and console, when they come, are packages of their own beside this one:
the API serves them through routers here, it does not hold them.
"""

from logfactory.api.app import create_app
from logfactory.api.context import NodeContext

__all__ = ["NodeContext", "create_app"]
