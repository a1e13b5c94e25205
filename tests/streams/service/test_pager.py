"""Pages pushed to Alertmanager: what they carry, when they resolve, retries counted."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiohttp import web

from reachwatch.models.records import parse_timestamp
from reachwatch.streams.service import pager as pager_module
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.pager import ALERTNAME, Pager, page_of

OPENED = {
    "alert_id": "a1",
    "kind": "broad_audience",
    "entity": "hr/performance-tracking",
    "status": "opened",
    "revision": 0,
    "severity": "high",
    "sensitivity": "restricted",
    "team": "hr",
    "summary": "restricted dataset read by 40 principals",
    "first_ts": "2026-03-24T16:00:00.000Z",
}


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_page_has_low_cardinality_labels_and_the_entity_in_annotations():
    page = page_of(OPENED, "kafka://k:9092", ends_in=300)
    assert page["labels"] == {
        "alertname": ALERTNAME,
        "kind": "broad_audience",
        "severity": "high",
        "sensitivity": "restricted",
        "team": "hr",
        "source": "reachwatch",
    }
    notes = page["annotations"]
    assert notes["entity"] == "hr/performance-tracking" and notes["alert_id"] == "a1"
    assert notes["exposure_report"] == (
        "reachwatch exposure-report --broker kafka://k:9092 --alert-id a1"
    )
    assert notes["runbook_url"] == "dashboards/runbooks/detection-page.md"
    assert "restricted dataset read by 40 principals" in notes["summary"]
    assert page["endsAt"] > page["startsAt"]


def test_only_pages_are_queued_and_a_close_resolves_them():
    metrics = Metrics()
    pager = Pager("http://127.0.0.1:1", metrics=metrics)
    assert not pager.notify(
        {**OPENED, "alert_id": "low", "severity": "low", "sensitivity": "internal"}
    )
    assert pager.notify(OPENED) and "a1" in pager.active
    assert pager.notify({**OPENED, "status": "escalated", "severity": "critical"})
    assert sample(metrics, "reachwatch_pages_total", event="firing") == 1  # one alert
    pager.notify({**OPENED, "status": "closed", "revision": 2})
    assert "a1" not in pager.active
    resolved = pager.pending[-1]
    now = time.time()
    assert parse_timestamp(resolved["endsAt"]) <= now + 1  # resolved: ends now
    assert parse_timestamp(pager.pending[0]["endsAt"]) > now + 60  # firing: ends ahead
    assert resolved["startsAt"] == pager.pending[0]["startsAt"]  # same alert in Alertmanager
    assert sample(metrics, "reachwatch_pages_total", event="resolved") == 1


def test_sync_restores_open_pages_and_drops_moved_ones():
    pager = Pager("http://127.0.0.1:1", metrics=Metrics())
    pager.notify({**OPENED, "alert_id": "moved"})
    assert pager.sync([{**OPENED, "alert_id": "kept"}]) == 1
    assert set(pager.active) == {"kept"}


def test_a_failing_alertmanager_is_retried_with_backoff(monkeypatch):
    monkeypatch.setattr(pager_module, "RETRY_BACKOFF_S", (0.01, 0.01, 0.01))
    received: list[list[dict]] = []
    failures = [503, 503]

    async def alerts(request: web.Request) -> web.Response:
        if failures:
            return web.Response(status=failures.pop())
        received.append(orjson.loads(await request.read()))
        return web.Response(status=200)

    async def scenario() -> Metrics:
        app = web.Application()
        app.router.add_post("/api/v2/alerts", alerts)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        metrics = Metrics()
        pager = Pager(f"http://127.0.0.1:{port}", metrics=metrics)
        task = asyncio.ensure_future(pager.run())
        pager.notify(OPENED)
        for _ in range(200):
            if received:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await runner.cleanup()
        return metrics

    metrics = asyncio.run(scenario())
    assert received and received[0][0]["annotations"]["entity"] == OPENED["entity"]
    assert sample(metrics, "reachwatch_page_push_retries_total") == 2
    assert sample(metrics, "reachwatch_page_push_failures_total") == 0


@pytest.mark.parametrize("status", [400, 422])
def test_a_refused_payload_is_counted_not_retried(monkeypatch, status):
    monkeypatch.setattr(pager_module, "RETRY_BACKOFF_S", (0.01,))
    calls = []

    async def alerts(request: web.Request) -> web.Response:
        calls.append(1)
        return web.Response(status=status)

    async def scenario() -> Metrics:
        app = web.Application()
        app.router.add_post("/api/v2/alerts", alerts)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        metrics = Metrics()
        pager = Pager(f"http://127.0.0.1:{port}", metrics=metrics)
        task = asyncio.ensure_future(pager.run())
        pager.notify(OPENED)
        for _ in range(200):
            if metrics.registry.get_sample_value("reachwatch_page_push_failures_total"):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await runner.cleanup()
        return metrics

    metrics = asyncio.run(scenario())
    assert calls == [1]
    assert sample(metrics, "reachwatch_page_push_failures_total") == 1


def test_a_broad_reader_page_has_no_exposure_report_command():
    page = page_of({**OPENED, "kind": "broad_reader", "entity": "eng-3"}, "kafka://k", 60)
    assert "exposure_report" not in page["annotations"]
    assert page["annotations"]["entity"] == "eng-3"
