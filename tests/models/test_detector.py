from __future__ import annotations

import numpy as np
import pytest

from reachwatch.models.detector import BreadthDetector


@pytest.fixture(scope="module")
def fitted() -> tuple[BreadthDetector, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 8))
    X[:, 3] = np.round(X[:, 3])  # ties on thresholds, like counts
    return BreadthDetector(n_estimators=80, random_state=0).fit(X), X


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
        model = tiny_model.kinds[kind]
        reference = -model.forest.score_samples(X)
        assert np.max(np.abs(model.score(X) - reference)) < 1e-9


def test_higher_score_means_more_anomalous(fitted):
    detector, X = fitted
    typical = np.zeros((1, X.shape[1]))
    outlier = np.full((1, X.shape[1]), 9.0)
    assert detector.score(outlier)[0] > detector.threshold_ > detector.score(typical)[0]


def test_threshold_is_the_calibrated_training_quantile(fitted):
    detector, X = fitted
    share_above = np.mean(detector.score(X) >= detector.threshold_)
    assert share_above == pytest.approx(1 - detector.quantile, abs=0.002)


def test_empty_batch_scores_nothing(fitted):
    detector, X = fitted
    assert detector.score(np.zeros((0, X.shape[1]))).shape == (0,)
