"""The alert log behind /alerts/recent: latest message per alert, filters, pages, bound."""

from __future__ import annotations

from reachwatch.streams.service.alertlog import AlertLog
from reachwatch.streams.service.followup import JsonTable


def message(alert_id: str, status: str = "opened", revision: int = 0, **extra):
    return {
        "alert_id": alert_id,
        "status": status,
        "revision": revision,
        "kind": extra.pop("kind", "broad_audience"),
        "severity": extra.pop("severity", "high"),
        **extra,
    }


def test_the_latest_revision_wins_even_when_an_older_arrives_later():
    log = AlertLog({})
    log.add(message("a", "escalated", 1), published=2.0)
    log.add(message("a", "opened", 0), published=3.0)  # a replayed older message
    assert [(m["status"], m["revision"]) for m in log.query()] == [("escalated", 1)]


def test_filters_and_pages_newest_first():
    log = AlertLog({})
    for n in range(6):
        log.add(
            message(
                f"a{n}",
                "closed" if n % 2 else "opened",
                kind="broad_reader" if n < 3 else "broad_audience",
                severity="critical" if n == 5 else "high",
            ),
            published=float(n),
        )
    assert [m["alert_id"] for m in log.query(limit=2)] == ["a5", "a4"]
    assert [m["alert_id"] for m in log.query(limit=2, offset=2)] == ["a3", "a2"]
    assert [m["alert_id"] for m in log.query(state="closed")] == ["a5", "a3", "a1"]
    assert [m["alert_id"] for m in log.query(state="open", kind="broad_reader")] == ["a2", "a0"]
    assert [m["alert_id"] for m in log.query(severity="critical")] == ["a5"]


def test_beyond_capacity_the_longest_closed_go_first():
    log = AlertLog({}, capacity=10)
    for n in range(12):
        log.add(message(f"a{n}", "closed" if n < 4 else "opened"), published=float(n))
    assert len(log) == 10
    kept = {m["alert_id"] for m in log.query()}
    assert {"a0", "a1"}.isdisjoint(kept) and {"a2", "a3"} <= kept


def test_it_works_over_a_bytes_table_as_the_worker_keeps_it():
    table: dict[bytes, bytes] = {}
    log = AlertLog(table)
    log.add(message("a"), published=1.0)
    assert list(table) == [b"a"]
    assert JsonTable(table)["a"]["message"]["alert_id"] == "a"
