"""The accurate online template miner (issue 4): masking, then grouping by position-wise evidence.

The factory's miner (through :class:`~logfactory.factory.patterns.library.PatternLibrary`), and
what ``logfactory patterns parse`` and the accuracy benchmark run (mean GA 0.985, PA 0.932 on
Loghub-2k). On the demo's syslog messages it costs about 2 µs a message through the library.

How a message becomes a template (one default configuration for every kind of log):

1. Only the first line (bounded) is mined. Obvious variables are masked token by token
   (:mod:`~logfactory.factory.patterns.miner_mask`: numbers, ids, addresses, paths, dates...).
   Masking is planned once per *shape* (digits replaced by 0); words with digits that stay
   literal (``usr12``, ``cn05``) are read from the message at offsets the plan knows. The
   cluster is cached by (masked plan, kept words), so a known message costs one translation,
   a few slices and two dict lookups (~1.3 µs). A miss first tries the cluster that the same
   masked text resolved to, with kept words at positions that proved variable left out of the
   text (a new user at a generalised ``for <*> from``); only a text never seen searches the
   clusters, skipping with one set operation those whose literal words differ too much.
2. Clusters are grouped by (workshop, token count, first token; ``<*>`` when the first token is
   masked or too many first tokens share a length). A message that *fits* a cluster joins it: its
   literal words are equal, a masked token is the same masked token (``uid=<*>`` only takes
   ``uid=<*>``, or an empty value), and a word generalised earlier takes any value with its
   prefix and suffix.
3. A message that fits nothing may still generalise a near cluster (enough equal words, at most
   a third of the positions differing), but only on evidence that the differing words are values:
   they are values of one key (``user=root`` / ``user=guest``), a word stands where the cluster
   already holds a masked value, or it is a dotted name (host, class). Otherwise **two or more
   siblings** must differ from it in the same single position (a third value reveals a
   variable), and not both of them established (>= 10 messages each: two frequent words at one
   place are two events, ``cupsd startup`` / ``cupsd shutdown``). Siblings merge into the older.
4. **Proven constants are not generalised**: once a generalised position has shown three distinct
   values, the cluster's other literal words are the constant part of the message, and a message
   differing in one of them starts a new template (``Failed password for <*>`` and
   ``Failed none for <*>`` stay apart).
5. After a generalisation, clusters the general one now covers fold into it. The library hears
   of folded clusters at once (:meth:`AccurateMiner.take_absorbed`) and folds their entries into
   the general one's lineage; a folded cluster's next hit also reports the survivor's text, so
   content-derived ids keep working; parse-time users follow :meth:`AccurateMiner.current`.
6. Generalising a word keeps structural punctuation around it: ``user=<*>``, ``[<*>]``,
   ``MININT-<*>``, ``org.apache.<*>``.

Measured on Loghub-2k with corrected ground truth (``bench/patterns.py``): GA / PA per dataset
HDFS 0.998/0.999, Hadoop 0.989/0.913, Spark 0.925/0.922, Zookeeper 0.990/0.677,
BGL 0.992/0.981, HPC 0.990/0.988, Linux 1.000/0.985, OpenSSH 0.999/0.994; mean 0.985/0.932.

The library only uses :class:`Miner`'s methods and a cluster's ``handle`` and ``text``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol

from logfactory.factory.patterns.miner_cluster import (
    MAX_VALUES,
    Cluster,
    fits,
    generalise,
    learnt,
    template_tokens,
    valueish,
)
from logfactory.factory.patterns.miner_mask import (
    MAX_CHARS,
    MAX_TOKENS,
    PLANS,
    WILDCARD,
    ZEROS,
    Plan,
    cached_plan,
    clear_cache,
    first_line,
    masked_tokens,
    shape_of,
)

__all__ = [
    "MAX_TOKENS",
    "WILDCARD",
    "AccurateMiner",
    "Cluster",
    "Miner",
    "clear_caches",
    "extract_parameters",
    "mask",
    "shape_key",
]

_MAX_ABSORBED = 10_000  # merges remembered for take_absorbed; the library drains them at once
_ESTABLISHED = 10  # messages after which a cluster's literal words count as an event's own


def shape_key(message: str) -> bytes:
    """The message's shape: its first line as UTF-8 with every ASCII digit replaced by 0."""
    return shape_of(first_line(message))


