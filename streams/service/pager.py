"""Pages that carry the alert: the worker pushes its own alerts to Alertmanager's v2 API.

The Prometheus rules page on *counters* ("a restricted exposure happened"); the on-call
engineer then needs the entity and the summary. So high and critical alerts, and every
exposure of restricted data (``models.lifecycle.pages``), are also POSTed to
``{alertmanager_url}/api/v2/alerts`` as an Alertmanager alert:

- labels, low-cardinality only (they become routing and grouping keys): ``alertname``
  ``ReachwatchDetection``, ``kind``, ``severity`` (the alert's: high, critical, or medium
  for a restricted exposure), ``sensitivity``, ``team`` (of the entity), ``source``;
- annotations: ``summary``, ``entity``, ``alert_id``, ``runbook_url``, and for exposures
  (``broad_audience``) the ``exposure_report`` command that prints who saw it.

Alertmanager forgets an alert that is not re-sent before its ``endsAt``, so open pages are
re-sent every ``resend_interval`` with ``endsAt`` a few intervals ahead (as Prometheus
does), and a closed alert is sent once more with ``endsAt`` now: the resolution. Which
alerts are open survives a restart: the worker re-adds them from its open-alert tables.
Pushes run in a background task with retries and back-off, never in the scoring path;
``reachwatch_pages_total``, ``reachwatch_page_push_retries_total`` and
``reachwatch_page_push_failures_total`` count them (no entity label, ever).

The existing Prometheus spike and exposure rules stay: they page when reachwatch itself
cannot push.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from reachwatch.models.lifecycle import pages

log = logging.getLogger(__name__)

ALERTNAME = "ReachwatchDetection"
RUNBOOK = "dashboards/runbooks/detection-page.md"
RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
MAX_PENDING = 10_000  # queued pushes; beyond it the oldest are dropped and counted failed
ENDS_AHEAD = 5  # firing alerts end this many resend intervals ahead unless re-sent


def _now_rfc3339(offset: float = 0.0) -> str:
    return (
        datetime.fromtimestamp(time.time() + offset, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def report_command(message: Mapping[str, Any], broker: str) -> str:
    """The shell command that prints who saw the data of this alert."""
    return f"reachwatch exposure-report --broker {broker} --alert-id {message.get('alert_id')}"


def page_of(message: Mapping[str, Any], broker: str, ends_in: float) -> dict[str, Any]:
    """The Alertmanager v2 alert for one alert message (``ends_in`` <= 0: resolved now)."""
    severity = str(message.get("severity") or "unknown")
    labels = {
        "alertname": ALERTNAME,
        "kind": str(message.get("kind") or "unknown"),
        "severity": severity,
        "sensitivity": str(message.get("sensitivity") or "unknown"),
        "team": str(message.get("team") or "unknown"),
        "source": "reachwatch",
    }
    entity = str(message.get("entity"))
    annotations = {
        "summary": f"{labels['kind']} on {entity}: {message.get('summary', '')}"[:2000],
        "entity": entity,
        "alert_id": str(message.get("alert_id")),
        "runbook_url": RUNBOOK,
        "first_seen": str(message.get("first_ts")),
    }
    if labels["kind"] == "broad_audience":  # a broad_reader alert has no exposure record
        annotations["exposure_report"] = report_command(message, broker)
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": message.get("page_starts_at") or _now_rfc3339(),
        "endsAt": _now_rfc3339(max(ends_in, 0.0)),
    }


class Pager:
    """Pushes pages to one Alertmanager; ``notify`` never blocks the scoring path."""

    def __init__(
        self,
        url: str,
        *,
        metrics: Any,
        broker: str = "kafka://127.0.0.1:9092",
        resend_interval: float = 60.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.metrics = metrics
        self.broker = broker
        self.resend_interval = resend_interval
        self.timeout = timeout
        self.active: dict[str, dict[str, Any]] = {}  # alert_id -> latest message
        self.pending: list[dict[str, Any]] = []
        self.wake = asyncio.Event()
        self.session: Any = None

    # -- what to page ---------------------------------------------------------------
    def notify(self, message: Mapping[str, Any]) -> bool:
        """Queue a page (or its resolution) for one alert message; True when queued."""
        alert_id = str(message.get("alert_id"))
        if message.get("status") == "closed":
            opened = self.active.pop(alert_id, None)
            if opened is None and not pages(message):
                return False
            resolved = {**(opened or {}), **message}
            if opened is not None:
                resolved["page_starts_at"] = opened.get("page_starts_at")
            self._queue(page_of(resolved, self.broker, 0.0))
            self.metrics.pages.labels(event="resolved").inc()
            return True
        if not pages(message):
            return False
        kept = dict(message)
        previous = self.active.get(alert_id)
        kept["page_starts_at"] = (previous or {}).get("page_starts_at") or _now_rfc3339()
        self.active[alert_id] = kept
        self._queue(page_of(kept, self.broker, self.resend_interval * ENDS_AHEAD))
        if previous is None:
            self.metrics.pages.labels(event="firing").inc()
        return True

    def sync(self, open_alerts: Iterable[Mapping[str, Any]]) -> int:
        """Page exactly the open alerts this worker holds (its open-alert tables).

        Adds those a restart forgot; drops, without resolving, those that moved to another
        worker with their partition (it re-sends them). Returns how many were added.
        """
        held = {str(entry.get("alert_id")): entry for entry in open_alerts if pages(entry)}
        for alert_id in [a for a in self.active if a not in held]:
            del self.active[alert_id]
        added = 0
        for alert_id, entry in held.items():
            if alert_id not in self.active:
                self.active[alert_id] = {**entry, "page_starts_at": _now_rfc3339()}
                added += 1
        return added

    def resend(self) -> None:
        """Queue every open page again (Alertmanager would otherwise resolve it)."""
        for message in self.active.values():
            self._queue(page_of(message, self.broker, self.resend_interval * ENDS_AHEAD))

    def _queue(self, alert: dict[str, Any]) -> None:
        self.pending.append(alert)
        if len(self.pending) > MAX_PENDING:
            dropped = len(self.pending) - MAX_PENDING
            del self.pending[:dropped]
            self.metrics.page_push_failures.inc(dropped)
        self.wake.set()

    # -- pushing ----------------------------------------------------------------------
    async def run(self) -> None:
        """The background loop: push what is pending, retrying with back-off."""
        import aiohttp

        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.pending:
                    batch, self.pending = self.pending, []
                    await self._push_with_retry(batch)
        finally:
            await self.session.close()

    async def _push_with_retry(self, batch: list[dict[str, Any]]) -> None:
        attempt = 0
        body = orjson.dumps(batch)
        while True:
            try:
                async with self.session.post(
                    self.url, data=body, headers={"Content-Type": "application/json"}
                ) as reply:
                    if reply.status < 300:
                        return
                    detail = f"HTTP {reply.status}"
                    if 400 <= reply.status < 500:
                        # Alertmanager refused the payload itself: retrying cannot help.
                        self.metrics.page_push_failures.inc(len(batch))
                        log.error("Alertmanager refused %d page(s): %s", len(batch), detail)
                        return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                detail = f"{type(exc).__name__}: {exc}"
            attempt += 1
            if attempt > len(RETRY_BACKOFF_S):
                self.metrics.page_push_failures.inc(len(batch))
                log.error(
                    "pushing %d page(s) to Alertmanager failed %d times: %s",
                    len(batch),
                    attempt,
                    detail,
                )
                return
            self.metrics.page_push_retries.inc()
            delay = RETRY_BACKOFF_S[attempt - 1]
            log.warning(
                "Alertmanager push failed (attempt %d), retrying in %.1fs: %s",
                attempt,
                delay,
                detail,
            )
            await asyncio.sleep(delay)
            # Pages queued meanwhile go along: newer states of the same alerts win.
            if self.pending:
                batch, self.pending = batch + self.pending, []
                body = orjson.dumps(batch)
