"""The plain baseline: fixed thresholds on distinct counts in a sliding hour.

"Distinct resources per principal per hour, and distinct readers per resource per hour,
above the history's 99.9th percentile." One threshold for everybody: no peer groups, no
sensitivity, no per-entity history. reachwatch is judged against it with the same
``evaluate``.

The statistic is the same in fitting and alerting: for each entity and clock hour, the
largest count of distinct counterparts seen in any 1-h window ending at one of its events
in that hour. The threshold is the quantile of that statistic over the history's active
entity-hours, so at the 99.9th percentile about one active entity-hour in a thousand of the
history would have fired.

>>> from reachwatch.models.records import AccessEvent
>>> history = [AccessEvent(ts=1e9 + i, principal="ana", resource=f"r{i % 3}") for i in range(9)]
>>> rule = fit_threshold_rule(history)
>>> (rule.reader_threshold, rule.audience_threshold)
(3.0, 1.0)
>>> [a["kind"] for a in rule.alerts([AccessEvent(ts=2e9 + i, principal="bo", resource=f"s{i}")
...                                  for i in range(5)])]
['broad_reader']
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import AccessEvent, parse_event
from reachwatch.models.sides import KINDS

WINDOW_SECONDS = 3600.0
QUANTILE = 0.999


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """Fitted thresholds: alert when a 1-h distinct count goes above them."""

    reader_threshold: float  # distinct resources one principal reads in an hour
    audience_threshold: float  # distinct principals reading one resource in an hour
    quantile: float = QUANTILE

    def alerts(self, events: Iterable[AccessEvent | dict[str, Any]]) -> list[dict[str, Any]]:
        """Alert JSON objects, at most one per kind, entity and clock hour, sorted by ts."""
        ordered = _sorted_events(events)
        found: list[dict[str, Any]] = []
        for kind in KINDS:
            threshold = self.threshold(kind)
            fired: set[tuple[str, int]] = set()
            for ts, entity, count in _sliding_counts(ordered, kind):
                hour = int(ts // 3600)
                if count > threshold and (entity, hour) not in fired:
                    fired.add((entity, hour))
                    found.append(_alert(kind, entity, ts, count, threshold, self.quantile))
        found.sort(key=lambda alert: (alert["ts"], alert["kind"], alert["entity"]))
        return found

    def threshold(self, kind: str) -> float:
        if kind == "broad_reader":
            return self.reader_threshold
        if kind == "broad_audience":
            return self.audience_threshold
        raise SchemaError("bad_value", f"kind must be one of {'|'.join(KINDS)}, got {kind!r:.40}")

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "reader_threshold": self.reader_threshold,
            "audience_threshold": self.audience_threshold,
            "quantile": self.quantile,
            "window_seconds": WINDOW_SECONDS,
        }


def fit_threshold_rule(
    history_events: Iterable[AccessEvent | dict[str, Any]], *, quantile: float = QUANTILE
) -> ThresholdRule:
    """Thresholds at ``quantile`` of the history's per entity-hour peak distinct counts."""
    if not 0.0 < quantile < 1.0:
        raise SchemaError("bad_value", f"quantile must be within (0, 1), got {quantile}")
    ordered = _sorted_events(history_events)
    if not ordered:
        raise SchemaError("missing_field", "no history events to fit thresholds on")
    thresholds = []
    for kind in KINDS:
        peaks: dict[tuple[str, int], int] = {}
        for ts, entity, count in _sliding_counts(ordered, kind):
            key = (entity, int(ts // 3600))
            if count > peaks.get(key, 0):
                peaks[key] = count
        thresholds.append(float(np.quantile(np.fromiter(peaks.values(), dtype=float), quantile)))
    return ThresholdRule(thresholds[0], thresholds[1], quantile)


def _sorted_events(events: Iterable[AccessEvent | dict[str, Any]]) -> list[AccessEvent]:
    parsed = [e if isinstance(e, AccessEvent) else parse_event(e) for e in events]
    parsed.sort(key=lambda e: e.ts)
    return parsed


def _sliding_counts(events: list[AccessEvent], kind: str) -> Iterator[tuple[float, str, int]]:
    """(ts, entity, distinct counterparts in the hour ending at ts) for every event."""
    windows: dict[str, tuple[deque[tuple[float, str]], Counter[str]]] = {}
    for event in events:
        if kind == "broad_reader":
            entity, counterpart = event.principal, event.resource
        else:
            entity, counterpart = event.resource, event.principal
        if entity not in windows:
            windows[entity] = (deque(), Counter())
        recent, seen = windows[entity]
        recent.append((event.ts, counterpart))
        seen[counterpart] += 1
        while recent[0][0] <= event.ts - WINDOW_SECONDS:
            _, old = recent.popleft()
            seen[old] -= 1
            if not seen[old]:
                del seen[old]
        yield event.ts, entity, len(seen)


def _alert(
    kind: str, entity: str, ts: float, count: int, threshold: float, quantile: float
) -> dict[str, Any]:
    what = "distinct resources read" if kind == "broad_reader" else "distinct readers"
    stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return {
        "schema_version": 1,
        "kind": kind,
        "entity": entity,
        "ts": stamp.replace("+00:00", "Z"),
        "severity": "medium",
        "summary": f"{count} {what} in 1 h, above the history's {quantile:.1%} "
        f"quantile of {threshold:g}",
        "value": count,
        "threshold": threshold,
        "detector": "threshold_rule",
    }
