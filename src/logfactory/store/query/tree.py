"""The typed query tree: what a query means, independent of how it was written or where it runs.

The parser (:mod:`.parser`) builds it from the query language; each engine compiles it to its
own form (tantivy query objects, OpenSearch Query DSL). User text only ever reaches an engine as
a *value* inside this tree, never spliced into another language, so no query can inject one.

Names: a node's ``field`` is a column of :data:`logfactory.store.document.COLUMNS` or a decoded
field written ``fields.NAME`` (``fields.job.id`` for a nested one). Free text (:class:`Word`,
:class:`Phrase`, :class:`Prefix` without a field) searches ``message``.

Text matching, the same on both engines: ``message`` is split into words at every character that
is not a letter or digit and lower-cased, so ``Failed`` finds ``failed``, and a value with
punctuation (``10.3.17.5``, ``/var/log/messages``, ``job_1234``) is searched as the phrase of
its words: ``10.3.17.5`` finds the address, ``10.3.17`` finds every address it begins, as words.
Keyword columns and decoded fields are matched whole and case-sensitively; ``host:cn0*`` is a
prefix of the whole value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "And",
    "Exists",
    "MatchAll",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Query",
    "Range",
    "RangeValue",
    "Term",
    "Word",
]

RangeValue: TypeAlias = int | float
"""A range bound: a number, or UTC nanoseconds for ``time`` and ``received``."""


@dataclass(frozen=True, slots=True)
class MatchAll:
    """Everything (an empty query, or ``*``)."""


@dataclass(frozen=True, slots=True)
class Word:
    """One word of free text (``field="message"``) or of a decoded text value.

    ``text`` is as written; a value with punctuation is matched as the phrase of its words."""

    text: str
    field: str = "message"


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words in this order, next to each other (``"failed password"``)."""

    text: str
    field: str = "message"


@dataclass(frozen=True, slots=True)
class Prefix:
    """Free text: a word beginning so (``pass*``); a keyword column or decoded field: its whole
    value beginning so (``host:cn0*``). ``text`` is without the ``*``, never empty."""

    text: str
    field: str = "message"


@dataclass(frozen=True, slots=True)
class Term:
    """A keyword column or decoded field equal to ``value`` (``host:cn0042``, ``user:alice``).

    ``value`` is the text as written. For a decoded field an engine also matches the number
    it spells (``port:22`` finds ``22`` stored as a number and as text)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Range:
    """``field:>=10``, ``field:[10 TO 20]``, ``time:>-15m``: numeric or time bounds.

    ``None`` leaves a side open; the ``include_*`` flags say whether a bound is inside."""

    field: str
    lower: RangeValue | None = None
    upper: RangeValue | None = None
    include_lower: bool = True
    include_upper: bool = True


@dataclass(frozen=True, slots=True)
class Exists:
    """The field has a value (``user:*``)."""

    field: str


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """Everything but ``child``, wherever it stands: the parser makes ``NOT x`` and ``-x`` a
    bare Not, also alone or under an Or (``a OR NOT b``); an engine supplies the "everything"
    (inside an And it is simply an exclusion)."""

    child: Node


Node: TypeAlias = MatchAll | Word | Phrase | Prefix | Term | Range | Exists | And | Or | Not


@dataclass(frozen=True, slots=True)
class Query:
    """A whole query: the tree plus the time window, in UTC nanoseconds (``None``: open).

    The window is on ``time``; ``start`` is inclusive, ``end`` exclusive, so adjacent windows
    never count a record twice."""

    where: Node
    start: int | None = None
    end: int | None = None
    text: str = ""  # as the person wrote it, for messages and the audit trail
