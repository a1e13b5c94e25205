"""The anomaly detector: scikit-learn's IsolationForest behind one score direction.

``BreadthDetector`` follows the scikit-learn estimator contract. Its ``score`` is the
IsolationForest anomaly score ``s = 2 ** (-E[h(x)] / c(n))`` in (0, 1]: **higher means
more anomalous**, everywhere in reachwatch (sklearn's own ``score_samples`` returns
``-s``; the sign is flipped here and nowhere else).

``ForestScorer`` is an exact, vectorised re-implementation of that score over the fitted
trees (one numpy pass over all trees at once). It exists because a ``score_samples`` call
costs ~10 ms whatever the batch size; it is tested equal to sklearn within 1e-9, and
sklearn stays the reference implementation.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length


class BreadthDetector(BaseEstimator):
    """IsolationForest with reachwatch's score direction and a calibrated threshold.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3))
    >>> det = BreadthDetector(n_estimators=50, random_state=0).fit(X)
    >>> bool(det.score(np.array([[8.0, 8.0, 8.0]]))[0] > det.threshold_)
    True
    """

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int | str = 512,
        quantile: float = 0.995,
        random_state: int | None = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.quantile = quantile
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: None = None) -> BreadthDetector:
        X = np.asarray(X, dtype=np.float64)
        max_samples = self.max_samples
        if isinstance(max_samples, int):
            max_samples = min(max_samples, len(X))
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=max_samples,
            random_state=self.random_state,
        ).fit(X)
        self.scorer_ = ForestScorer.from_forest(self.forest_)
        train_scores = self.scorer_.score(X)
        # The score threshold: the training scores' high quantile ("as rare as the
        # rarest 0.5 % of ordinary reads").
        self.threshold_ = float(np.quantile(train_scores, self.quantile))
        self.train_score_quantiles_ = {
            str(q): float(np.quantile(train_scores, q)) for q in (0.5, 0.9, 0.99, 0.999)
        }
        self.n_features_in_ = X.shape[1]
        return self

    def score(self, X: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """Anomaly score per row, higher = more anomalous (fast exact path)."""
        return self.scorer_.score(X)

    def score_reference(self, X: np.ndarray) -> np.ndarray:
        """The same score through sklearn itself (slow per call; used to verify)."""
        return -self.forest_.score_samples(np.asarray(X, dtype=np.float64))


class ForestScorer:
    """All trees of a fitted IsolationForest flattened into arrays, scored together."""

    def __init__(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        leaf_depth: np.ndarray,
        roots: np.ndarray,
        max_depth: int,
        denominator: float,
    ) -> None:
        self.feature = feature
        self.threshold = threshold
        self.left = left
        self.right = right
        self.leaf_depth = leaf_depth
        self.roots = roots
        self.max_depth = max_depth
        self.denominator = denominator
        # Both children of node i at 2i (left) and 2i+1 (right): one gather per level
        # instead of two gathers and a select.
        self.children = np.stack([left, right], axis=1).ravel()

    @classmethod
    def from_forest(cls, forest: IsolationForest) -> ForestScorer:
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
        return cls(
            np.concatenate(features).astype(np.intp),
            np.concatenate(thresholds),
            np.concatenate(lefts).astype(np.intp),
            np.concatenate(rights).astype(np.intp),
            np.concatenate(depths),
            np.asarray(roots, dtype=np.intp),
            max_depth,
            denominator,
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

    def arrays(self) -> dict[str, np.ndarray]:
        """The flattened forest as plain arrays (what the registry stores next to skops)."""
        return {
            "feature": self.feature,
            "threshold": self.threshold,
            "left": self.left,
            "right": self.right,
            "leaf_depth": self.leaf_depth,
            "roots": self.roots,
            "meta": np.array([self.max_depth, self.denominator]),
        }
