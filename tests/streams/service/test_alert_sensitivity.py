"""Alerts are counted under the sensitivity of the data involved (what the exposure page reads)."""

from __future__ import annotations

import pytest

from reachwatch.models.alerts import Alert
from reachwatch.streams.service.publisher import highest_sensitivity as _highest_sensitivity


def _alert(kind: str, sensitivity: str, sample: list[dict[str, str]]) -> Alert:
    return Alert(
        alert_id="a", kind=kind, entity="hr.employee-reviews", ts=0.0, first_ts=0.0,
        revision=0, status="new", severity="high", score=0.9, model_version="v",
        summary="s", evidence=[], sample=sample, context={"sensitivity": sensitivity},
    )


def test_broad_audience_alert_on_restricted_data_counts_as_restricted() -> None:
    readers = [{"principal": "p1", "principal_group": "eng"}]
    body = _alert("broad_audience", "restricted", readers).to_json()
    assert _highest_sensitivity(body) == "restricted"


@pytest.mark.parametrize("event_sensitivity", ["internal", "restricted"])
def test_broad_reader_alert_counts_its_most_sensitive_resource(event_sensitivity: str) -> None:
    sample = [{"resource": "r1", "sensitivity": "confidential"},
              {"resource": "r2", "sensitivity": "restricted"}]
    body = _alert("broad_reader", event_sensitivity, sample).to_json()
    assert _highest_sensitivity(body) == "restricted"
