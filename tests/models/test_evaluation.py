"""Judging alerts: caught, missed, time to detect, false positives, on hand-made alerts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from reachwatch.models.errors import SchemaError
from reachwatch.models.evaluation import Evaluation, evaluate, scorecard
from reachwatch.models.records import parse_timestamp

EXPOSURE_START = "2026-03-23T10:00:00Z"
EXPOSURE_END = "2026-03-23T11:00:00Z"


@pytest.fixture
def labels() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "test_start": "2026-03-23T00:00:00Z",
        "test_end": "2026-03-24T00:00:00Z",
        "incidents": [
            {
                "id": "INC-1",
                "type": "exposure",
                "kind": "broad_audience",
                "entity": "hr.employee-monitoring",
                "start": EXPOSURE_START,
                "end": EXPOSURE_END,
                "description": "exposed",
            },
            {
                "id": "INC-2",
                "type": "insider_broad_read",
                "kind": "broad_reader",
                "entity": "zoe",
                "start": "2026-03-23T14:00:00Z",
                "end": "2026-03-23T14:45:00Z",
                "description": "insider",
            },
        ],
        "benign": [
            {
                "id": "BEN-1",
                "type": "nightly_backup",
                "kind": "broad_reader",
                "entity": "svc-backup",
                "description": "backup",
            },
        ],
    }


def alert(kind: str, entity: str, ts: str | float, severity: str = "medium") -> dict[str, Any]:
    return {"kind": kind, "entity": entity, "ts": ts, "severity": severity}


def test_alert_in_window_catches_with_time_to_detect(labels: dict[str, Any]) -> None:
    result = evaluate(
        labels, [alert("broad_audience", "hr.employee-monitoring", "2026-03-23T10:07:30Z", "high")]
    )
    assert result.caught == ["INC-1"]
    assert result.missed == ["INC-2"]
    assert result.time_to_detect == {"INC-1": 450.0}
    assert result.verdicts[0].severity == "high"


def test_an_incident_keeps_the_highest_severity_its_alerts_reached(labels: dict[str, Any]) -> None:
    """An alert opens low and escalates as the incident grows: the incident is reported
    at the level it reached (as a false positive is), not at its first message's."""
    first = alert("broad_reader", "zoe", "2026-03-23T14:10:00Z", "low")
    escalated = alert("broad_reader", "zoe", "2026-03-23T14:20:00Z", "critical")
    updated = alert("broad_reader", "zoe", "2026-03-23T14:30:00Z", "medium")
    verdict = evaluate(labels, [updated, escalated, first]).verdicts[1]
    assert verdict.incident.entity == "zoe" and verdict.severity == "critical"
    assert verdict.time_to_detect == 600.0


def test_first_of_several_alerts_sets_time_to_detect(labels: dict[str, Any]) -> None:
    later = alert("broad_reader", "zoe", "2026-03-23T14:40:00Z")
    earlier = alert("broad_reader", "zoe", "2026-03-23T14:10:00Z")
    assert evaluate(labels, [later, earlier]).time_to_detect == {"INC-2": 600.0}


def test_epoch_seconds_and_milliseconds_are_accepted(labels: dict[str, Any]) -> None:
    start = parse_timestamp(EXPOSURE_START)
    seconds = evaluate(labels, [alert("broad_audience", "hr.employee-monitoring", start + 60)])
    millis = evaluate(
        labels, [alert("broad_audience", "hr.employee-monitoring", (start + 60) * 1000)]
    )
    assert seconds.time_to_detect == millis.time_to_detect == {"INC-1": 60.0}


def test_grace_period_ends_two_hours_after_the_incident(labels: dict[str, Any]) -> None:
    end = parse_timestamp(EXPOSURE_END)
    on_edge = evaluate(labels, [alert("broad_audience", "hr.employee-monitoring", end + 7200)])
    too_late = evaluate(labels, [alert("broad_audience", "hr.employee-monitoring", end + 7201)])
    assert on_edge.caught == ["INC-1"]
    assert too_late.caught == []


def test_alert_before_the_incident_neither_catches_nor_counts_as_false_positive(
    labels: dict[str, Any],
) -> None:
    result = evaluate(
        labels, [alert("broad_audience", "hr.employee-monitoring", "2026-03-23T09:59:59Z")]
    )
    assert result.caught == []
    assert result.false_positives == ()


