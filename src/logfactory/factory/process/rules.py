"""The process stage: composite events from windowed threshold rules.

A rule (``config.ThresholdRule``) counts records that match ``when`` per value of its ``key``
field (a decoded field or a named group of the ``when.message`` regex) in a sliding window of
event time. When a key reaches ``threshold`` records within ``window``, one event is made:

- ``id = composite_event_id(rule.name, key, time of the window's first hit)``: a replay of the
  same input makes the same id, so subscribers de-duplicate;
- ``time_ns`` is the triggering record's time; ``host`` is the host if all hits share one;
- ``reason`` is the rule's template rendered with the record's values plus ``key``, ``count``,
  ``window`` (as written in the config, e.g. ``60s``), ``window_s``, ``first_seen``,
  ``last_seen``, the rule's key name, and the ``collect`` lists;
- ``body = {<key name>: key, count, window_s, first_seen, last_seen, <collected>, evidence}``
  where each ``collect`` name ``n`` becomes the sorted distinct values under ``n + "s"`` (``n``
  itself if it already ends in ``s``: ``addr`` -> ``addrs``, ``hosts`` -> ``hosts``), and
  ``evidence`` holds the last ``max_evidence`` hits as ``{time, host, message}``.

After firing, the key is suppressed for ``suppress``: the rest of the burst makes no second event;
a burst after the suppression ends starts a new window and so a new id.

``expire`` prunes with the stage's *event-time* watermark (the newest record time seen, never
ahead of the wall clock passed in), so replays of old logs behave like the live stream; while no
records arrive, windows wait (their number is bounded by ``max_keys_per_rule`` anyway).
``snapshot`` is deterministic JSON and cached until the state changes, so the worker may call it
on every batch and compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from logfactory.config import ThresholdRule
from logfactory.config.rules import plural
from logfactory.config.units import duration_text
from logfactory.event import composite_event_id, format_time
from logfactory.factory.matching import Matcher, Template, record_values
from logfactory.factory.model import Decoded, Draft
from logfactory.factory.process.windows import MAX_MESSAGE_CHARS, Hit, KeyedWindows, Window

__all__ = ["ProcessStage", "plural"]

SNAPSHOT_VERSION = 1


def _lookup(decoded: Decoded, captured: dict[str, Any], name: str) -> Any:
    value = captured.get(name)
    if value is None:
        value = decoded.fields.get(name)
    if value is None and name == "host":
        value = decoded.record.host
    return value


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


class _Rule:
    __slots__ = (
        "collect",
        "keys",
        "matcher",
        "names",
        "reason",
        "rule",
        "suppress_ns",
        "window_ns",
        "window_s",
        "window_text",
    )

    def __init__(self, rule: ThresholdRule, max_keys: int) -> None:
        self.rule = rule
        self.matcher = Matcher(rule.when)
        window = float(rule.window)
        self.window_s = _seconds(window)
        self.window_ns = int(window * 1e9)
        self.suppress_ns = int(rule.suppress * 1e9)
        self.window_text = duration_text(rule.window)
        self.reason = Template(rule.reason)
        self.collect = tuple(rule.collect)
        self.names = tuple(plural(n) for n in rule.collect)
        self.keys = KeyedWindows(max_keys)


class _Snapshot(msgspec.Struct):
    version: int
    watermark: int
    # rule name -> [[key, suppressed_until, [[time, host, message, [collected...]], ...]], ...]
    rules: dict[str, list[tuple[str, int, list[tuple[int, str | None, str, list[str | None]]]]]]


_encode = msgspec.json.Encoder().encode
_decode_snapshot = msgspec.json.Decoder(_Snapshot).decode


class ProcessStage:
    """See the module docstring."""

    def __init__(self, rules: Sequence[ThresholdRule], max_keys_per_rule: int = 10_000) -> None:
        self._rules = tuple(_Rule(r, max_keys_per_rule) for r in rules)
        self._by_name = {r.rule.name: r for r in self._rules}
        self._watermark = 0
        self._snapshot: bytes | None = None
        self.suppressed = 0  # hits dropped because their key was suppressed

    def feed(self, decoded: Decoded) -> list[Draft]:
        """Count ``decoded`` in every rule it matches; the events of rules that fired."""
        if not self._rules:
            return []
        if decoded.time_ns > self._watermark:
            self._watermark = decoded.time_ns
        drafts: list[Draft] = []
        for rule in self._rules:
            captured = rule.matcher.match(decoded)
            if captured is None:
                continue
            key = _lookup(decoded, captured, rule.rule.key)
            if key is None or key == "":
                continue
            draft = self._count(rule, str(key), decoded, captured)
            if draft is not None:
                drafts.append(draft)
        return drafts

    def _count(
        self, rule: _Rule, key: str, decoded: Decoded, captured: dict[str, Any]
    ) -> Draft | None:
        window = rule.keys.touch(key)
        t = decoded.time_ns
        if t < window.suppressed_until:
            self.suppressed += 1
            return None
        self._snapshot = None
        host = decoded.fields.get("host") or decoded.record.host
        collected = tuple(
            None if (v := _lookup(decoded, captured, name)) is None else str(v)
            for name in rule.collect
        )
        hit = Hit(
            t, None if host is None else str(host), decoded.message[:MAX_MESSAGE_CHARS], collected
        )
        if not window.add(hit, rule.window_ns) or len(window.hits) < rule.rule.threshold:
            return None
        hits = window.fire(t + rule.suppress_ns)
        return self._draft(rule, key, hits, decoded, captured)

    def _draft(
        self, rule: _Rule, key: str, hits: list[Hit], decoded: Decoded, captured: dict[str, Any]
    ) -> Draft:
        r = rule.rule
        start, end = hits[0].time_ns, hits[-1].time_ns
        body: dict[str, Any] = {
            r.key: key,
            "count": len(hits),
            "window_s": rule.window_s,
            "first_seen": format_time(start),
            "last_seen": format_time(end),
        }
        for i, name in enumerate(rule.names):
            body[name] = sorted({v for h in hits if (v := h.collected[i]) is not None})
        evidence = hits[-r.max_evidence :] if r.max_evidence > 0 else []
        body["evidence"] = [
            {"time": format_time(h.time_ns), "host": h.host, "message": h.message} for h in evidence
        ]
        values = record_values(decoded, captured, "time" in rule.reason.names)
        values.update(body)
        values["key"] = key
        values["window"] = rule.window_text
        hosts = {h.host for h in hits}
        return Draft(
            type=r.type,
            subtype=r.subtype,
            severity=r.severity,
            reason=str(rule.reason.render(values)),
            body=body,
            pattern=decoded.pattern,
            id=composite_event_id(r.name, key, start),
            time_ns=decoded.time_ns,
            host=hosts.pop() if len(hosts) == 1 else None,
        )

    # -- housekeeping -----------------------------------------------------------------------------
    def expire(self, now_ns: int) -> int:
        """Drop stale partial windows and ended suppressions; return how many keys went."""
        reference = min(self._watermark, now_ns)
        removed = 0
        for rule in self._rules:
            removed += rule.keys.expire(reference, rule.window_ns)
        if removed:
            self._snapshot = None
        return removed

    def open_windows(self) -> int:
        """Keys with hits waiting for more (suppressed keys with no hits do not count)."""
        return sum(rule.keys.partial() for rule in self._rules)

    def snapshot(self) -> bytes:
        """The whole in-flight state as JSON (no pickle); the same state gives the same bytes."""
        if self._snapshot is None:
            rules = {
                rule.rule.name: [
                    (
                        key,
                        w.suppressed_until,
                        [(h.time_ns, h.host, h.message, list(h.collected)) for h in w.hits],
                    )
                    for key, w in rule.keys.items()
                ]
                for rule in self._rules
            }
            self._snapshot = _encode(_Snapshot(SNAPSHOT_VERSION, self._watermark, rules))
        return self._snapshot

    def restore(self, data: bytes) -> None:
        """Load a snapshot. Rules no longer configured are ignored; a ``collect`` list that
        changed length resets that rule's collected values. Raises ValueError on bad data."""
        try:
            snap = _decode_snapshot(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a process-stage snapshot: {exc}") from exc
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported process-stage snapshot version {snap.version}")
        self._watermark = max(self._watermark, snap.watermark)
        for name, windows in snap.rules.items():
            rule = self._by_name.get(name)
            if rule is None:
                continue
            width = len(rule.collect)
            for key, until, hits in windows[-rule.keys.max_keys :]:
                restored = [
                    Hit(t, host, message, tuple(c) if len(c) == width else (None,) * width)
                    for t, host, message, c in hits
                ]
                restored.sort(key=lambda h: h.time_ns)
                rule.keys.put(key, Window(restored, until))
        self._snapshot = None
