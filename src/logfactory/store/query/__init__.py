"""The query language: one typed tree (:mod:`.tree`) for the API, the CLI and the console.

- :mod:`.tree`: the nodes and :class:`~.tree.Query` (a tree plus its time window)
- :mod:`.parser`: the language (free text, ``"phrases"``, ``prefix*``, ``field:value``,
  ``field:>=10``, ``[a TO b]``, ``AND``/``OR``/``NOT``, parentheses) -> a tree, with errors
  naming the column
  (:mod:`.building` turns lark's parse tree into the typed one, :mod:`.syntax_errors` says
  lark's errors in words)
- :mod:`.render`: a tree -> its canonical text, which parses back to the same tree
- :mod:`.timerange`: ``-15m``, ``-7d``, ``now``, RFC 3339 -> UTC nanoseconds
- :mod:`.intervals`: the histogram bucket width for a window, or as a person wrote it
"""
