"""The plain threshold-rule baseline: fitted quantiles of hourly distinct counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from reachwatch.models.errors import SchemaError
from reachwatch.models.evaluation import evaluate
from reachwatch.models.records import AccessEvent, parse_timestamp
from reachwatch.models.simulation.reference import simulate
from reachwatch.models.threshold_rule import ThresholdRule, fit_threshold_rule

T0 = 1772409600.0  # 2026-03-02T00:00:00Z


def reads(
    principal: str, resources: list[str], start: float, spacing: float = 60.0
) -> list[AccessEvent]:
    return [
        AccessEvent(ts=start + i * spacing, principal=principal, resource=resource)
        for i, resource in enumerate(resources)
    ]


def test_fit_takes_the_quantile_of_hourly_peaks() -> None:
    # 99 principal-hours with 2 distinct resources and one with 20: the 50% quantile is 2,
    # the 99.9% one is close to 20.
    history = []
    for hour in range(99):
        history += reads(f"p{hour}", ["a", "b"], T0 + hour * 3600)
    history += reads("busy", [f"r{i}" for i in range(20)], T0 + 100 * 3600)
    assert fit_threshold_rule(history, quantile=0.5).reader_threshold == 2.0
    assert 18.0 < fit_threshold_rule(history).reader_threshold <= 20.0


def test_fit_accepts_native_json_objects() -> None:
    history = reads("ana", ["a", "b", "c"], T0)
    as_json = [event.to_json() for event in history]
    assert fit_threshold_rule(as_json) == fit_threshold_rule(history)


def test_reader_alert_fires_above_threshold_once_per_clock_hour() -> None:
    rule = ThresholdRule(reader_threshold=3.0, audience_threshold=100.0)
    # 40 distinct resources, one a minute, from 10:30: crosses 3 at 10:33, then 11:00 is a
    # new clock hour.
    events = reads("zoe", [f"r{i}" for i in range(40)], T0 + 10.5 * 3600)
    alerts = rule.alerts(events)
    assert [a["entity"] for a in alerts] == ["zoe", "zoe"]
    assert parse_timestamp(alerts[0]["ts"]) == T0 + 10.5 * 3600 + 3 * 60
    assert parse_timestamp(alerts[1]["ts"]) == T0 + 11 * 3600


def test_count_equal_to_threshold_stays_quiet() -> None:
    rule = ThresholdRule(reader_threshold=3.0, audience_threshold=100.0)
    assert rule.alerts(reads("zoe", ["a", "b", "c", "a", "b"], T0)) == []


def test_window_slides_across_clock_hours() -> None:
    rule = ThresholdRule(reader_threshold=3.0, audience_threshold=100.0)
    # Two reads before 11:00 and two after, within 50 min: no clock hour holds four.
    events = reads("zoe", ["a", "b", "c", "d"], T0 + 10.5 * 3600, spacing=1000.0)
    assert len(rule.alerts(events)) == 1


def test_reads_older_than_an_hour_leave_the_window() -> None:
    rule = ThresholdRule(reader_threshold=3.0, audience_threshold=100.0)
    events = reads("zoe", ["a", "b", "c", "d"], T0, spacing=1800.0)
    assert rule.alerts(events) == []


def test_audience_alert_names_the_resource() -> None:
    rule = ThresholdRule(reader_threshold=100.0, audience_threshold=5.0)
    events = [AccessEvent(ts=T0 + i, principal=f"p{i}", resource="hr.salaries") for i in range(10)]
    (only,) = rule.alerts(events)
    assert (only["kind"], only["entity"], only["severity"]) == (
        "broad_audience",
        "hr.salaries",
        "medium",
    )
    assert only["summary"]


def test_empty_history_cannot_be_fitted() -> None:
    with pytest.raises(SchemaError):
        fit_threshold_rule([])


@pytest.fixture(scope="module")
def simulated_alerts(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, seed=7, scale=0.3, history_days=7, test_days=3)

    def load(name: str) -> list[dict[str, Any]]:
        with (out / name).open("rb") as lines:
            return [orjson.loads(line) for line in lines]

    rule = fit_threshold_rule(load("history.jsonl"))
    labels = orjson.loads(Path(out / "labels.json").read_bytes())
    return labels, rule.alerts(load("test.jsonl"))


def test_on_the_simulation_it_catches_the_exposure(
    simulated_alerts: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    labels, alerts = simulated_alerts
    exposure = next(i["id"] for i in labels["incidents"] if i["type"] == "exposure")
    assert exposure in evaluate(labels, alerts).caught


def test_on_the_simulation_it_pages_on_the_public_all_hands_deck(
    simulated_alerts: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    # The weakness reachwatch exists to fix: a global count cannot tell public from restricted.
    labels, alerts = simulated_alerts
    assert "all_hands" in {fp.benign_type for fp in evaluate(labels, alerts).false_positives}