def test_right_entity_wrong_kind_is_a_false_positive(labels: dict[str, Any]) -> None:
    result = evaluate(
        labels, [alert("broad_reader", "hr.employee-monitoring", "2026-03-23T10:05:00Z")]
    )
    assert result.caught == []
    assert [(fp.kind, fp.entity) for fp in result.false_positives] == [
        ("broad_reader", "hr.employee-monitoring")
    ]


def test_false_positives_are_per_entity_and_name_benign_look_alikes(
    labels: dict[str, Any],
) -> None:
    alerts = [
        alert("broad_reader", "svc-backup", "2026-03-23T01:10:00Z"),
        alert("broad_reader", "svc-backup", "2026-03-23T02:10:00Z"),
        alert("broad_audience", "company.wiki", "2026-03-23T12:00:00Z"),
    ]
    result = evaluate(labels, alerts)
    by_entity = {fp.entity: fp for fp in result.false_positives}
    assert by_entity["svc-backup"].alerts == 2
    assert by_entity["svc-backup"].benign_id == "BEN-1"
    assert by_entity["company.wiki"].benign_id is None
    assert result.benign_alerted == ["BEN-1"]


def test_alerts_outside_the_test_period_are_ignored(labels: dict[str, Any]) -> None:
    result = evaluate(
        labels,
        [
            alert("broad_reader", "svc-backup", "2026-03-22T01:10:00Z"),
            alert("broad_reader", "ana", "2026-03-24T00:00:01Z"),
        ],
    )
    assert result.false_positives == ()
    assert (result.alerts_counted, result.alerts_ignored) == (0, 2)


def test_render_shows_every_incident_and_the_false_positives(labels: dict[str, Any]) -> None:
    text = evaluate(
        labels,
        [
            alert("broad_reader", "zoe", "2026-03-23T14:05:00Z"),
            alert("broad_reader", "svc-backup", "2026-03-23T01:10:00Z"),
        ],
    ).render()
    assert "INC-1" in text and "INC-2" in text
    assert "NO" in text  # INC-1 missed
    assert "5m00s" in text
    assert "BEN-1 nightly_backup" in text


def test_to_json_is_serialisable_and_agrees_with_the_attributes(labels: dict[str, Any]) -> None:
    result = evaluate(
        labels,
        [
            alert("broad_reader", "zoe", "2026-03-23T14:05:00Z"),
            alert("broad_audience", "company.wiki", "2026-03-23T12:00:00Z"),
        ],
    )
    document = orjson.loads(orjson.dumps(result.to_json()))
    assert document["caught"] == result.caught == ["INC-2"]
    assert document["missed"] == ["INC-1"]
    assert document["false_positive_entities"] == 1
    assert document["incidents"][1]["time_to_detect_s"] == 300.0


def test_alert_without_entity_is_a_schema_error(labels: dict[str, Any]) -> None:
    with pytest.raises(SchemaError) as error:
        evaluate(labels, [{"kind": "broad_reader", "ts": "2026-03-23T14:05:00Z"}])
    assert error.value.code == "missing_field"


def test_labels_without_test_period_are_a_schema_error(labels: dict[str, Any]) -> None:
    del labels["test_end"]
    with pytest.raises(SchemaError):
        evaluate(labels, [])


# -- exposures timed from the first out-of-audience read ---------------------------------

def test_exposure_time_to_detect_counts_from_the_first_outside_read(
    labels: dict[str, Any],
) -> None:
    labels["incidents"][0]["first_outside_read"] = "2026-03-23T10:20:00Z"
    result = evaluate(
        labels, [alert("broad_audience", "hr.employee-monitoring", "2026-03-23T10:25:00Z")]
    )
    assert result.time_to_detect == {"INC-1": 300.0}


def test_an_alert_before_the_first_outside_read_detects_in_zero_time(
    labels: dict[str, Any],
) -> None:
    labels["incidents"][0]["first_outside_read"] = "2026-03-23T10:20:00Z"
    result = evaluate(
        labels, [alert("broad_audience", "hr.employee-monitoring", "2026-03-23T10:10:00Z")]
    )
    assert result.time_to_detect == {"INC-1": 0.0}


def test_a_false_positive_keeps_its_highest_severity(labels: dict[str, Any]) -> None:
    alerts = [
        alert("broad_reader", "svc-backup", "2026-03-23T01:10:00Z", "low"),
        alert("broad_reader", "svc-backup", "2026-03-23T02:10:00Z", "high"),
        alert("broad_reader", "svc-backup", "2026-03-23T03:10:00Z", "medium"),
    ]
    (fp,) = evaluate(labels, alerts).false_positives
    assert fp.severity == "high"


