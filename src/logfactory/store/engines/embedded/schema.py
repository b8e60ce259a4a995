"""The tantivy schema every day's index shares, and StoredDoc <-> tantivy documents.

Nothing a query reads is *stored* column by column: each document's whole StoredDoc is one
stored ``blob`` (:mod:`.blob`: msgpack, zstd with the day's dictionary), which is what a hit
hands back. The columns are indexed or fast for the queries only.

Fields, and why each is built so:

- ``blob``: bytes, stored, not indexed: the StoredDoc (:mod:`.blob`).
- keyword columns (``host``, ``severity``, ...): the ``raw`` tokenizer (the whole value is one
  term, case kept), ``basic`` postings (no positions: they are never phrases), *fast* (a column
  per segment: terms aggregations, exists). ``origin`` is not indexed at all (it is in the
  blob, shown, never searched: :data:`~logfactory.store.document.SHOWN_ONLY`).
  ``id`` is unique per doc, so it is not fast (a fast column of unique strings costs disk and
  serves no aggregation).
  An empty value is not indexed at all, so ``exists`` means "not empty".
- ``time``, ``received``: i64 (never u64: a Python int given to an unsigned field kills the
  writer thread asynchronously), fast (sorting; ranges read the column). Not indexed:
  nanosecond times are nearly unique, so their terms would cost about 29 bytes a document
  (measured, 100,000 sample documents: 207 -> 178 B) for no query that needs them.
- ``sec``: ``time`` in whole seconds, fast only: histogram keys are f64 in tantivy, and
  nanoseconds since 1970 do not fit f64's 53 bits, seconds do, so second-aligned buckets count
  exactly.
- ``message``: the ``default`` tokenizer (split at non-alphanumerics, lower-cased, words of 40
  bytes or more dropped), with positions for phrases.
- ``fields``: the decoded fields as JSON: ``raw`` tokenizer, dots in names are paths
  (``{"job.id": 1}`` is ``fields.job.id``, as ``{"job": {"id": 1}}`` is), fast (top values
  and ranges of a field; measured on 100,000 sample documents it costs 6 bytes a document,
  3 % of the store).
- ``field_text``: ``path NUL value`` for every text leaf of ``fields``: tantivy cannot run a
  regex on a JSON subpath, so a prefix of a decoded field (``user:ali*``) is a regex on this.
- checkpoint documents (``kind`` :data:`CHECKPOINT_KIND`): one per bus partition, holding the
  highest offset this index has committed from it (``ckpt_offset``, and ``ckpt_of``: the
  stored ``topic/partition``). They have no ``time`` and no blob; every compiled query
  excludes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Final

import msgspec
import tantivy

from logfactory.store.document import KEYWORD_COLUMNS, SHOWN_ONLY, StoredDoc
from logfactory.store.engines.embedded.blob import DayPacker

__all__ = [
    "CHECKPOINT_KIND",
    "FAST_KEYWORDS",
    "FIELD_TEXT_SEP",
    "SCHEMA",
    "UNFAST_KEYWORDS",
    "checkpoint_doc",
    "checkpoint_id",
    "checkpoint_of",
    "hit_count",
    "is_panic",
    "leaves",
    "matches",
    "to_json",
]

CHECKPOINT_KIND: Final = "~checkpoint"
FIELD_TEXT_SEP: Final = "\x00"
UNFAST_KEYWORDS: Final = frozenset({"id", "origin"})
FAST_KEYWORDS: Final = KEYWORD_COLUMNS - UNFAST_KEYWORDS
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1
_KEYWORDS: Final = tuple(sorted(KEYWORD_COLUMNS - SHOWN_ONLY))  # origin: in the blob only


def _build() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    for name in _KEYWORDS:
        builder.add_text_field(
            name,
            stored=False,
            tokenizer_name="raw",
            index_option="basic",
            fast=name in FAST_KEYWORDS,
        )
    builder.add_integer_field("time", fast=True)
    builder.add_integer_field("received", fast=True)
    builder.add_integer_field("sec", fast=True)
    builder.add_text_field("message", tokenizer_name="default")
    builder.add_json_field(
        "fields",
        stored=False,
        fast=True,
        tokenizer_name="raw",
        index_option="basic",
        expand_dots_enabled=True,
    )
    builder.add_text_field("field_text", tokenizer_name="raw", index_option="basic")
    builder.add_bytes_field("blob", stored=True, indexed=False)
    builder.add_integer_field("ckpt_offset", stored=True)
    builder.add_bytes_field("ckpt_of", stored=True, indexed=False)
    return builder.build()


SCHEMA: Final = _build()


def _clean(value: Any) -> Any:
    """A field value tantivy takes without complaint: integers outside i64/u64 become floats,
    non-finite floats and anything JSON has no type for become their text."""
    if isinstance(value, dict):
        return {str(key): _clean(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(inner) for inner in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if _I64_MIN <= value <= _U64_MAX else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, leaf) of every value in decoded fields; a list is each of its items."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from leaves(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for inner in value:
            yield from leaves(inner, path)
    elif value is not None:
        yield path, value


def _flat_texts(fields: dict[str, Any]) -> list[str] | None:
    """``path NUL value`` of every text of flat ``fields`` whose leaves tantivy takes as they
    are (the common case: one pass, no copy), or None when a leaf needs :func:`_clean` or a
    walk (a nested object, a list, a number out of range)."""
    texts: list[str] = []
    for key, leaf in fields.items():
        kind = type(leaf)
        if kind is str:
            texts.append(f"{key}{FIELD_TEXT_SEP}{leaf}")
        elif kind is int:
            if not _I64_MIN <= leaf <= _U64_MAX:
                return None
        elif kind is float:
            if not math.isfinite(leaf):
                return None
        elif not (kind is bool or leaf is None):
            return None
    return texts


_json = msgspec.json.Encoder().encode


def to_json(doc: StoredDoc, packer: DayPacker) -> str:
    """The tantivy document for ``doc`` as JSON (for ``IndexWriter.add_json``; any fields: see
    :func:`_clean`), its blob made by ``packer`` (with the fields as tantivy takes them: a
    search hands back what it indexed). JSON, not ``tantivy.Document(**values)``: one msgspec
    encoding that Rust parses costs about half of building the document from Python objects
    (measured on bench documents), and the store's ingest is bound by this loop. The blob is a
    bytes field: JSON carries it in base64, as tantivy expects."""
    values: dict[str, Any] = {}
    for name in _KEYWORDS:
        value = getattr(doc, name)
        if value:
            values[name] = value
    values["time"] = doc.time
    values["received"] = doc.received
    values["sec"] = doc.time // 1_000_000_000
    values["message"] = doc.message
    fields = doc.fields
    if fields:
        texts = _flat_texts(fields)
        if texts is None:
            fields = _clean(fields)
            texts = [f"{path}{FIELD_TEXT_SEP}{leaf}" for path, leaf in leaves(fields)
                     if isinstance(leaf, str)]  # fmt: skip
            doc = msgspec.structs.replace(doc, fields=fields)
        values["fields"] = fields
        if texts:
            values["field_text"] = texts
    values["blob"] = packer.pack(doc)
    return _json(values).decode()


def is_panic(exc: BaseException) -> bool:
    """tantivy's Rust panics reach Python as ``pyo3_runtime.PanicException``, a BaseException:
    they must be caught by name, and are engine failures like any other."""
    return type(exc).__name__ == "PanicException"


def hit_count(result: tantivy.SearchResult) -> int:
    """How many documents a search matched (tantivy-py's stubs do not declare ``count``)."""
    return int(getattr(result, "count", 0) or 0)


def matches(searcher: tantivy.Searcher, query: tantivy.Query) -> int:
    """How many documents ``query`` matches in one index."""
    return hit_count(searcher.search(query, 1, count=True))


def checkpoint_id(topic: str, partition: int) -> str:
    return f"{CHECKPOINT_KIND}/{topic}/{partition}"


def checkpoint_doc(topic: str, partition: int, offset: int) -> tantivy.Document:
    """The document saying "offsets up to ``offset`` of ``topic``/``partition`` are here"."""
    out = tantivy.Document()
    out.add_text("id", checkpoint_id(topic, partition))
    out.add_text("kind", CHECKPOINT_KIND)
    out.add_integer("ckpt_offset", offset)
    out.add_bytes("ckpt_of", f"{topic}/{partition}".encode())
    return out


def checkpoint_of(stored: dict[str, list[Any]]) -> tuple[str, int, int] | None:
    """(topic, partition, offset) of a checkpoint document, or None for another."""
    origin, offset = stored.get("ckpt_of"), stored.get("ckpt_offset")
    if not origin or not offset:
        return None
    topic, _, part = bytes(origin[0]).decode(errors="replace").rpartition("/")
    if not topic or not part.isdigit():
        return None
    return topic, int(part), int(offset[0])
