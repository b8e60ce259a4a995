"""The OpenSearch engine: the store on a cluster, for a site whose logs outgrow one machine.

:class:`OpenSearchWriter` (bulk writes, ``_id`` = the document id, retries, retention by
deleting daily indices) and :class:`OpenSearchReader` (the query tree as Query DSL). How the
documents lie in the indices is :mod:`.mapping`; ``docs/opensearch.md`` says it for users."""

from logfactory.store.engines.opensearch.reader import OpenSearchReader
from logfactory.store.engines.opensearch.writer import OpenSearchWriter

__all__ = ["OpenSearchReader", "OpenSearchWriter"]
