"""The anomaly detector of one alert kind: fitted, calibrated, stored and served as one object.

``BreadthDetector`` follows the scikit-learn estimator contract: ``__init__`` stores the
parameters, ``fit`` returns ``self``, fitted state ends in ``_``, and the fitted estimator
is the artifact the registry stores (skops) and the pipeline serves. Its ``score`` is the
IsolationForest anomaly score ``s = 2 ** (-E[h(x)] / c(n))`` in (0, 1]: **higher means
more anomalous**, everywhere in reachwatch (sklearn's own ``score_samples`` returns
``-s``; the sign is flipped here and nowhere else).

``fit`` also calibrates both alert gates from the training reads: the breadth threshold
at a high quantile of training breadth (never below ``min_breadth_ratio``), the score
threshold at the lowest training-score quantile whose alerts on the history stay within
an alert budget (``calibrate_score``).

``score`` walks all trees at once over the fitted forest flattened into arrays (one numpy
pass per tree level), because a ``score_samples`` call costs milliseconds whatever the
batch size; it is tested equal to sklearn within 1e-9, and ``score_reference`` (sklearn
itself) stays the reference implementation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

from reachwatch.models.sides import KINDS


class BreadthDetector(BaseEstimator):
    """IsolationForest with reachwatch's score direction and calibrated alert gates.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3))
    >>> det = BreadthDetector(n_estimators=50).fit(X, breadth=np.zeros(500))
    >>> bool(det.score(np.array([[8.0, 8.0, 8.0]]))[0] > det.score_threshold_)
    True
    """

    def __init__(
        self,
        kind: str = KINDS[0],
        n_estimators: int = 100,
        max_samples: int = 512,
        max_rows: int = 200_000,
        score_quantiles: Sequence[float] = (0.0, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999),
        alert_budget_per_day: float = 0.5,
        breadth_quantile: float = 0.999,
        min_breadth_ratio: float = 2.5,
        random_state: int = 0,
    ) -> None:
        self.kind = kind
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_rows = max_rows
        self.score_quantiles = score_quantiles
        self.alert_budget_per_day = alert_budget_per_day
        self.breadth_quantile = breadth_quantile
        self.min_breadth_ratio = min_breadth_ratio
        self.random_state = random_state

    def fit(
        self,
        X: np.ndarray,
        y: None = None,
        *,
        breadth: np.ndarray,
        metrics: Sequence[str] | None = None,
        entities: Sequence[str] | None = None,
        days: np.ndarray | None = None,
        least: dict[str, float] | None = None,
    ) -> BreadthDetector:
        """Fit the forest on (a seeded sample of at most ``max_rows`` of) ``X`` and calibrate
        both gates on all of it.

        ``breadth`` is each row's breadth (``features.View.breadth``), or with ``metrics``
        a column per named metric (``View.breadths``), each then calibrated on its own
        (``gate``); ``entities`` and ``days`` say whose read on which day each row is, for
        the alert budget (without them every row is its own entity-day); ``least`` the
        lowest gate of each small-count surprise (and its gate where its training
        quantile is zero; other metrics' lowest is the floor).
        """
        X = np.asarray(X, dtype=np.float64)
        breadth = np.asarray(breadth, dtype=np.float64)
        floor = math.log(self.min_breadth_ratio)
        self.metric_gates_: dict[str, float] = {}
        if metrics is not None:
            # Each metric's gate: strictly above its own training quantile, never below the
            # floor. One gate over the largest metric would let the noisiest signal (a
            # heavy-tailed one, a 24 h count that stays high all day) set the bar for the
            # quiet ones; per metric, each is "rarer than almost every training read" on
            # its own scale. Breadth is then rescaled so that every gate is the floor.
            # A small-count surprise's gate is never below ``least`` (the least surprise
            # that is one): where its training quantile is zero (a history with next to
            # no burst) it says nothing, and where ordinary days give it a little (a
            # plain tail: two whole tables against half a one a day is 2.5 nats) that
            # little is no evidence either.
            columns = breadth.reshape(len(X), len(metrics))
            least = least or {}
            for i, metric in enumerate(metrics):
                column = columns[:, i]
                if metric in least and len(column) and np.quantile(
                    column, self.breadth_quantile
                ) <= 0.0:
                    gate = least[metric]
                else:
                    gate = max(_strictly_above(column, self.breadth_quantile),
                               least.get(metric, floor))
                self.metric_gates_[metric] = max(gate, floor)
            breadth = np.max(
                columns * np.asarray([floor / self.metric_gates_[m] for m in metrics]), axis=1
            ) if len(metrics) else np.zeros(len(X))
        if days is None:
            days = np.zeros(len(X), dtype=np.int64)
        if entities is None:
            entities = [str(i) for i in range(len(X))]
        rows = X
        if len(X) > self.max_rows:
            # Seeded per kind, so the sample does not depend on which kind was fitted first.
            rng = np.random.default_rng([self.random_state, KINDS.index(self.kind)])
            rows = X[rng.choice(len(X), size=self.max_rows, replace=False)]
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, len(rows)),
            random_state=self.random_state,
        ).fit(rows)
        self._flat = _FlatForest.of(self.forest_)  # what ``score`` walks
        self.n_features_in_ = X.shape[1]
        scores = self.score(X)
        # Breadth: "unusual for me and for my peers" must be at least min_breadth_ratio,
        # and rarer than almost every training read.
        # Strictly above the quantile when training has anything above it: small-count
        # surprises are discrete, and the quantile of training breadth often *is* a common
        # value (two first-time readers), which a ">=" gate would pass each time it recurs.
        breadth_q = _strictly_above(breadth, self.breadth_quantile)
        # Per-metric gates are already each metric's quantile: the rescaled breadth's gate
        # is the floor they were mapped onto.
        self.breadth_threshold_ = floor if self.metric_gates_ else max(breadth_q, floor)
        self.score_threshold_, budget = calibrate_score(
            scores,
            breadth >= self.breadth_threshold_,
            np.asarray(entities, dtype=object),
            np.asarray(days, dtype=np.int64),
            self.score_quantiles,
            self.alert_budget_per_day,
        )
        # Typical training values, to say which features an alert's read is furthest from.
        self.feature_median_ = np.median(X, axis=0)
        q75, q25 = np.quantile(X, 0.75, axis=0), np.quantile(X, 0.25, axis=0)
        self.feature_scale_ = np.maximum(q75 - q25, np.maximum(np.std(X, axis=0), 1e-3))
        hist, edges = np.histogram(scores, bins=40, range=(0.0, 1.0))
        fit_scores = scores if rows is X else self.score(rows)
        self.calibration_ = {
            "rows": len(X),
            "fit_rows": len(rows),
            "score_quantiles": {
                str(q): float(np.quantile(fit_scores, q))
                for q in (0.5, 0.9, 0.99, 0.999)
            },
            "breadth_quantile": breadth_q,
            "metric_gates": dict(self.metric_gates_),
            "budget": budget,
            "training_alert_rate": float(
                np.mean((scores >= self.score_threshold_) & (breadth >= self.breadth_threshold_))
            ),
            "score_histogram": {"counts": hist.tolist(), "edges": edges.tolist()},
        }
        return self

    def score(self, X: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """Anomaly score per row, higher = more anomalous (the exact vectorised path)."""
        flat = self.__dict__.get("_flat")
        if flat is None:
            flat = self._flat = _FlatForest.of(self.forest_)
        return flat.score(X)

    def score_reference(self, X: np.ndarray) -> np.ndarray:
        """The same score through sklearn itself (slow per call; used to verify)."""
        return -self.forest_.score_samples(np.asarray(X, dtype=np.float64))

    def gate(self, breadths: dict[str, float]) -> tuple[float, str]:
        """(breadth, metric) of a read's per-metric breadths against the per-metric gates:
        each rescaled so its own gate falls on ``breadth_threshold_``; the largest wins.
        A detector fitted without per-metric columns leaves them as they are."""
        gates = self.__dict__.get("metric_gates_") or {}
        threshold = self.breadth_threshold_
        best, best_metric = -math.inf, ""
        for metric, value in breadths.items():
            gate = gates.get(metric)
            if gate is None and gates:
                continue  # a metric newer than the model: it has no calibrated gate
            scaled = value if gate is None else value * threshold / gate
            if scaled > best:
                best, best_metric = scaled, metric
        return best, best_metric

    def alerts(self, score: float, breadth: float) -> bool:
        """Both gates: the read scores high *and* is unusually broad."""
        return score >= self.score_threshold_ and breadth >= self.breadth_threshold_

    # The flattened forest is derived from ``forest_``: it is not stored (skops and pickle
    # both save through this), a loaded detector rebuilds it on its first ``score``.
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_flat", None)
        return state


def _strictly_above(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``values``, nudged just above it when anything is higher."""
    if not len(values):
        return -math.inf
    value = float(np.quantile(values, q))
    if float(np.max(values)) > value:
        value = float(np.nextafter(value, np.inf))
    return value


def calibrate_score(
    scores: np.ndarray,
    broad: np.ndarray,
    entities: np.ndarray,
    days: np.ndarray,
    quantiles: Sequence[float],
    budget_per_day: float,
) -> tuple[float, list[dict[str, float]]]:
    """The lowest score quantile whose history alerts fit the alert budget.

    Alerts need both gates, so the breadth gate already removes nearly every training
    read; the score threshold can then be as permissive as the budget allows. A quantile
    of 0 is no score gate at all (threshold 0): the budget is the only thing the score
    threshold is calibrated against, so where the breadth gates alone keep the history
    within it, a score gate buys nothing the budget asks for and costs recall (the forest
    finds a departing employee's whole-table reads ordinary). The forest's score still
    ranks every alert (its ``score``) and closes the gate wherever the budget needs it.
    The budget counts alerts as the serving policy opens them: an alert stays open while
    its entity keeps reading broadly within the quiet period (24 h), so an entity that is
    broad on consecutive days of history is one alert, not one per day (the quiet period
    is a day, so days are the unit here; ``fit`` is given days, not timestamps). Counting
    entity-days charged a benign alert that ran over midnight once per day, closed the
    score gate on a tuning company whose history held such runs, and silenced a departing
    employee the forest finds ordinary.
    Returns the threshold and, per candidate quantile, the alerting entity-days and
    alerts on history.
    """
    n_days = max(1, len(np.unique(days)))
    budget = budget_per_day * n_days
    table: list[dict[str, float]] = []
    chosen: float | None = None
    for q in quantiles:
        threshold = float(np.quantile(scores, q)) if q > 0 else 0.0
        hit = (scores >= threshold) & broad
        pairs = set(zip(entities[hit].tolist(), days[hit].tolist(), strict=True))
        alerts = _alerts(pairs)
        table.append(
            {"quantile": q, "score": threshold, "entity_days": len(pairs), "alerts": alerts}
        )
        if chosen is None and alerts <= budget:
            chosen = threshold
    if chosen is None:  # even the strictest quantile is over budget: use it anyway
        chosen = table[-1]["score"]
    return chosen, table


def _alerts(entity_days: set[tuple[Any, int]]) -> int:
    """Alerts opened by these (entity, day) pairs: each run of consecutive days is one.

    >>> _alerts({("a", 3), ("a", 4), ("a", 6), ("b", 4)})
    3
    """
    return sum(1 for entity, day in entity_days if (entity, day - 1) not in entity_days)


@dataclass(frozen=True)
class _FlatForest:
    """All trees of a fitted IsolationForest flattened into arrays, scored together."""

    feature: np.ndarray
    threshold: np.ndarray
    leaf_depth: np.ndarray
    roots: np.ndarray
    # Both children of node i at 2i (left) and 2i+1 (right): one gather per level
    # instead of two gathers and a select.
    children: np.ndarray
    max_depth: int
    denominator: float

    @classmethod
    def of(cls, forest: IsolationForest) -> _FlatForest:
        features, thresholds, lefts, rights, depths, roots = [], [], [], [], [], []
        offset = 0
        max_depth = 0
        for tree_idx, (estimator, subset) in enumerate(
            zip(forest.estimators_, forest.estimators_features_, strict=True)
        ):
            tree = estimator.tree_
            n = tree.node_count
            is_leaf = tree.children_left == -1
            node_ids = np.arange(n)
            # Leaves point at themselves with an infinite threshold: the traversal loop
            # needs no branch, a sample that reached a leaf just stays there.
            left = np.where(is_leaf, node_ids, tree.children_left) + offset
            right = np.where(is_leaf, node_ids, tree.children_right) + offset
            feat = np.where(is_leaf, 0, np.asarray(subset)[np.maximum(tree.feature, 0)])
            thr = np.where(is_leaf, np.inf, tree.threshold)
            node_depth = forest._decision_path_lengths[tree_idx]
            leaf_value = node_depth + forest._average_path_length_per_tree[tree_idx] - 1.0
            features.append(feat)
            thresholds.append(thr)
            lefts.append(left)
            rights.append(right)
            depths.append(leaf_value)
            roots.append(offset)
            max_depth = max(max_depth, int(np.max(node_depth)))
            offset += n
        denominator = len(forest.estimators_) * float(
            _average_path_length([forest._max_samples])[0]
        )
        left_all = np.concatenate(lefts).astype(np.intp)
        right_all = np.concatenate(rights).astype(np.intp)
        return cls(
            feature=np.concatenate(features).astype(np.intp),
            threshold=np.concatenate(thresholds),
            leaf_depth=np.concatenate(depths),
            roots=np.asarray(roots, dtype=np.intp),
            children=np.stack([left_all, right_all], axis=1).ravel(),
            max_depth=max_depth,
            denominator=denominator,
        )

    def score(self, X: np.ndarray) -> np.ndarray:
        # sklearn's trees compare float32 inputs with float64 thresholds: do the same.
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        n = X32.shape[0]
        if n == 0:
            return np.zeros(0)
        # Rows flattened: a sample's feature value is one gather at row offset + feature.
        values = X32.ravel()
        offsets = (np.arange(n, dtype=np.intp) * X32.shape[1])[:, None]
        feature, threshold, children = self.feature, self.threshold, self.children
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        for _ in range(self.max_depth):
            # "not <=" rather than ">": a NaN goes right, as in sklearn.
            go_right = ~(values[offsets + feature[node]] <= threshold[node])
            node = children[2 * node + go_right]
        depths = self.leaf_depth[node].sum(axis=1)
        if self.denominator == 0:
            return np.ones(n)
        return 2.0 ** (-depths / self.denominator)