def clear_caches() -> None:
    """Empty the process-wide masking caches (benchmarks measure a cold start with it)."""
    clear_cache()


def _variable(cluster: Cluster, keep: tuple[int, ...]) -> tuple[int, ...]:
    """Kept positions where ``cluster`` holds a generalised word. The first position only
    counts in the wildcard group: elsewhere the first word routes the search."""
    wild, values = cluster.wild, cluster.values
    return tuple(
        i for i in keep if wild[i] is not None and i in values and (i or cluster.key[2] == WILDCARD)
    )


def _blanked(tokens: list[str], var: tuple[int, ...]) -> str:
    """The text with the words at ``var`` left out (never equal to a template's text)."""
    words = list(tokens)
    for i in var:
        words[i] = ""
    return " ".join(words)


def mask(message: str) -> str:
    """The first line with obvious variables as ``<*>``, spaces normalised."""
    line = first_line(message)
    return " ".join(masked_tokens(line, cached_plan(shape_of(line))))


class Miner(Protocol):
    """What the library needs from a miner."""

    def add(self, workshop: str, message: str) -> tuple[Cluster, str | None]:
        """The message's cluster and, when this message generalised it, the previous text."""
        ...

    def seed(self, workshop: str, template: str) -> Cluster:
        """Add a known template (restore); returns the existing cluster with that text if any."""
        ...

    def retemplate(self, cluster: Cluster, template: str) -> bool:
        """Replace a cluster's template by a more general one learnt elsewhere; False if the
        shapes are incompatible (the cluster is then left as it is)."""
        ...

    def current(self, cluster: Cluster) -> Cluster:
        """The cluster that now stands for ``cluster`` (itself unless it merged)."""

    def take_absorbed(self) -> list[Cluster]:
        """Clusters merged into another since the last call (the library folds their entries)."""

    def forget(self, cluster: Cluster) -> None:
        """Drop a cluster (library eviction)."""
        ...


