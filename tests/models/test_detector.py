from __future__ import annotations

import math

import numpy as np
import pytest

from reachwatch.models.detector import BreadthDetector


@pytest.fixture(scope="module")
def fitted() -> tuple[BreadthDetector, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 8))
    X[:, 3] = np.round(X[:, 3])  # ties on thresholds, like counts
    # Some rows broad, each its own entity-day, over a budget of 0.5 a day: the breadth
    # gate alone would alert 40 entity-days, so the forest's gate is needed.
    breadth = np.zeros(len(X))
    breadth[:40] = 10.0
    detector = BreadthDetector(n_estimators=80, random_state=0).fit(
        X, breadth=breadth, days=np.arange(len(X)) % 2
    )
    return detector, X


def test_fast_scorer_equals_sklearn_on_random_rows(fitted):
    detector, _ = fitted
    rows = np.random.default_rng(1).normal(scale=3.0, size=(2000, 8))
    assert np.max(np.abs(detector.score(rows) - detector.score_reference(rows))) < 1e-9


def test_fast_scorer_equals_sklearn_on_training_rows(fitted):
    detector, X = fitted
    assert np.max(np.abs(detector.score(X) - detector.score_reference(X))) < 1e-9


def test_fast_scorer_equals_sklearn_on_real_feature_rows(tiny_model, tiny_history):
    from reachwatch.models.training import build_vectors

    data = build_vectors(tiny_history[:3000], tiny_model.config, tiny_model.profiles)
    for kind, rows in data.items():
        X = rows.vectors
        detector = tiny_model.detectors[kind]  # as loaded from the registry
        reference = -detector.forest_.score_samples(X)
        assert np.max(np.abs(detector.score(X) - reference)) < 1e-9


def test_higher_score_means_more_anomalous(fitted):
    detector, X = fitted
    typical = np.zeros((1, X.shape[1]))
    outlier = np.full((1, X.shape[1]), 9.0)
    assert detector.score(outlier)[0] > detector.score_threshold_ > detector.score(typical)[0]


def test_within_budget_the_score_threshold_is_the_lowest_candidate_quantile(fitted):
    # 40 broad rows over two days and a budget of one entity-day: the chosen quantile is
    # the lowest that keeps at most one of them.
    detector, X = fitted
    table = detector.calibration_["budget"]
    fits = [row["quantile"] for row in table if row["entity_days"] <= 1.0]
    assert fits and table[0]["entity_days"] == 40
    share_above = np.mean(detector.score(X) >= detector.score_threshold_)
    assert share_above == pytest.approx(1 - fits[0], abs=0.002)
    assert detector.breadth_threshold_ >= np.log(detector.min_breadth_ratio)


def test_no_score_gate_when_the_breadth_gates_alone_fit_the_budget():
    # No training row is broad (the breadth gate is at least log 2.5): the breadth gates
    # alone keep the history within any budget, so the forest gates nothing and a broad
    # read the forest finds ordinary still alerts.
    X = np.random.default_rng(5).normal(size=(3000, 4))
    detector = BreadthDetector(n_estimators=30).fit(X, breadth=np.zeros(len(X)))
    assert detector.score_threshold_ == 0.0
    typical = detector.score(np.zeros((1, 4)))[0]
    assert detector.alerts(typical, detector.breadth_threshold_)


def test_over_budget_the_strictest_quantile_is_used():
    # Every row broad, every row its own entity-day, a budget of nothing: no candidate
    # fits, and the strictest one is the answer.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 4))
    detector = BreadthDetector(n_estimators=30, alert_budget_per_day=0.0).fit(
        X, breadth=np.full(len(X), 10.0)
    )
    strictest = np.quantile(detector.score(X), detector.score_quantiles[-1])
    assert detector.score_threshold_ == pytest.approx(strictest)
    assert detector.calibration_["budget"][-1]["entity_days"] > 0


def test_fit_follows_the_estimator_contract(fitted):
    from sklearn.base import clone

    detector, X = fitted
    assert detector.fit(X[:600], breadth=np.zeros(600)) is detector
    fresh = clone(detector)
    assert fresh.get_params() == detector.get_params()
    assert not hasattr(fresh, "forest_") and not hasattr(fresh, "score_threshold_")


def test_rows_beyond_max_rows_are_sampled_for_the_forest_only():
    X = np.random.default_rng(4).normal(size=(900, 3))
    detector = BreadthDetector(n_estimators=10, max_rows=300).fit(X, breadth=np.zeros(900))
    assert (detector.calibration_["rows"], detector.calibration_["fit_rows"]) == (900, 300)
    assert detector.forest_.max_samples_ == 300


def test_a_pickled_detector_scores_the_same(fitted):
    import pickle

    detector, X = fitted
    copy = pickle.loads(pickle.dumps(detector))
    assert np.array_equal(copy.score(X[:100]), detector.score(X[:100]))


def test_empty_batch_scores_nothing(fitted):
    detector, X = fitted
    assert detector.score(np.zeros((0, X.shape[1]))).shape == (0,)


def test_a_noisy_metric_does_not_raise_the_gate_of_a_quiet_one():
    """Training where one signal is often far above its floor (a heavy-tailed count) and
    another never is: each metric gets its own gate, so the quiet one still alerts at
    its own rare values and the noisy one needs more than its usual excess."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 3))
    noisy = rng.exponential(3.0, size=2000)  # often far above log(2.5)
    quiet = np.zeros(2000)
    det = BreadthDetector(n_estimators=20).fit(
        X, breadth=np.column_stack([quiet, noisy]), metrics=("quiet", "noisy"))
    floor = math.log(2.5)
    assert det.metric_gates_["quiet"] == pytest.approx(floor)
    assert det.metric_gates_["noisy"] > 5 * floor
    breadth, metric = det.gate({"quiet": 1.5 * floor, "noisy": 2.0 * floor})
    assert metric == "quiet" and breadth >= det.breadth_threshold_
    breadth, _ = det.gate({"quiet": 0.0, "noisy": 3.0 * floor})
    assert breadth < det.breadth_threshold_


def test_an_alert_spanning_midnight_counts_once_against_the_budget():
    # One entity is broad on day 0 and on day 1: the serving policy keeps one alert open
    # across midnight, so it is one alert of a budget of one (0.5 a day over two days) and
    # needs no score gate. The same entity broad on days 0 and 2, a day apart, is two
    # alerts and over budget.
    rng = np.random.default_rng(11)
    X = rng.normal(size=(3000, 4))
    breadth = np.zeros(len(X))
    breadth[:20] = 10.0
    days = np.repeat([0, 1], 1500)
    days[:10], days[10:20] = 0, 1
    entities = [f"e{i % 50}" for i in range(len(X))]
    entities[:20] = ["scanner"] * 20
    once = BreadthDetector(n_estimators=30).fit(X, breadth=breadth, entities=entities, days=days)
    assert once.score_threshold_ == 0.0
    assert once.calibration_["budget"][0] == pytest.approx(
        {"quantile": 0.0, "score": 0.0, "entity_days": 2, "alerts": 1}
    )
    days = np.repeat([0, 2], 1500)
    days[:10], days[10:20] = 0, 2
    twice = BreadthDetector(n_estimators=30).fit(X, breadth=breadth, entities=entities, days=days)
    assert twice.calibration_["budget"][0]["alerts"] == 2
    assert twice.score_threshold_ > 0.0
