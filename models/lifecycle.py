"""The alert lifecycle: opened, escalated, updated, closed — one story per ``alert_id``.

The alert policy (``models.alerts``) emits ``opened``, ``escalated`` (severity rose) and
``updated`` (breadth doubled) messages. This module adds the end: an alert is *closed* once
``quiet_period`` seconds of event time pass without an unusually broad read of its entity,
the same rule by which the policy stops extending it. The ``AlertBook`` holds the open
alerts by entity (one per entity and kind; a dict offline; a changelog-backed table in the
stream, so a restart or rebalance still closes what was open) and writes the ``closed``
message with the alert's duration and final figures.

>>> book = AlertBook(quiet_period=3600.0)
>>> _ = book.record({"alert_id": "a1", "kind": "broad_audience", "entity": "hr/x",
...                  "entity_type": "resource", "status": "opened", "revision": 0,
...                  "severity": "high", "score": 0.8, "breadth": 1.2, "ts": 0.0,
...                  "first_ts": "1970-01-01T00:00:00.000Z", "model_version": "v",
...                  "summary": "s", "sensitivity": "restricted", "team": "hr"}, last_ts=0.0)
>>> [m["status"] for m in book.close_due(clock=1800.0)], book.open_count()
([], 1)
>>> closed = book.close_due(clock=7200.0)[0]
>>> closed["status"], closed["revision"], closed["duration_s"]
('closed', 1, 3600.0)
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from reachwatch.models.alerts import ALERT_SCHEMA_VERSION, rfc3339

STATUSES = ("opened", "escalated", "updated", "closed")
PAGED_SEVERITIES = frozenset({"high", "critical"})


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60.0)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


class AlertBook:
    """Open alerts of one side by entity: their first and last unusually broad read and figures.

    Keyed by entity, not by ``alert_id``, so that in the stream the entry lives in the same
    partition as the entity's window state and moves with it on a rebalance.
    """

    def __init__(
        self,
        quiet_period: float = 24 * 3600.0,
        entries: MutableMapping[str, dict[str, Any]] | None = None,
    ) -> None:
        self.quiet_period = quiet_period
        self.entries: MutableMapping[str, dict[str, Any]] = entries if entries is not None else {}

    def record(self, message: Mapping[str, Any], last_ts: float) -> dict[str, Any]:
        """Note an ``opened``/``escalated``/``updated`` message; returns the entry."""
        entity = message["entity"]
        entry = self.entries.get(entity)
        if entry is None or entry["alert_id"] != message["alert_id"]:
            entry = {
                "alert_id": message["alert_id"],
                "kind": message["kind"],
                "entity": message["entity"],
                "entity_type": message.get("entity_type"),
                "first_ts": message["first_ts"],
                "opened_ts": last_ts,
                "last_ts": last_ts,
                "messages": 0,
                "peak_score": 0.0,
                "peak_breadth": 0.0,
            }
        entry["revision"] = message["revision"]
        entry["severity"] = message["severity"]
        entry["model_version"] = message.get("model_version")
        entry["summary"] = message.get("summary")
        entry["sensitivity"] = message.get("sensitivity")
        entry["team"] = message.get("team")
        entry["last_ts"] = max(entry["last_ts"], last_ts)
        entry["messages"] += 1
        entry["peak_score"] = max(entry["peak_score"], float(message.get("score") or 0.0))
        entry["peak_breadth"] = max(entry["peak_breadth"], float(message.get("breadth") or 0.0))
        self.entries[entity] = entry
        return entry

    def touch(self, entity: str, alert_id: str, last_ts: float) -> bool:
        """Move an open alert's last broad read forward; True when it changed."""
        entry = self.entries.get(entity)
        if entry is None or entry["alert_id"] != alert_id or last_ts <= entry["last_ts"]:
            return False
        entry["last_ts"] = last_ts
        self.entries[entity] = entry  # a table needs the write
        return True

    def due(self, clock: float) -> list[str]:
        """Entities whose open alert's quiet period is over at event time ``clock``."""
        return [
            entity
            for entity, entry in self.entries.items()
            if clock - entry["last_ts"] > self.quiet_period
        ]

    def close(self, entity: str) -> dict[str, Any]:
        """Remove an entity's open alert and return its ``closed`` message."""
        entry = self.entries.pop(entity)
        alert_id = entry["alert_id"]
        closed_at = entry["last_ts"] + self.quiet_period
        active = entry["last_ts"] - entry["opened_ts"]
        duration = closed_at - entry["opened_ts"]
        quiet = _duration(self.quiet_period)
        return {
            "schema_version": ALERT_SCHEMA_VERSION,
            "alert_id": alert_id,
            "revision": entry["revision"] + 1,
            "status": "closed",
            "kind": entry["kind"],
            "entity": entry["entity"],
            "entity_type": entry["entity_type"],
            "ts": rfc3339(closed_at),
            "first_ts": entry["first_ts"],
            "last_ts": rfc3339(entry["last_ts"]),
            "duration_s": round(duration, 3),
            "active_s": round(active, 3),
            "severity": entry["severity"],
            "score": round(entry["peak_score"], 6),
            "model_version": entry["model_version"],
            "summary": (
                f"closed: no unusually broad read for {quiet}; open {_duration(duration)}, "
                f"broad reads for {_duration(active)}, {entry['messages']} message(s), peak "
                f"severity {entry['severity']}. Last: {entry['summary']}"
            ),
            "evidence": [],
            "sample": [],
            "sensitivity": entry["sensitivity"],
            "team": entry["team"],
            "final": {
                "duration_s": round(duration, 3),
                "active_s": round(active, 3),
                "messages": entry["messages"],
                "peak_score": round(entry["peak_score"], 6),
                "peak_breadth": round(entry["peak_breadth"], 4),
                "severity": entry["severity"],
            },
        }

    def close_due(self, clock: float) -> list[dict[str, Any]]:
        return [self.close(entity) for entity in self.due(clock)]

    def open_count(self) -> int:
        return len(self.entries)


def pages(message: Mapping[str, Any]) -> bool:
    """Whether an alert message is a page: high/critical, or any exposure of restricted data."""
    if message.get("severity") in PAGED_SEVERITIES:
        return True
    return message.get("kind") == "broad_audience" and message.get("sensitivity") == "restricted"