def test_from_json_restores_the_evaluation(labels: dict[str, Any]) -> None:
    labels["incidents"][0]["first_outside_read"] = EXPOSURE_START
    labels["incidents"][0]["variant"] = {"speed": "fast", "size": "small"}
    result = evaluate(labels, [alert("broad_reader", "zoe", "2026-03-23T14:05:00Z"),
                               alert("broad_reader", "svc-backup", "2026-03-23T01:10:00Z")])
    assert Evaluation.from_json(orjson.loads(orjson.dumps(result.to_json()))) == result


# -- pooling companies ---------------------------------------------------------------------

def _company(day: str, exposure_minutes: float | None, insider: bool,
             fps: list[tuple[str, str]], grant: str | None = None) -> Evaluation:
    """One company's evaluation: an exposure detected after ``exposure_minutes`` (or
    missed), an insider caught or not, and false positives (entity, severity)."""
    labels = {
        "test_start": f"{day}T00:00:00Z", "test_end": f"{day}T23:59:59Z",
        "incidents": [
            {"id": "INC-1", "type": "exposure", "kind": "broad_audience", "entity": "hr.x",
             "start": f"{day}T10:00:00Z", "end": f"{day}T11:00:00Z",
             "first_outside_read": f"{day}T10:00:00Z",
             "variant": {"sensitivity": "restricted", "speed": "fast", "grant": grant}},
            {"id": "INC-2", "type": "insider_broad_read", "kind": "broad_reader",
             "entity": "zoe", "start": f"{day}T14:00:00Z", "end": f"{day}T14:45:00Z"},
        ],
        "benign": [{"id": "BEN-1", "type": "service_backup", "kind": "broad_reader",
                    "entity": "svc-backup"}],
    }
    start = parse_timestamp(f"{day}T10:00:00Z")
    alerts = []
    if exposure_minutes is not None:
        alerts.append(alert("broad_audience", "hr.x", start + exposure_minutes * 60, "high"))
    if insider:
        alerts.append(alert("broad_reader", "zoe", start + 4.5 * 3600))
    alerts += [alert("broad_reader", entity, start, severity) for entity, severity in fps]
    return evaluate(labels, alerts)


def test_scorecard_pools_recall_and_time_to_detect_per_type() -> None:
    card = scorecard([
        _company("2026-03-23", 4.0, True, []),
        _company("2026-03-24", 20.0, False, []),
        _company("2026-03-25", None, True, []),
    ])
    exposure = card["by_type"]["exposure"]
    assert (exposure["incidents"], exposure["caught"], exposure["missed"]) == (3, 2, 1)
    assert exposure["recall"] == pytest.approx(2 / 3)
    assert (exposure["ttd_median_s"], exposure["ttd_worst_s"]) == (720.0, 1200.0)
    assert card["by_type"]["insider_broad_read"]["caught"] == 2
    assert (card["incidents"], card["caught"]) == (6, 4)
    assert card["exposures"]["caught"] == 2
    assert card["exposures_by_variant"]["speed=fast"]["incidents"] == 3
    # Whether the access-control change was in the logs: a grant that was not logged
    # is a variant of its own, not left out.
    assert card["exposures_by_variant"]["grant not logged"]["incidents"] == 3
    assert "grant logged" not in card["exposures_by_variant"]


def test_exposures_with_a_logged_grant_are_scored_apart() -> None:
    card = scorecard([
        _company("2026-03-23", 4.0, True, [], grant="share-organization"),
        _company("2026-03-24", 20.0, True, []),
    ])
    by = card["exposures_by_variant"]
    assert by["grant logged"]["ttd_median_s"] == 240.0
    assert by["grant not logged"]["ttd_median_s"] == 1200.0
    assert by["grant=share-organization"]["incidents"] == 1


def test_scorecard_counts_false_positives_per_company_day_and_look_alikes_by_severity() -> None:
    card = scorecard([
        _company("2026-03-23", 4.0, True, [("svc-backup", "low"), ("ana", "high")]),
        _company("2026-03-24", 4.0, True, [("svc-backup", "medium")]),
    ])
    days = card["company_days"]
    assert days == pytest.approx(2.0, abs=1e-3)
    assert card["false_positive_entities"] == 3
    assert card["false_positive_entities_per_company_day"] == pytest.approx(3 / days)
    assert card["look_alikes"] == 2
    assert card["look_alike_hits"] == 2
    assert card["look_alike_hits_by_severity"] == {"low": 1, "medium": 1}
    assert card["look_alikes_above_low"] == 1
    assert card["look_alike_hits_by_type"] == {"service_backup": 2}
