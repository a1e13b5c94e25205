"""The ring of recently published alerts behind /alerts/recent."""

from __future__ import annotations

import pytest

from reachwatch.streams.service.recent import RecentAlerts


def test_newest_first_and_bounded() -> None:
    recent = RecentAlerts(capacity=3)
    for n in range(5):
        recent.add({"alert_id": f"a{n}"})
    assert [a["alert_id"] for a in recent.newest()] == ["a4", "a3", "a2"]
    assert len(recent) == 3


def test_limit_returns_the_newest_few() -> None:
    recent = RecentAlerts(capacity=10)
    for n in range(4):
        recent.add({"alert_id": f"a{n}"})
    assert [a["alert_id"] for a in recent.newest(2)] == ["a3", "a2"]
    assert recent.newest(0) == []
    assert len(recent.newest(99)) == 4


def test_alerts_are_kept_as_published() -> None:
    alert = {"alert_id": "x", "kind": "broad_audience", "evidence": [{"feature": "f"}]}
    recent = RecentAlerts()
    recent.add(alert)
    assert recent.newest() == [alert]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RecentAlerts(capacity=0)
