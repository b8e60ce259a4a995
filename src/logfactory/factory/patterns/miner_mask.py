"""Masking: which parts of a message are obviously variables, decided per whitespace token.

Conventions (those of the corrected Loghub ground truth, which follow how people read logs):

- Whole-token variables keep only their wrapping punctuation: URLs, IPv4 (with port, with a
  leading ``/``), IPv6, MACs, UUIDs, host names and ``host:port`` holding a digit, versions
  (``v1.2.3``, ``2.6.5-1.358``), absolute paths -> ``[<*>]``, ``<*>,``; in ``key=value`` the
  value alone is checked. A date written over several tokens (``Sat Jul 9 22:53:22 2005``) is
  one variable.
- Otherwise a token is cut into words (letters, digits, ``_``) and punctuation, and a word is a
  variable when it *looks like a value*: it starts with a digit or a sign (numbers, ``250ms``,
  ``1A``), joins digits with ``_`` (``attempt_1445_0020_m_0``, ``blk_-1608``), is a long hex run,
  or holds many digits. A word with a few digits in a name (``ssh2``, ``tty2``, ``r24``, ``ext4``)
  stays literal: such names are part of the message, and if one does vary the grouping step
  generalises it like any other word. Punctuation stays (``uid=<*>``, ``CPU#<*>``, ``PS/<*>``,
  ``audit(<*>:<*>)``); variables joined by ``.`` collapse (``<*>.<*>`` is one dotted value).

Masking depends on the message's *shape* (every ASCII digit replaced by ``0``) except for the
literal words that hold digits, so the shape keys a cache: a :class:`Plan` per shape says which
token positions must be re-read from the message itself (``keep``), and everything else is
answered without regex work. That keeps the hot path at a dict lookup for known shapes.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "MAX_CHARS",
    "MAX_TOKENS",
    "PLANS",
    "WILDCARD",
    "ZEROS",
    "Cut",
    "Plan",
    "cached_plan",
    "clear_cache",
    "first_line",
    "kept_token",
    "kept_words",
    "mask_token",
    "masked_tokens",
    "plan",
    "raw_tokens",
    "shape_of",
]

WILDCARD = "<*>"
MAX_CHARS = 4096
MAX_TOKENS = 80

_HEX = r"[0-9A-Fa-f]"
_WHOLE = re.compile(
    "|".join(
        [
            r"[A-Za-z][\w+.-]*://\S*",  # URL
            r"/?\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?",  # IPv4[:port]
            rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}",  # UUID
            rf"{_HEX}{{2}}(?:[:-]{_HEX}{{2}}){{5}}",  # MAC
            rf"(?:{_HEX}{{1,4}}:){{7}}{_HEX}{{1,4}}",  # IPv6, full
            rf"(?:{_HEX}{{1,4}}(?::{_HEX}{{1,4}}){{0,6}})?::(?:{_HEX}{{1,4}}(?::{_HEX}{{1,4}}){{0,6}})?",
            r"~?/[^/\s]+/\S*",  # a path with at least two parts (this token holds a digit)
            r"[\w-]+(?:\.[\w-]+)+\.[A-Za-z]{2,6}",  # a host name (this token holds a digit)
            r"[vV]?\d+(?:\.\d+)+(?:[-_.+~]\w+)*",  # a version
            r"[A-Za-z]\w*(?:[.-]\w+)+(?:/\d{1,3}(?:\.\d{1,3}){3})?:\d{2,5}",  # host[/IP]:port
            r"[\w-]+(?:\.[\w-]+)*/\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?",  # host/IP[:port]
        ]
    )
).fullmatch
_PATH = re.compile(r"~?/[\w.*~+-]+(?:/[\w.*~+-]*)*").fullmatch
_LEAD = "([{<\"'"
_TRAIL = ")]}>\"',;:."
# a word: letters, digits, _; a sign belongs to a number that does not follow a word or a dot;
# "_-" joins a negative number to its name (blk_-1608...)
_WORD = re.compile(r"(?:\w*_-)?(?:(?<![\w.])[-+](?=\d))?\w+")
_ADDRESS = re.compile(r"(?<![\w.])/?\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])")
_DOTTED = re.compile(r"<\*>(?:\.<\*>)+")
_HEXWORD = re.compile(r"(?:0[xX])?[0-9A-Fa-f]+").fullmatch
ZEROS = bytes.maketrans(b"0123456789", b"0000000000")
_NO_DIGITS = str.maketrans("", "", "0123456789")
_HAS_DIGIT = re.compile(r"\d").search
_NONSPACE = re.compile(r"\S+")  # str.split()'s tokens, with their places
_TOKENS: dict[str, tuple[str, bool]] = {}  # mask_token by shape token: tokens recur across shapes
_TOKENS_SIZE = 50_000
# a date-time written over several tokens (ctime, syslog) is one variable
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_DATE = re.compile(
    rf"\b(?:{_DAY},? +)?{_MONTH} +\d{{1,2}},? +\d{{1,2}}:\d\d(?::\d\d(?:[.,]\d+)?)?(?: +\d{{4}})?\b"
)


def clear_cache() -> None:
    """Forget the masking caches (benchmarks measure cold starts)."""
    _TOKENS.clear()
    PLANS.clear()
    _KEPT.clear()


def first_line(message: str) -> str:
    """Only the first line is mined (a stack trace is named by its first line), bounded."""
    end = message.find("\n")
    if end >= 0:
        message = message[:end]
    if len(message) > MAX_CHARS:
        message = message[:MAX_CHARS]
    return message


def _is_value(word: str) -> bool | None:
    """True: a variable; False: literal without digits; None: a literal that holds digits."""
    digits = len(word) - len(word.translate(_NO_DIGITS))
    if not digits:
        return False
    first = word[0]
    if first.isdigit() or first in "+-":
        return True
    if "_" in word or digits >= 5:
        return True
    if len(word) >= 8 and _HEXWORD(word) is not None:
        return True
    return None


def mask_token(token: str) -> tuple[str, bool]:
    """(masked token, whether it keeps a literal word holding digits). Pure function of the
    token; digit *values* never change the masked form except inside kept literal words."""
    digit = _HAS_DIGIT(token) is not None
    if not digit and "/" not in token:
        return token, False
    start, end = 0, len(token)
    while start < end and token[start] in _LEAD:
        start += 1
    while end > start and token[end - 1] in _TRAIL:
        end -= 1
    eq = token.find("=", start, end) + 1
    if 0 < eq < end:  # key=value: the value alone may be a whole variable
        start = eq
    core = token[start:end]
    if core and _PATH(core) is not None:
        # a sentence's full stop right after a path is read as part of it
        return token[:start] + WILDCARD + token[end:].removeprefix("."), False
    if core and digit and _WHOLE(core) is not None:
        return token[:start] + WILDCARD + token[end:], False
    if not digit:
        return token, False
    if "." in token:  # an address inside a longer token is one value (10.0.0.1:80:Got)
        token = _ADDRESS.sub(WILDCARD, token)
    keep = False
    parts: list[str] = []
    at = 0
    for found in _WORD.finditer(token):
        parts.append(token[at : found.start()])
        word = found.group()
        kind = _is_value(word)
        if kind:
            parts.append(WILDCARD)
        else:
            keep = keep or kind is None
            parts.append(word)
        at = found.end()
    parts.append(token[at:])
    masked = "".join(parts)
    if "<*>." in masked:
        masked = _DOTTED.sub(WILDCARD, masked)
    if masked.startswith("/<*>"):
        masked = masked[1:]
    return masked, keep


_MARK = "\x00"
Cut = tuple[tuple[tuple[int, int], ...], tuple[str, ...]]  # (word spans, masked pieces)


def kept_words(token: str) -> Cut | None:
    """Where the kept words of a token that keeps some lie, and the rest of its masked form.

    Run on the *shape* token: the masking decisions depend on the digits' places, never on their
    values, so every token of this shape masks to ``pieces[0] + word0 + pieces[1] + ...`` where
    word k is the message's own characters at ``spans[k]``. None when the token cannot be cut
    that way (it holds the marker character); the caller then masks the whole token."""
    if _MARK in token:
        return None
    # mask_token's word loop, run on the stretches between addresses (each one value)
    stretches: list[tuple[int, int]] = []
    at = 0
    if "." in token:
        for found in _ADDRESS.finditer(token):
            stretches.append((at, found.start()))
            at = found.end()
    stretches.append((at, len(token)))
    spans: list[tuple[int, int]] = []
    parts: list[str] = []
    for n, (begin, end) in enumerate(stretches):
        if n:
            parts.append(WILDCARD)
        stretch = token[begin:end]
        at = 0
        for found in _WORD.finditer(stretch):
            parts.append(stretch[at : found.start()])
            kind = _is_value(found.group())
            if kind:
                parts.append(WILDCARD)
            elif kind is None:
                spans.append((begin + found.start(), begin + found.end()))
                parts.append(_MARK)
            else:
                parts.append(found.group())
            at = found.end()
        parts.append(stretch[at:])
    masked = "".join(parts)
    if "<*>." in masked:
        masked = _DOTTED.sub(WILDCARD, masked)
    if masked.startswith("/<*>"):
        masked = masked[1:]
    pieces = tuple(masked.split(_MARK))
    if len(pieces) != len(spans) + 1 or not spans:
        return None
    return tuple(spans), pieces


class Plan(NamedTuple):
    """How to mask every message of one shape: the masked tokens, and the positions (``keep``)
    whose masked form depends on the message's own digits (re-read from the message).
    ``words[k]`` cuts the token at ``keep[k]`` (see :func:`kept_words`), None to mask it whole."""

    tokens: tuple[str, ...]
    keep: tuple[int, ...]
    dated: bool
    words: tuple[Cut | None, ...] = ()
    # (token position, start, end) of every kept word, in order: what keys a message's cache
    slots: tuple[tuple[int, int, int], ...] = ()
    text: str = ""  # the masked tokens joined: names the plan across shapes that mask alike
    # the kept words' (start, end) in the line itself, so a hit needs no split
    spots: tuple[tuple[int, int], ...] = ()


def raw_tokens(line: str, dated: bool) -> list[str]:
    """The message's own tokens, aligned with its plan's tokens."""
    return (_DATE.sub(WILDCARD, line) if dated else line).split()


def shape_of(line: str) -> bytes:
    """The line as UTF-8 with every ASCII digit replaced by 0. Exact: ASCII digits never occur
    inside a UTF-8 multi-byte sequence."""
    return line.encode("utf-8", "surrogatepass").translate(ZEROS)


def _unmasked(at: int, dates: list[re.Match[str]]) -> int:
    """A place in the text with its dates masked, as a place in the line itself."""
    for found in dates:
        masked_end = found.start() + len(WILDCARD)
        if masked_end > at:
            break
        at += found.end() - found.start() - len(WILDCARD)
    return at


def plan(shape: bytes) -> Plan:
    tokens: list[str] = []
    keep: list[int] = []
    words: list[Cut | None] = []
    text = shape.decode("utf-8", "surrogatepass")
    # a date holds a time, 0:00 in a shape: most shapes skip the date search
    dates = list(_DATE.finditer(text)) if "0:00" in text else []
    dated = bool(dates)
    if dated:
        text = _DATE.sub(WILDCARD, text)
    for i, raw in enumerate(text.split()):
        if i >= MAX_TOKENS - 1:
            tokens.append(WILDCARD)
            break
        found = _TOKENS.get(raw)
        if found is None:
            if len(_TOKENS) >= _TOKENS_SIZE:
                _TOKENS.clear()
            found = _TOKENS[raw] = mask_token(raw)
        masked, kept = found
        tokens.append(masked)
        if kept:
            keep.append(i)
            words.append(kept_words(raw))
    slots: list[tuple[int, int, int]] = []
    for i, cut in zip(keep, words, strict=True):
        if cut is None:
            slots.append((i, 0, MAX_CHARS + 1))
        else:
            slots.extend((i, start, end) for start, end in cut[0])
    spots: tuple[tuple[int, int], ...] = ()
    if slots:
        starts = [found.span() for found in _NONSPACE.finditer(text)]
        spots = tuple(
            (
                _unmasked(starts[i][0] + start, dates),
                _unmasked(min(starts[i][0] + end, starts[i][1]), dates),
            )
            for i, start, end in slots
        )
    return Plan(
        tuple(tokens), tuple(keep), dated, tuple(words), tuple(slots), " ".join(tokens), spots
    )


# -- process-wide caches: a plan per shape, the masked form of whole kept tokens -------------
PLANS: dict[bytes, Plan] = {}
PLANS_SIZE = 50_000
_KEPT: dict[str, str] = {}
_KEPT_SIZE = 20_000


def shape_key(message: str) -> bytes:
    """The message's shape: its first line as UTF-8 with every ASCII digit replaced by 0."""
    return shape_of(first_line(message))


