"""The embedded store engine: tantivy, one index per UTC day of arrival, in the data directory.

- :mod:`.partitions`: the layout on disk (days, their time spans)
- :mod:`.schema`: the tantivy schema and StoredDoc <-> tantivy documents
- :mod:`.text`: text cut into words as the index cuts it; regex-safe literals
- :mod:`.compile`: the query tree -> tantivy queries, built programmatically
- :mod:`.writer`: :class:`EmbeddedWriter`, idempotent by bus position per day
- :mod:`.reader`: :class:`EmbeddedReader`: search, count, aggregations, context
- :mod:`.paging`: newest-first pages across days with exact (time, id) order
- :mod:`.inventory`: documents, bytes and times held

``docs/store-embedded.md`` is the user's page.
"""

from logfactory.store.engines.embedded.reader import EmbeddedReader
from logfactory.store.engines.embedded.writer import EmbeddedWriter

__all__ = ["EmbeddedReader", "EmbeddedWriter"]
