"""End-to-end detection quality on the small reference company (simulate -> train -> replay).

A regression guard on the fixed company the demo and the streaming tests use: every
labelled incident caught, nothing benign alerts, exposures caught within 30 minutes of
event time. The yardstick is bench/quality.py: the held-out half of a family of drawn
companies, next to the threshold rule and the previous release.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from reachwatch.models.evaluation import evaluate
from reachwatch.models.pipeline import Pipeline
from reachwatch.models.registry import Registry
from reachwatch.models.simulation.reference import simulate
from reachwatch.models.training import fit
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.offline.replay import Tally, collect_events, run_replay


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory):
    folder: Path = tmp_path_factory.mktemp("sim")
    simulate(folder, seed=5, scale=0.3, history_days=14)
    adapter = get_adapter("native")
    history, test = (
        [e for batch in collect_events([folder / name], Chain(adapter), Tally()) for e in batch]
        for name in ("history.jsonl", "test.jsonl")
    )
    registry = Registry(folder / "models")
    fitted = fit(history)
    model = registry.load(registry.write(fitted.detectors, fitted.profiles, fitted.metadata))
    alerts: list[dict] = []
    run_replay(
        iter([history, test]), Pipeline(model), Tally(), lambda a: alerts.append(a.to_json())
    )
    labels = orjson.loads((folder / "labels.json").read_bytes())
    return labels, alerts, evaluate(labels, alerts)


def test_every_labelled_incident_is_caught(judged):
    labels, _, result = judged
    assert not result.missed
    assert len(result.caught) == len(labels["incidents"])


def test_no_benign_entity_alerts(judged):
    _, _, result = judged
    assert not result.false_positives


def test_exposures_are_caught_within_30_minutes(judged):
    labels, _, result = judged
    exposures = [i["id"] for i in labels["incidents"] if i["type"] == "exposure"]
    assert exposures
    for incident in exposures:
        assert result.time_to_detect[incident] <= 30 * 60


def test_every_alert_explains_itself(judged):
    _, alerts, _ = judged
    assert alerts
    for alert in alerts:
        assert alert["summary"] and alert["evidence"] and 0 < len(alert["sample"]) <= 5
        assert alert["severity"] in ("low", "medium", "high", "critical")
        assert alert["score"] >= alert["thresholds"]["score"]
