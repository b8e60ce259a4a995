"""The log store: every parsed log and every event kept, searchable, counted.

The role (``logfactory store``, and inside ``logfactory run``) reads ``logs.parsed`` and the
``events.*`` topics in the consumer group ``store`` and writes them to an engine; the HTTP API
and the CLI query the engine through one query language.

The package:

- :mod:`.document`: :class:`StoredDoc`, the one shape both engines store, made from a
  ``logs.parsed`` record or an event envelope, and its columns
- :mod:`.query`: the query language: the typed tree (:mod:`.query.tree`), its parser, time
  ranges and histogram intervals
- :mod:`.engine`: the reader and writer contracts every engine honours, with their requests
  and results
- :mod:`.engines`: ``embedded`` (tantivy, one index per day in the data directory) and
  ``opensearch`` (daily indices on a cluster)
"""
