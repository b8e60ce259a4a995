"""A cluster (one template) and the word-level rules the miner applies to it.

Kept apart from the search in :mod:`~logfactory.factory.patterns.miner` because these are the
rules that decide what a template *is*: which message tokens a template token accepts, how a word
generalises (keeping structural punctuation), and which pairs of words read as two values of
one parameter.
"""

from __future__ import annotations

from logfactory.factory.patterns.miner_mask import MAX_TOKENS, WILDCARD

__all__ = [
    "MAX_VALUES",
    "PROVEN",
    "Cluster",
    "fits",
    "generalise",
    "learnt",
    "template_tokens",
    "valueish",
]

_PREFIX_END = frozenset("=:[(<{'\"#/-@.")
_SUFFIX_CHARS = frozenset("])>}'\",;:.!?")
MAX_VALUES = 4  # distinct values remembered per generalised position
PROVEN = 3  # distinct values at one generalised position that prove the other words constant


def template_tokens(template: str) -> list[str]:
    tokens = template.split()
    if len(tokens) > MAX_TOKENS:
        tokens[MAX_TOKENS - 1 :] = [WILDCARD]
    return tokens


def _wild(token: str) -> tuple[str, str, int] | None:
    """(prefix, suffix, minimum length) of a template token holding ``<*>``, else None."""
    at = token.find(WILDCARD)
    if at < 0:
        return None
    prefix, suffix = token[:at], token[at + 3 :]
    return prefix, suffix, len(prefix) + len(suffix)


def fits(w: tuple[str, str, int], m: str) -> bool:
    return len(m) >= w[2] and m.startswith(w[0]) and m.endswith(w[1])


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def generalise(template: str, wild: tuple[str, str, int] | None, token: str) -> str:
    """The most specific ``prefix<*>suffix`` covering both the template token and ``token``:
    a kept prefix ends at structural punctuation (``user=``, ``[``, ``MININT-``), a kept suffix
    is punctuation only (``]``, ``),``)."""
    head, tail = (template, template) if wild is None else (wild[0], wild[1])
    room = min(len(token), len(template)) if wild is None else len(token)
    p = _common_prefix(head, token)
    s = _common_prefix(tail[::-1], token[::-1])
    prefix, suffix = head[:p], tail[len(tail) - s :] if s else ""
    if "<" in prefix:
        prefix = prefix[: prefix.index("<")]
    if ">" in suffix:
        suffix = suffix[suffix.rindex(">") + 1 :]
    while prefix and prefix[-1] not in _PREFIX_END:
        prefix = prefix[:-1]
    cut = 0
    while cut < len(suffix) and suffix[cut] not in _SUFFIX_CHARS:
        cut += 1
    suffix = suffix[cut:]
    if any(c not in _SUFFIX_CHARS for c in suffix):
        suffix = suffix[len(suffix) - len(suffix.lstrip("".join(_SUFFIX_CHARS))) :]
        suffix = "" if any(c not in _SUFFIX_CHARS for c in suffix) else suffix
    while suffix and len(prefix) + len(suffix) > room:
        suffix = suffix[1:]
    return prefix + WILDCARD + suffix


def valueish(token: str, other: str) -> bool:
    """Two words at one position that read like values of one parameter: one is a masked value
    already, they are values of one key (``user=root``, ``user=guest``), or one is a name with
    dots between letters (hosts, classes)."""
    if token == WILDCARD or other == WILDCARD:  # a word where the other holds a masked value
        return any(c.isalnum() for c in token + other)
    eq = token.find("=")
    if (
        eq > 0
        and token[: eq + 1] == other[: eq + 1]
        and WILDCARD not in token  # a masked value against a word is a different shape
        and WILDCARD not in other
    ):
        return True
    return _dotted(token) or _dotted(other)


def _dotted(token: str) -> bool:
    at = token.find(".", 1)
    return 0 < at < len(token) - 1 and token[at + 1].isalnum() and token[at - 1].isalnum()


def _literals(
    tokens: list[str], wild: list[tuple[str, str, int] | None]
) -> frozenset[tuple[int, str]]:
    """(position, word) of the literal words: a message differing in more of them than the
    search allows is skipped with one set operation."""
    return frozenset((i, t) for i, (t, w) in enumerate(zip(tokens, wild, strict=True)) if w is None)


class Cluster:
    """One template. ``handle`` is unique within a miner; ``text`` is the template text.

    ``successor`` is set when the cluster merged into another (it is then out of the search);
    ``reported`` is the text the library last saw for this handle; ``literals`` the
    (position, word) pairs of its literal words.
    """

    __slots__ = (
        "_hit",
        "count",
        "handle",
        "key",
        "literals",
        "reported",
        "successor",
        "text",
        "tokens",
        "values",
        "wild",
        "workshop",
    )

    def __init__(
        self, handle: int, workshop: str, key: tuple[str, int, str], tokens: list[str]
    ) -> None:
        self.handle = handle
        self.workshop = workshop
        self.key = key
        self.tokens = tokens
        self.wild = [_wild(t) for t in tokens]
        self.literals = _literals(tokens, self.wild)
        self.text = " ".join(tokens)
        self.reported = self.text
        self.successor: Cluster | None = None
        self.values: dict[int, set[str]] = {}
        self.count = 0
        self._hit: tuple[Cluster, str | None] = (self, None)

    def retemplate(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.wild = [_wild(t) for t in tokens]
        self.literals = _literals(tokens, self.wild)
        self.text = " ".join(tokens)

    def proven(self) -> bool:
        """Has one generalised position shown enough distinct values to trust the rest?"""
        return any(len(v) >= PROVEN for v in self.values.values())


def learnt(cluster: Cluster) -> None:
    """Wildcards in a template learnt elsewhere (restored, shared) stand for generalised words:
    they accept any value with their prefix and suffix, like wildcards learnt here."""
    for i, w in enumerate(cluster.wild):
        if w is not None:
            cluster.values.setdefault(i, set())
