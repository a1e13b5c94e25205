"""Alert publishing: each alert delivered (awaited) before the state that raised it is kept."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import orjson

from reachwatch.models.alerts import Alert
from reachwatch.streams.service.alertlog import AlertLog
from reachwatch.streams.service.delivery import deliver
from reachwatch.streams.service.envelopes import Forwarded
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.recent import RecentAlerts

SENSITIVITY_ORDER = ("public", "internal", "confidential", "restricted")


class AlertPublisher:
    """Sends alerts to the alerts topic, keeps the recent ones, counts them."""

    def __init__(
        self, topic: Any, metrics: Metrics, recent: RecentAlerts | AlertLog, retries: int = 0
    ) -> None:
        self.topic = topic
        self.metrics = metrics
        self.recent = recent
        self.retries = retries
        self.published = 0

    async def publish(self, alerts: Sequence[Alert], forwarded: Sequence[Forwarded]) -> None:
        received = {(f.event.ts, f.event.principal): f.received for f in forwarded}
        received.update({(f.event.ts, f.event.resource): f.received for f in forwarded})
        for alert in alerts:
            body = alert.to_json()
            await self.send(alert.entity.encode(), orjson.dumps(body))
            self.published += 1
            self.recent.add(body)
            self.metrics.record_alert(alert.kind, alert.severity, highest_sensitivity(body))
            started = received.get((alert.ts, alert.entity))
            if started is not None:
                self.metrics.event_to_alert.observe(max(0.0, time.time() - started))


    async def send(self, key: bytes, value: bytes) -> None:
        """One message on the alerts topic, retried until the broker acknowledges it."""
        await deliver(
            functools.partial(self.topic.send, key=key, value=value),
            self.metrics,
            "alert",
            retries=self.retries,
        )


def highest_sensitivity(alert: dict[str, Any]) -> str:
    found = [
        item.get("sensitivity")
        for section in ("evidence", "sample")
        for item in alert.get(section) or ()
        if isinstance(item, dict)
    ]
    # Alert.to_json flattens its context: the triggering event's sensitivity is top-level.
    found.append(alert.get("sensitivity"))
    ranked = [SENSITIVITY_ORDER.index(s) for s in found if s in SENSITIVITY_ORDER]
    return SENSITIVITY_ORDER[max(ranked)] if ranked else "internal"
