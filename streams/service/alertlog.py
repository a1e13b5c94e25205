"""What ``/alerts/recent`` serves: the latest message of every alert, in a changelog table.

Each alert (by ``alert_id``) keeps its latest message (opened, escalated, updated or
closed) with the wall time this worker published it. The table is changelog-backed, so a
restarted worker serves what it served before; with several workers each serves the
alerts whose ids hash to its partitions, and Grafana's table reads every worker. At most
``capacity`` alerts are kept: beyond it the longest-closed (then the oldest) are dropped.

Queries filter by ``state`` (``open``/``closed``), ``kind`` and ``severity`` and page with
``limit``/``offset``, newest first.

>>> log = AlertLog({}, capacity=3)
>>> for n, status in enumerate(["opened", "opened", "closed"]):
...     log.add({"alert_id": "a", "status": status, "kind": "broad_audience",
...              "severity": "high", "revision": n}, published=float(n))
>>> [m["status"] for m in log.query(state="closed")], len(log)
(['closed'], 1)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson

STATES = ("open", "closed")


class AlertLog:
    """Latest message per alert over a mapping of bytes (a Faust table) or a dict."""

    def __init__(self, table: MutableMapping[Any, Any], capacity: int = 10_000) -> None:
        self.table = table
        self.capacity = capacity

    def add(self, message: Mapping[str, Any], published: float | None = None) -> None:
        """Keep ``message`` as its alert's latest (a lower revision never replaces a higher)."""
        key = str(message["alert_id"]).encode()
        raw = self.table.get(key)
        if raw is not None:
            kept = orjson.loads(raw)
            if kept["message"].get("revision", 0) > message.get("revision", 0):
                return
        entry = {
            "published": time.time() if published is None else published,
            "message": dict(message),
        }
        self.table[key] = orjson.dumps(entry)
        # Pruned in steps of a tenth: each prune decodes the whole table.
        if len(self.table) > self.capacity + max(1, self.capacity // 10):
            self._prune(len(self.table) - self.capacity)

    def _prune(self, excess: int) -> None:
        entries = [(k, orjson.loads(v)) for k, v in list(self.table.items()) if v is not None]
        # Closed ones first, then oldest published.
        entries.sort(
            key=lambda kv: (kv[1]["message"].get("status") != "closed", kv[1]["published"])
        )
        for key, _ in entries[:excess]:
            del self.table[key]

    def query(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        severity: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Latest messages matching the filters, the most recently published first."""
        found = []
        for raw in list(self.table.values()):
            if raw is None:
                continue
            entry = orjson.loads(raw)
            message = entry["message"]
            closed = message.get("status") == "closed"
            if state is not None and (state == "closed") != closed:
                continue
            if kind is not None and message.get("kind") != kind:
                continue
            if severity is not None and message.get("severity") != severity:
                continue
            found.append((entry["published"], message))
        found.sort(key=lambda pm: pm[0], reverse=True)
        end = None if limit is None else offset + max(0, limit)
        return [message for _, message in found[max(0, offset) : end]]

    def newest(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self.query(limit=limit)

    def __len__(self) -> int:
        return len(self.table)
