"""The latest alerts one worker published, kept in memory for ``/alerts/recent``.

A bounded ring: the SOC's top-alerts table wants "what just happened" without a Kafka
client in Grafana, and the alerts topic stays the record of truth (a SIEM reads that). Only
alerts are kept, exactly as published (their JSON objects), never the events behind them;
a restart starts the ring empty.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any


class RecentAlerts:
    """The last ``capacity`` alerts added, newest first.

    >>> recent = RecentAlerts(capacity=2)
    >>> for n in (1, 2, 3):
    ...     recent.add({"alert_id": str(n)})
    >>> [a["alert_id"] for a in recent.newest()]
    ['3', '2']
    """

    def __init__(self, capacity: int = 200) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._alerts: deque[Mapping[str, Any]] = deque(maxlen=capacity)

    def add(self, alert: Mapping[str, Any]) -> None:
        """Remember one published alert (the oldest falls out when full)."""
        self._alerts.append(alert)

    def newest(self, limit: int | None = None) -> list[Mapping[str, Any]]:
        """Up to ``limit`` alerts (all kept when None), the most recently published first."""
        count = len(self._alerts) if limit is None else max(0, min(limit, len(self._alerts)))
        return [self._alerts[-1 - i] for i in range(count)]

    def __len__(self) -> int:
        return len(self._alerts)
