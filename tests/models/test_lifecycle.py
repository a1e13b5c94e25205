"""The alert book: extended by broad reads, closed after the quiet period, once."""

from __future__ import annotations

from reachwatch.models.lifecycle import AlertBook, pages

T = 1774368000.0


def opened(alert_id: str = "a1", entity: str = "hr/x", **extra):
    return {
        "alert_id": alert_id,
        "kind": "broad_audience",
        "entity": entity,
        "entity_type": "resource",
        "status": "opened",
        "revision": 0,
        "severity": "high",
        "score": 0.8,
        "breadth": 1.5,
        "first_ts": "2026-03-24T16:00:00Z",
        "model_version": "v1",
        "summary": "restricted dataset read by 24 principals",
        "sensitivity": "restricted",
        "team": "hr",
        **extra,
    }


def test_a_broad_read_postpones_the_close():
    book = AlertBook(quiet_period=3600.0)
    book.record(opened(), last_ts=T)
    assert book.touch("hr/x", "a1", T + 3000)
    assert book.close_due(T + 4000) == []
    assert [m["alert_id"] for m in book.close_due(T + 6601)] == ["a1"]
    assert book.close_due(T + 99999) == []  # closed once


def test_touch_ignores_another_alert_of_the_entity():
    book = AlertBook(quiet_period=3600.0)
    book.record(opened(), last_ts=T)
    assert not book.touch("hr/x", "other", T + 3000)
    assert not book.touch("hr/x", "a1", T - 5)


def test_the_closed_message_carries_duration_and_final_figures():
    book = AlertBook(quiet_period=3600.0)
    book.record(opened(), last_ts=T)
    book.record(
        opened(status="escalated", revision=1, severity="critical", score=0.9, breadth=3.1),
        last_ts=T + 600,
    )
    closed = book.close_due(T + 5000)[0]
    assert closed["status"] == "closed" and closed["revision"] == 2
    assert closed["duration_s"] == 600 + 3600 and closed["active_s"] == 600
    assert closed["ts"] == "2026-03-24T17:10:00.000Z"
    assert closed["final"] == {
        "duration_s": 4200.0,
        "active_s": 600.0,
        "messages": 2,
        "peak_score": 0.9,
        "peak_breadth": 3.1,
        "severity": "critical",
    }
    assert closed["schema_version"] == 2 and closed["team"] == "hr"


def test_pages_are_high_critical_or_restricted_exposures():
    assert pages({"severity": "high", "kind": "broad_reader"})
    assert pages({"severity": "medium", "kind": "broad_audience", "sensitivity": "restricted"})
    assert not pages({"severity": "medium", "kind": "broad_reader", "sensitivity": "restricted"})
    assert not pages({"severity": "low", "kind": "broad_audience", "sensitivity": "internal"})