def clear_caches() -> None:
    """Empty the process-wide masking caches (benchmarks measure a cold start with it)."""
    PLANS.clear()
    _KEPT.clear()
    clear_cache()


def cached_plan(shape: bytes) -> Plan:
    """The shape's plan, from the process-wide cache (bounded: cleared when full)."""
    found = PLANS.get(shape)
    if found is None:
        found = plan(shape)
        if len(PLANS) >= PLANS_SIZE:
            PLANS.clear()
        PLANS[shape] = found
    return found


def _kept(token: str) -> str:
    found = _KEPT.get(token)
    if found is None:
        found = mask_token(token)[0]
        if len(_KEPT) >= _KEPT_SIZE:
            _KEPT.clear()
        _KEPT[token] = found
    return found


def kept_token(cut: Cut | None, token: str) -> str:
    """The masked form of a token that keeps literal words, from its shape's cut."""
    if cut is None:
        return _kept(token)
    spans, pieces = cut
    if len(spans) == 1:
        start, end = spans[0]
        return pieces[0] + token[start:end] + pieces[1]
    out = [pieces[0]]
    for k, (start, end) in enumerate(spans):
        out.append(token[start:end])
        out.append(pieces[k + 1])
    return "".join(out)


def masked_tokens(line: str, p: Plan) -> list[str]:
    """The line's masked tokens, given its shape's plan."""
    tokens = list(p.tokens)
    if p.keep:
        raw = raw_tokens(line, p.dated)
        for i, cut in zip(p.keep, p.words, strict=True):
            tokens[i] = kept_token(cut, raw[i])
    return tokens
