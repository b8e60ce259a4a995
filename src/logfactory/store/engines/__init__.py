"""The store's engines: ``embedded`` (tantivy) and ``opensearch``; :mod:`logfactory.store.engine`
is what both honour."""
