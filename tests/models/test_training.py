"""Training in two processes (one per alert kind) gives the model one process gives."""

from __future__ import annotations

import numpy as np
import pytest

from reachwatch.models.alerts import severity_of
from reachwatch.models.features import DetectionConfig, FeatureBuilder
from reachwatch.models.forked import map_forked
from reachwatch.models.records import AccessEvent
from reachwatch.models.sides import RESOURCE, SIDES
from reachwatch.models.training import TrainingParams, fit, fit_side


def test_two_jobs_train_the_same_model_as_one(tiny_history):
    params = TrainingParams(n_estimators=20, seed=5, max_rows=3000)  # also the row sample
    one = fit(tiny_history, params=params, jobs=1)
    two = fit(tiny_history, params=params, jobs=2)
    volatile = ("created_ts", "fit_seconds")
    assert {k: v for k, v in one.metadata.items() if k not in volatile} == {
        k: v for k, v in two.metadata.items() if k not in volatile
    }
    assert one.profiles == two.profiles
    rows = np.random.default_rng(0)
    for side in SIDES:
        X = rows.normal(size=(200, len(side.features)))
        assert np.array_equal(one.detectors[side.kind].score(X),
                              two.detectors[side.kind].score(X))


def _square_and_report(item: int, progress) -> int:
    progress(item)
    return item * item


def test_map_forked_keeps_order_and_sums_progress():
    seen: list[int] = []
    assert map_forked(_square_and_report, [3, 4], jobs=2, progress=seen.append) == [9, 16]
    assert sum(seen) == 7


def _fail_on_two(item: int, progress) -> int:
    if item == 2:
        raise ValueError("side 2 broke")
    return item


def test_map_forked_raises_a_childs_error_here():
    with pytest.raises(ValueError, match="side 2 broke"):
        map_forked(_fail_on_two, [1, 2], jobs=2)


def test_a_scan_surprise_just_past_its_own_bar_is_not_raised_a_level(tiny_history):
    """The exposure scan and the clustered reader count say nothing below ``min_surprise``
    (1 in 20): that is their gate where history had no burst, not the breadth floor, so a
    scan of restricted data just past it is ``high`` (restricted), not ``critical``."""
    config = DetectionConfig()
    detector = fit_side(tiny_history, RESOURCE, config, TrainingParams(n_estimators=20)).detector
    for metric in ("outside_first_teams_scan", "outside_first_readers_1h"):
        assert detector.metric_gates_[metric] >= config.min_surprise
    builder = FeatureBuilder(config)
    event = AccessEvent(ts=tiny_history[-1].ts, principal="bo", resource="hr/tracking",
                        principal_group="sales", resource_group="hr", sensitivity="restricted")
    view = builder.view(event, builder.new_state(RESOURCE))
    view.breadth, view.breadth_metric = detector.gate({"outside_first_teams_scan": 3.1})
    assert detector.alerts(1.0, view.breadth)
    assert severity_of(view, detector.breadth_threshold_) == "high"
    view.breadth, view.breadth_metric = detector.gate({"outside_first_teams_scan": 8.0})
    assert severity_of(view, detector.breadth_threshold_) == "critical"


def test_grants_in_the_history_are_filed_not_trained_on(tiny_history):
    """A history with grant events: they are counted apart from the reads, never become
    training rows, and the reads after a grant are measured since it, so the metric's
    gate is calibrated on history like every other (at least ``min_surprise``)."""
    grants = [
        AccessEvent(ts=tiny_history[len(tiny_history) // 2].ts + k, principal="hr-0",
                    resource="hr/ds19", principal_group="hr", resource_group="hr",
                    sensitivity="restricted", action=action)
        for k, action in enumerate(("share-organization", "group-add"))
    ]
    events = sorted([*tiny_history, *grants], key=lambda e: e.ts)
    params = TrainingParams(n_estimators=20, seed=3)
    with_grants = fit(events, params=params)
    without = fit(tiny_history, params=params)
    counts = with_grants.metadata["counts"]
    assert counts["events"] == len(tiny_history) and counts["grants"] == 2
    # The same reads, the same feature rows: a grant is no row and moves no feature.
    for kind, detector in with_grants.detectors.items():
        assert np.array_equal(detector.feature_median_, without.detectors[kind].feature_median_)
        assert np.array_equal(detector.feature_scale_, without.detectors[kind].feature_scale_)
    gate = with_grants.detectors[RESOURCE.kind].metric_gates_["outside_first_teams_granted"]
    assert gate >= DetectionConfig().min_surprise
