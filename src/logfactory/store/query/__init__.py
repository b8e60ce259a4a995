"""The query language: one typed tree (:mod:`.tree`) for the API, the CLI and the console.

- :mod:`.tree`: the nodes and :class:`~.tree.Query` (a tree plus its time window)
- :mod:`.parser`: the language (free text, ``"phrases"``, ``prefix*``, ``field:value``,
  ``field:>=10``, ``[a TO b]``, ``AND``/``OR``/``NOT``, parentheses) -> a tree, with errors
  naming the column
- :mod:`.timerange`: ``-15m``, ``-7d``, ``now``, RFC 3339 -> UTC nanoseconds
- :mod:`.intervals`: the histogram bucket width for a window
"""