class AccurateMiner:
    """See the module docstring. The defaults are the one configuration for every log source;
    ``max_children`` bounds the search when messages start with an unmasked variable."""

    def __init__(
        self,
        similarity: float = 0.5,
        wild_weight: float = 0.5,
        max_children: int = 1000,
        cache_size: int = 100_000,
    ) -> None:
        self.similarity = similarity
        self.wild_weight = wild_weight
        self.max_children = max_children
        self.cache_size = cache_size
        self._next = 0
        self._groups: dict[tuple[str, int, str], list[Cluster]] = {}
        self._firsts: dict[tuple[str, int], set[str]] = {}
        self._cache: dict[str, dict[str | tuple[str, str], Cluster]] = {}
        # per workshop: plan text -> kept positions that proved variable (see _place)
        self._vars: dict[str, dict[str, tuple[int, ...]]] = {}
        # per workshop: template text, or text a search resolved -> cluster (see _place)
        self._texts: dict[str, dict[str, Cluster]] = {}
        self._absorbed: list[Cluster] = []  # see take_absorbed

    # -- hot path ---------------------------------------------------------------------------
    def add(self, workshop: str, message: str) -> tuple[Cluster, str | None]:
        cache = self._cache.get(workshop)
        if cache is None:
            cache = self._cache[workshop] = {}
            self._vars[workshop] = {}
            self._texts[workshop] = {}
        # first_line and shape_of, inlined: this is the per-record path
        end = message.find("\n")
        line = message if end < 0 else message[:end]
        if len(line) > MAX_CHARS:
            line = line[:MAX_CHARS]
        shape = line.encode("utf-8", "surrogatepass").translate(ZEROS)
        p = PLANS.get(shape)
        if p is None:
            p = cached_plan(shape)
        # shapes that mask alike share entries: the key is what the search would be given
        key: str | tuple[str, str] = p.text
        spots = p.spots
        if spots:
            if len(spots) == 1:
                start, end = spots[0]
                key = (p.text, line[start:end])
            else:
                key = (p.text, "\0".join([line[start:end] for start, end in spots]))
        cluster = cache.get(key)
        if cluster is not None:
            cluster.count += 1
            if cluster.successor is None:
                return cluster._hit
            return self._report(cluster)
        result = self._place(workshop, masked_tokens(line, p), p)
        cluster = result[0]
        cluster.count += 1
        if len(cache) >= self.cache_size:
            cache.clear()
        cache[key] = cluster
        return result

    def current(self, cluster: Cluster) -> Cluster:
        """The cluster that now stands for ``cluster`` (itself unless it merged)."""
        seen = 0
        while cluster.successor is not None and seen < 1000:
            cluster = cluster.successor
            seen += 1
        return cluster

    def _report(self, cluster: Cluster) -> tuple[Cluster, str | None]:
        """A hit on a merged cluster: adopt the survivor's text and tell the library once."""
        text = self.current(cluster).text
        if cluster.reported == text:
            return cluster._hit
        previous = cluster.reported
        cluster.retemplate(template_tokens(text))
        cluster.reported = text
        return cluster, previous

    # -- search and merge -------------------------------------------------------------------
    def _route(self, workshop: str, tokens: list[str]) -> tuple[str, int, str]:
        n = len(tokens)
        first = tokens[0] if tokens else ""
        if WILDCARD in first:
            first = WILDCARD
        seen = self._firsts.get((workshop, n))
        if seen is None:
            seen = self._firsts[(workshop, n)] = set()
        if first not in seen:
            if len(seen) >= self.max_children:
                first = WILDCARD
            seen.add(first)
        return (workshop, n, first)

    def _score(
        self, cluster: Cluster, tokens: list[str], limit: int
    ) -> tuple[int, float, int, list[int]] | None:
        """(exact, similarity, fitted, differing positions) of a message against a cluster;
        None as soon as more than ``limit`` positions differ (neither a fit nor near)."""
        literal = fitted = same_wild = 0
        diff: list[int] = []
        values = cluster.values
        wild = cluster.wild
        for i, t in enumerate(cluster.tokens):
            m = tokens[i]
            w = wild[i]
            if w is None:
                if t == m:
                    literal += 1
                    continue
            elif t == m:
                same_wild += 1
                continue
            elif fits(w, m) if i in values else m == w[0] + w[1]:
                fitted += 1
                continue
            diff.append(i)
            if len(diff) > limit:
                return None
        n = len(tokens) or 1
        return (0 if diff else 1), (literal + self.wild_weight * same_wild) / n, fitted, diff

    def _candidates(self, workshop: str, key: tuple[str, int, str]) -> list[Cluster]:
        group = self._groups.get(key, [])
        if key[2] != WILDCARD:
            fallback = self._groups.get((workshop, key[1], WILDCARD))
            if fallback:
                return group + fallback
        return group

    def _place(self, workshop: str, tokens: list[str], p: Plan) -> tuple[Cluster, str | None]:
        """A cache miss: a new shape, or new kept words. Before searching, try the cluster that
        the same masked text resolved to (or whose template it is), with the kept words at
        positions that proved variable for this plan left out of the text (``_vars``)."""
        key = self._route(workshop, tokens)
        texts = self._texts[workshop]
        var = self._vars[workshop].get(p.text, ()) if p.keep else ()
        text = " ".join(tokens)
        blanked = _blanked(tokens, var) if var else text
        same = texts.get(blanked)
        if (
            same is not None
            and same.successor is None
            and same.key[2] in (key[2], WILDCARD)
            and (same.text == text or self._score(same, tokens, 0) is not None)
        ):
            # it fits, so joining it only records values; when the text is its template it is
            # also the best fit (any other cluster that fits has a wildcard for a word)
            if same.text != text:
                self._merge(same, tokens)
            return same._hit
        result = self._search(workshop, key, tokens)
        cluster = result[0]
        if len(texts) >= self.cache_size:
            texts.clear()
        texts[cluster.text] = texts[text] = cluster
        if p.keep:
            learnt_var = _variable(cluster, p.keep)
            if learnt_var:
                texts[_blanked(tokens, learnt_var)] = cluster
            if learnt_var != var:
                vars_ = self._vars[workshop]
                if len(vars_) >= self.cache_size:
                    vars_.clear()
                vars_[p.text] = learnt_var
        return result

    def _search(
        self, workshop: str, key: tuple[str, int, str], tokens: list[str]
    ) -> tuple[Cluster, str | None]:
        candidates = self._candidates(workshop, key)
        best: Cluster | None = None
        best_score: tuple[float, int] = (-1.0, -1)
        near: list[tuple[Cluster, float, list[int]]] = []
        limit = max(1, len(tokens) // 3)
        words = set(enumerate(tokens))
        for cluster in candidates:
            # C-speed pre-check: more than ``limit`` literal words differ -> neither fits nor near
            if len(cluster.literals - words) > limit:
                continue
            scored = self._score(cluster, tokens, limit)
            if scored is None:
                continue
            exact, sim, fitted, diff = scored
            if exact:
                if (sim, -fitted) > best_score:
                    best, best_score = cluster, (sim, -fitted)
            elif sim >= self.similarity and len(diff) <= limit:
                if cluster.proven() and any(
                    i not in cluster.values and cluster.tokens[i] != WILDCARD for i in diff
                ):
                    continue
                near.append((cluster, sim, diff))
        if best is not None:
            previous = self._merge(best, tokens)
            if previous is not None:
                self._fold_covered(best)
            return best, previous
        if near:
            joined = self._join_near(near, tokens)
            if joined is not None:
                if joined[1] is not None:
                    self._fold_covered(joined[0])
                return joined
        cluster = self._new(workshop, key, tokens)
        return cluster._hit

    def _join_near(
        self, near: list[tuple[Cluster, float, list[int]]], tokens: list[str]
    ) -> tuple[Cluster, str | None] | None:
        """Generalise into a near cluster when the evidence says the differing words are
        variables: they look like values, or two or more siblings differ in the same places."""
        value_like = [
            (sim, -c.handle, c)
            for c, sim, diff in near
            if all(valueish(c.tokens[i], tokens[i]) for i in diff)
        ]
        if value_like:
            cluster = max(value_like, key=lambda x: (x[0], x[1]))[2]
            return cluster, self._merge(cluster, tokens)
        by_diff: dict[tuple[int, ...], list[Cluster]] = {}
        for c, _sim, diff in near:
            if len(diff) == 1:
                by_diff.setdefault(tuple(diff), []).append(c)
        if not by_diff:
            return None
        siblings = max(by_diff.values(), key=len)
        if len(siblings) < 2 or sum(c.count >= _ESTABLISHED for c in siblings) > 1:
            return None
        siblings.sort(key=lambda c: c.handle)
        survivor = siblings[0]
        previous = survivor.text
        for other in siblings[1:]:
            self._merge(survivor, other.tokens)
            self._absorb(survivor, other)
        self._merge(survivor, tokens)
        return survivor, (previous if survivor.text != previous else None)

    def _fold_covered(self, general: Cluster) -> None:
        """After ``general`` generalised, clusters it now covers (every message of theirs would
        fit it) merge into it: one event, one template."""
        for other in list(self._candidates(general.workshop, general.key)):
            if (
                other is not general
                and len(other.tokens) == len(general.tokens)
                and self._score(general, other.tokens, 0) is not None
            ):
                self._absorb(general, other)

    def take_absorbed(self) -> list[Cluster]:
        out, self._absorbed = self._absorbed, []
        return out

    def _absorb(self, survivor: Cluster, other: Cluster) -> None:
        other.successor = survivor
        if len(self._absorbed) < _MAX_ABSORBED:  # undrained (parse-only use): stay bounded
            self._absorbed.append(other)
        survivor.count += other.count
        for i, seen in other.values.items():
            mine = survivor.values.setdefault(i, set())
            for v in seen:
                if len(mine) >= MAX_VALUES:
                    break
                mine.add(v)
        group = self._groups.get(other.key)
        if group is not None and other in group:
            group.remove(other)

    def _merge(self, cluster: Cluster, tokens: list[str]) -> str | None:
        merged: list[str] | None = None
        values = cluster.values
        for i, (t, w, m) in enumerate(zip(cluster.tokens, cluster.wild, tokens, strict=True)):
            if w is None:
                if t == m:
                    continue
                seen = values.setdefault(i, {t})
            else:
                if t == m or m == w[0] + w[1]:  # the same, or an empty value
                    continue
                seen_at = values.get(i)
                if seen_at is not None:
                    if len(seen_at) < MAX_VALUES:
                        seen_at.add(m)
                    if fits(w, m):
                        continue
                seen = values.setdefault(i, {t})
            if len(seen) < MAX_VALUES:
                seen.add(m)
            if merged is None:
                merged = list(cluster.tokens)
            merged[i] = generalise(t, w, m)
        if merged is None:
            return None
        previous = cluster.text
        cluster.retemplate(merged)
        cluster.reported = cluster.text
        return previous

    def _new(self, workshop: str, key: tuple[str, int, str], tokens: list[str]) -> Cluster:
        self._next += 1
        cluster = Cluster(self._next, workshop, key, tokens)
        self._groups.setdefault(key, []).append(cluster)
        return cluster

    # -- maintenance --------------------------------------------------------------------------
    def seed(self, workshop: str, template: str) -> Cluster:
        tokens = template_tokens(template)
        first = tokens[0] if tokens else ""
        if WILDCARD in first:
            first = WILDCARD
        key = (workshop, len(tokens), first)
        text = " ".join(tokens)
        for cluster in self._groups.get(key, ()):
            if cluster.text == text:
                return cluster
        self._firsts.setdefault((workshop, len(tokens)), set()).add(first)
        self._texts.get(workshop, {}).clear()  # texts may now repeat across groups
        cluster = self._new(workshop, key, tokens)
        learnt(cluster)
        return cluster

    def retemplate(self, cluster: Cluster, template: str) -> bool:
        tokens = template_tokens(template)
        if len(tokens) != len(cluster.tokens):
            return False
        cluster.retemplate(tokens)
        cluster.reported = cluster.text
        learnt(cluster)
        self._texts.get(cluster.workshop, {}).clear()  # texts may now repeat
        return True

    def forget(self, cluster: Cluster) -> None:
        group = self._groups.get(cluster.key)
        if group is not None and cluster in group:
            group.remove(cluster)
            if not group:
                del self._groups[cluster.key]
        cache = self._cache.get(cluster.workshop)
        if cache:
            cache.clear()
        texts = self._texts.get(cluster.workshop)
        if texts:
            texts.clear()  # texts that resolved to it are held under other keys too

    def clusters(self) -> int:
        return sum(len(g) for g in self._groups.values())


@lru_cache(maxsize=4096)
def _template_regex(template: str) -> re.Pattern[str]:
    parts = []
    for token in template.split():
        pieces = token.split(WILDCARD)
        parts.append("(.*?)".join(re.escape(p) for p in pieces))
    return re.compile(r"\s*" + r"\s+".join(parts) + r"\s*$", re.S)


def extract_parameters(template: str, message: str) -> list[str] | None:
    """The values standing for ``<*>`` in ``template``, or None if the message does not fit.

    Not on the hot path: used for display and by tools, so it works from the template text alone.
    """
    found = _template_regex(template).match(message)
    if found is None:
        return None
    return list(found.groups())
