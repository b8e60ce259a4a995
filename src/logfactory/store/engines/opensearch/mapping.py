"""How a :class:`StoredDoc` lies in OpenSearch: index names, the index template, the document.

Indices: ``PREFIX-logs-YYYY.MM.DD`` and ``PREFIX-events-YYYY.MM.DD``, one pair per day of
*arrival* (``received``, UTC), the embedded engine's partition rule, so ``max_age`` drops the
same days on both engines and a replayed document lands in the index that already holds it
(its ``_id`` then overwrites it: the idempotency). Logs and events are apart because their
decoded fields differ in kind (a log's parsed key/values, an event's body): one family's
fields never crowd the other's mapping. One template covers both families; a search reads
``PREFIX-logs-*,PREFIX-events-*``.

Mappings: keyword columns are ``keyword`` (matched whole, case-sensitively); ``time`` and
``received`` are ``long`` UTC nanoseconds (sorting and ranges exact); ``tms`` is ``time`` in
milliseconds, doc values only, for exact histograms (a ``histogram`` agg reads values as
doubles, and nanoseconds beyond 2**53 would round by up to 128 ns near a bucket boundary).
``message`` is ``text`` analysed like tantivy's default tokenizer: split at every character
that is not alphabetic or numeric (Java's ``\\p{IsAlphabetic}`` and ``\\p{N}`` are Rust's
``char::is_alphanumeric``), words of 40 or more dropped (keeping their place), lower-cased.
One difference remains: tantivy measures a word in UTF-8 bytes, OpenSearch's ``length``
filter in UTF-16 units, so a non-ASCII word of 14 to 39 letters whose UTF-8 form reaches 40
bytes is dropped by the embedded engine and kept here (a painless predicate could count
bytes, but analysis scripts are not available in the node the project runs).

Decoded fields are kept so, which is what makes a type conflict harmless:

* ``fields``: the original object (``enabled: false``: stored, never parsed), so a document
  reads back exactly as it was written;
* ``f.NAME``: every leaf value as text (``22``, ``true``, ``alice``), ``keyword``, for
  ``field:value``, top values, distinct counts, exists and the prefixes of texts; arrays index
  each element;
* ``n.NAME``: every numeric leaf as ``double``, for ranges and ``port:22.0``;
* ``s.NAME`` and ``nontext``: only for a name whose leaves in this document are not all text
  (a number, a boolean): ``nontext`` lists the name and ``s.NAME`` holds its texts apart, so
  ``user:al*`` never finds the number 22 by its digits. A prefix reads ``f.NAME`` where the
  name is not in ``nontext``, ``s.NAME`` where it is. (Most leaves are texts alone: a copy of
  every one in ``s`` cost the node about a fifth of its time a document.)

Nothing is excluded from ``_source``: with any exclusion OpenSearch keeps a second, whole
copy of each document (``_recovery_source``) until its retention lease lapses, which costs
more to write than the indexed copies stored once. Searches leave those copies out of the
hits (:data:`INDEXED_ONLY`). Since every ``f``/``s`` value is text and every ``n`` value a
number, a field that is a number in one record and text in another never conflicts, and
no dynamic mapping guesses a type from a string's look (``date_detection`` and
``numeric_detection`` off). What still can (a name that is an object in one record and a
value in another, a name OpenSearch refuses, the total-fields limit) rejects that one
document; the writer then stores it again without ``f``/``s``/``n`` (``unindexed: true``):
kept and readable, its decoded fields not searchable.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

from logfactory.store.document import KEYWORD_COLUMNS, StoredDoc

__all__ = [
    "FIELD_LIMIT",
    "INDEXED_ONLY",
    "KEYWORD_MAX",
    "daily_index",
    "doc_body",
    "doc_from_source",
    "index_day",
    "index_patterns",
    "template_body",
    "template_name",
]

KEYWORD_MAX: Final = 8191
"""Longer decoded values are kept but not indexed (Lucene's term limit is 32,766 bytes)."""

FIELD_LIMIT: Final = 5000
"""``index.mapping.total_fields.limit``: a guard against mapping explosion per daily index."""

INDEXED_ONLY: Final = ("f", "s", "n", "nontext", "tms", "unindexed")
"""What the writer adds to a document for indexing: in ``_source``, never read back."""

DAY_NS: Final = 86_400 * 1_000_000_000
_DAY_FORMAT: Final = "%Y.%m.%d"
KINDS: Final = ("logs", "events")


def template_name(prefix: str) -> str:
    return f"{prefix}-store"


def index_patterns(prefix: str) -> list[str]:
    return [f"{prefix}-{kind}-*" for kind in KINDS]


def index_day(received_ns: int) -> str:
    """The UTC day of arrival as an index suffix: ``2026.12.06``."""
    return datetime.fromtimestamp(received_ns // 1_000_000_000, UTC).strftime(_DAY_FORMAT)


def daily_index(prefix: str, doc: StoredDoc) -> str:
    family = "logs" if doc.kind == "log" else "events"
    return f"{prefix}-{family}-{index_day(doc.received)}"


def day_start_ns(suffix: str) -> int | None:
    """The start (UTC ns) of the day an index suffix names; ``None`` for a foreign name."""
    try:
        day = datetime.strptime(suffix, _DAY_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(day.timestamp()) * 1_000_000_000


def template_body(prefix: str, shards: int, replicas: int) -> dict[str, Any]:
    # A value past ignore_above is kept in _source but not indexed, rather than refused.
    keyword = {"type": "keyword", "ignore_above": KEYWORD_MAX}
    properties: dict[str, Any] = {name: keyword for name in sorted(KEYWORD_COLUMNS)}
    properties["id"] = {"type": "keyword"}  # ids are short; one that is not must not hide
    # where a record was read: shown and matched, never sorted or counted
    properties["origin"] = {"type": "keyword", "doc_values": False, "ignore_above": KEYWORD_MAX}
    properties |= {
        "time": {"type": "long"},
        "received": {"type": "long"},
        "tms": {"type": "long", "index": False},
        "message": {"type": "text", "analyzer": "lf_words", "norms": False},
        "fields": {"type": "object", "enabled": False},
        "f": {"type": "object", "dynamic": True},
        "s": {"type": "object", "dynamic": True},
        "n": {"type": "object", "dynamic": True},
        "unindexed": {"type": "boolean"},
        # the decoded names that hold a number or boolean in this document (prefixes: below)
        "nontext": {"type": "keyword", "doc_values": False},
    }
    return {
        "index_patterns": index_patterns(prefix),
        "priority": 100,
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                # The writer refreshes what it wrote at each commit; the periodic refresh is
                # only a safety net, and rare refreshes make fewer, larger segments at ingest.
                "refresh_interval": "30s",
                # Every acknowledged bulk is on disk: the role commits bus offsets after it.
                "translog.durability": "request",
                "mapping.total_fields.limit": FIELD_LIMIT,
                "mapping.depth.limit": 20,
                "analysis": {
                    "tokenizer": {
                        "lf_words": {
                            "type": "pattern",
                            "pattern": "[^\\p{IsAlphabetic}\\p{N}]+",
                        }
                    },
                    "filter": {"lf_long": {"type": "length", "max": 39}},
                    "analyzer": {
                        "lf_words": {
                            "type": "custom",
                            "tokenizer": "lf_words",
                            "filter": ["lf_long", "lowercase"],
                        }
                    },
                },
            },
            "mappings": {
                "dynamic": "strict",
                # No guessing from a string's look: every decoded text is a keyword, or a
                # "2025-11-01T08:23:58Z" would map f.time as a date and refuse the next
                # record's "2025-11-01 08:23:58" (and "22" would become a number).
                "date_detection": False,
                "numeric_detection": False,
                # No _source excludes: with any, OpenSearch keeps a second, whole copy of
                # every document (_recovery_source) for hours; f, n (and the rare s, nontext)
                # stored once cost less to write than that, and less disk.
                "dynamic_templates": [
                    {
                        "f_text": {
                            "path_match": "f.*",
                            "match_mapping_type": "string",
                            "mapping": {"type": "keyword", "ignore_above": KEYWORD_MAX},
                        }
                    },
                    {
                        "s_text": {
                            "path_match": "s.*",
                            "match_mapping_type": "string",
                            # prefixes only: searched in the index, never sorted or counted
                            "mapping": {
                                "type": "keyword",
                                "ignore_above": KEYWORD_MAX,
                                "doc_values": False,
                            },
                        }
                    },
                    {
                        "n_long": {
                            "path_match": "n.*",
                            "match_mapping_type": "long",
                            "mapping": {"type": "double", "doc_values": False},
                        }
                    },
                    {
                        "n_double": {
                            "path_match": "n.*",
                            "match_mapping_type": "double",
                            "mapping": {"type": "double", "doc_values": False},
                        }
                    },
                ],
                "properties": properties,
            },
        },
    }


def value_text(value: object) -> str:
    """A decoded leaf as text, as top values show it and ``field:value`` matches it: JSON's
    spelling for booleans, a whole float without its ``.0`` (the embedded engine's rule)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _leaves(
    fields: dict[str, Any], out: dict[str, dict[str, Any]], nontext: list[str], path: str = ""
) -> None:
    """Fill ``out["f"]``, ``out["s"]``, ``out["n"]`` with ``fields``'s leaves (same paths),
    and ``nontext`` with the dotted names that hold a leaf other than text."""
    f, s, n = out["f"], out["s"], out["n"]
    for key, value in fields.items():
        if type(value) is str:  # by far the most common leaf: one text, nothing else to do
            f[key] = value
            continue
        if isinstance(value, dict):
            inner: dict[str, dict[str, Any]] = {"f": {}, "s": {}, "n": {}}
            _leaves(value, inner, nontext, f"{path}{key}.")
            for family, found in inner.items():
                if found:
                    out[family][key] = found
            continue
        items = value if isinstance(value, list) else [value]
        scalars = [v for v in items if v is not None and not isinstance(v, dict | list)]
        if not scalars:
            continue
        f[key] = [value_text(v) for v in scalars]
        texts = [v for v in scalars if isinstance(v, str)]
        if len(texts) < len(scalars):
            nontext.append(path + key)
            if texts:  # only here do texts need a copy apart from the numbers' text forms
                s[key] = texts
        numbers = [float(v) for v in scalars if _is_number(v)]
        if numbers:
            n[key] = numbers


def doc_body(doc: StoredDoc, *, indexed_fields: bool = True) -> dict[str, Any]:
    """The document sent to OpenSearch: empty columns left out (so ``exists`` means "has a
    value", as on the embedded engine), decoded fields kept as described above."""
    body: dict[str, Any] = {"id": doc.id, "kind": doc.kind, "time": doc.time}
    body["received"] = doc.received
    body["tms"] = doc.time // 1_000_000
    for name in ("host", "source", "message", "workshop", "type", "subtype", "severity",
                 "pattern", "status", "origin"):  # fmt: skip
        value = getattr(doc, name)
        if value:
            body[name] = value
    if doc.fields:
        body["fields"] = doc.fields
        if indexed_fields:
            families: dict[str, dict[str, Any]] = {"f": {}, "s": {}, "n": {}}
            nontext: list[str] = []
            _leaves(doc.fields, families, nontext)
            body |= {family: found for family, found in families.items() if found}
            if nontext:
                body["nontext"] = nontext
        else:
            body["unindexed"] = True
    return body


def doc_from_source(source: dict[str, Any]) -> StoredDoc:
    """A hit's ``_source`` back as the document that was stored."""
    return StoredDoc(
        id=source["id"],
        kind=source["kind"],
        time=source["time"],
        received=source["received"],
        host=source.get("host", ""),
        source=source.get("source", ""),
        message=source.get("message", ""),
        workshop=source.get("workshop", ""),
        type=source.get("type", ""),
        subtype=source.get("subtype", ""),
        severity=source.get("severity", ""),
        pattern=source.get("pattern", ""),
        status=source.get("status", ""),
        fields=source.get("fields", {}),
        origin=source.get("origin", ""),
    )
