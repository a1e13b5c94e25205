"""Training: history -> peer profiles -> feature vectors -> fitted, calibrated detectors.

Two passes over the same event-time-ordered history, both through ``FeatureBuilder``
(the code the stream runs):

1. *profiles*: members' hourly/daily maxima per peer group (and per sensitivity for
   datasets), the resources each group reads, its hours of activity;
2. *features*: the same history again, now with those profiles, giving one vector per
   read and side. An IsolationForest per alert kind is fitted on them (the two kinds
   describe different entities with different features, so one joint model would mix
   incomparable rows), and both thresholds are calibrated on the training reads: the
   breadth threshold at a high quantile of training breadth (never below 2.5x), the score
   threshold at the lowest training-score quantile whose alerts on the history stay
   within an alert budget (see ``calibrate_score``).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
import skops
from sklearn.ensemble import IsolationForest

from reachwatch.models.detector import BreadthDetector
from reachwatch.models.errors import ReachwatchError
from reachwatch.models.features import (
    FEATURE_NAMES,
    KINDS,
    DetectionConfig,
    FeatureBuilder,
    PeerProfiles,
    ProfileBuilder,
)
from reachwatch.models.forked import map_forked
from reachwatch.models.records import AccessEvent


@dataclass(frozen=True)
class TrainingParams:
    """Hyper-parameters of the fit and of threshold calibration (stored with the model)."""

    n_estimators: int = 100
    max_samples: int = 512
    max_rows: int = 200_000  # rows per kind used to fit (uniform sample, seeded)
    # The score threshold is the lowest of these training-score quantiles whose alerts,
    # replayed on the (presumed mostly benign) history, stay within the alert budget.
    score_quantiles: tuple[float, ...] = (0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
    alert_budget_per_day: float = 0.15  # alerting entity-days per day of history
    breadth_quantile: float = 0.999
    # An alert needs at least this ratio over both own and peer baselines, whatever the
    # training data says: "far more / far wider" than the usual high (p99), not a bit more.
    min_breadth_ratio: float = 2.5
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["score_quantiles"] = list(self.score_quantiles)
        return out


@dataclass
class FittedModel:
    forests: dict[str, IsolationForest]
    profiles: PeerProfiles
    metadata: dict[str, Any]


def build_profiles(
    events: Sequence[AccessEvent],
    config: DetectionConfig,
    progress: Callable[[int], None] | None = None,
    kinds: Sequence[str] = KINDS,
) -> PeerProfiles:
    """Peer profiles of the sides behind ``kinds`` (their groups never overlap: principal
    peer groups are teams, resource ones sensitivities, so sides can be built apart)."""
    collector = ProfileBuilder(config.baseline_quantile)
    builder = FeatureBuilder(config, None, collector)
    principals: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    do_principals, do_resources = "broad_reader" in kinds, "broad_audience" in kinds
    step = 10000 * len(kinds) // len(KINDS)  # progress: one unit per event, side and pass
    for i, event in enumerate(events):
        if do_principals:
            p = principals.get(event.principal)
            if p is None:
                p = principals[event.principal] = builder.new_principal()
            builder.principal_view(event, p)
        if do_resources:
            r = resources.get(event.resource)
            if r is None:
                r = resources[event.resource] = builder.new_resource()
            builder.resource_view(event, r)
        if progress is not None and i % 10000 == 9999:
            progress(step)
    # Close the last hour/day of every entity so its maxima count too.
    end = (events[-1].ts if events else 0.0) + 2 * 86400.0
    for states in (principals, resources):
        for state in states.values():
            finished = state.roll_time(end)
            if finished:
                collector.add_samples(state.last_group, finished)
    return collector.build()


@dataclass
class TrainingRows:
    """One kind's training reads: feature vectors, breadth, and whose read on which day."""

    vectors: np.ndarray
    breadth: np.ndarray
    entities: list[str]
    days: np.ndarray


def build_vectors(
    events: Sequence[AccessEvent],
    config: DetectionConfig,
    profiles: PeerProfiles,
    progress: Callable[[int], None] | None = None,
    kinds: Sequence[str] = KINDS,
) -> dict[str, TrainingRows]:
    """Feature rows of ``kinds`` for every read of the history."""
    builder = FeatureBuilder(config, profiles)
    principals: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    vectors: dict[str, list[list[float]]] = {kind: [] for kind in kinds}
    breadths: dict[str, list[float]] = {kind: [] for kind in kinds}
    entities: dict[str, list[str]] = {kind: [] for kind in kinds}
    days: dict[str, list[int]] = {kind: [] for kind in kinds}
    do_principals, do_resources = "broad_reader" in kinds, "broad_audience" in kinds
    step = 10000 * len(kinds) // len(KINDS)
    for i, event in enumerate(events):
        day = int(event.ts // 86400)
        if do_principals:
            p = principals.get(event.principal)
            if p is None:
                p = principals[event.principal] = builder.new_principal()
            view = builder.principal_view(event, p)
            if view is not None:
                vectors["broad_reader"].append(view.vector)
                breadths["broad_reader"].append(view.breadth)
                entities["broad_reader"].append(event.principal)
                days["broad_reader"].append(day)
        if do_resources:
            r = resources.get(event.resource)
            if r is None:
                r = resources[event.resource] = builder.new_resource()
            view = builder.resource_view(event, r)
            if view is not None and event.sensitivity != "public":
                vectors["broad_audience"].append(view.vector)
                breadths["broad_audience"].append(view.breadth)
                entities["broad_audience"].append(event.resource)
                days["broad_audience"].append(day)
        if progress is not None and i % 10000 == 9999:
            progress(step)
    return {
        kind: TrainingRows(
            np.asarray(vectors[kind], dtype=np.float64).reshape(-1, len(FEATURE_NAMES[kind])),
            np.asarray(breadths[kind], dtype=np.float64),
            entities[kind],
            np.asarray(days[kind], dtype=np.int64),
        )
        for kind in kinds
    }


def fit(
    events: Sequence[AccessEvent],
    *,
    config: DetectionConfig | None = None,
    params: TrainingParams | None = None,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
) -> FittedModel:
    """Fit both detectors on an event-time-ordered history.

    The two kinds share nothing until their results are merged (their peer groups differ,
    see ``build_profiles``), so with ``jobs`` >= 2 each is trained in a forked process of
    its own: the same model, bit for bit, in about half the time on two cores.
    """
    config = config or DetectionConfig()
    params = params or TrainingParams()
    if len(events) < 100:
        raise ReachwatchError(f"need at least 100 valid events to train, got {len(events)}")
    started = time.time()
    parts = map_forked(
        lambda kind, report: fit_kind(events, kind, config, params, report),
        KINDS,
        jobs=jobs,
        progress=progress,
    )
    fitted = dict(zip(KINDS, parts, strict=True))
    profiles = PeerProfiles.union([fitted[kind].profiles for kind in KINDS])
    metadata = {
        "created_ts": time.time(),
        "features": {kind: list(FEATURE_NAMES[kind]) for kind in KINDS},
        "thresholds": {kind: fitted[kind].thresholds for kind in KINDS},
        "feature_stats": {kind: fitted[kind].stats for kind in KINDS},
        "calibration": {kind: fitted[kind].calibration for kind in KINDS},
        "config": config.to_json(),
        "params": params.to_json(),
        "training_window": {"start": events[0].ts, "end": events[-1].ts},
        "counts": {
            "events": len(events),
            "principals": len({e.principal for e in events}),
            "resources": len({e.resource for e in events}),
            "peer_groups": len(profiles.hours),
        },
        "libraries": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "skops": skops.__version__,
        },
        "fit_seconds": round(time.time() - started, 2),
    }
    return FittedModel({kind: fitted[kind].forest for kind in KINDS}, profiles, metadata)


@dataclass
class KindFit:
    """One alert kind, trained: its side's peer profiles, forest and calibration."""

    profiles: PeerProfiles
    forest: IsolationForest
    thresholds: dict[str, float]
    stats: dict[str, list[float]]
    calibration: dict[str, Any]


def fit_kind(
    events: Sequence[AccessEvent],
    kind: str,
    config: DetectionConfig,
    params: TrainingParams,
    progress: Callable[[int], None] | None = None,
) -> KindFit:
    """Both passes, the forest and its thresholds for one alert kind."""
    profiles = build_profiles(events, config, progress, kinds=(kind,))
    rows_of = build_vectors(events, config, profiles, progress, kinds=(kind,))[kind]
    X, breadth = rows_of.vectors, rows_of.breadth
    if len(X) < 50:
        raise ReachwatchError(f"too few {kind} training rows ({len(X)}) to fit a model")
    rows = X
    if len(X) > params.max_rows:
        # Seeded per kind, so the sample does not depend on which kind was fitted first.
        rng = np.random.default_rng([params.seed, KINDS.index(kind)])
        rows = X[rng.choice(len(X), size=params.max_rows, replace=False)]
    detector = BreadthDetector(
        n_estimators=params.n_estimators,
        max_samples=params.max_samples,
        quantile=params.score_quantiles[-1],
        random_state=params.seed,
    ).fit(rows)
    scores = detector.score(X)
    # Breadth: "unusual for me and for my peers" must be at least min_breadth_ratio,
    # and rarer than almost every training read.
    breadth_q = float(np.quantile(breadth, params.breadth_quantile))
    breadth_threshold = max(breadth_q, math.log(params.min_breadth_ratio))
    score_threshold, budget_rows = calibrate_score(
        scores, breadth >= breadth_threshold, rows_of, params
    )
    detector.threshold_ = score_threshold
    median = np.median(X, axis=0)
    q75, q25 = np.quantile(X, 0.75, axis=0), np.quantile(X, 0.25, axis=0)
    scale = np.maximum(q75 - q25, np.maximum(np.std(X, axis=0), 1e-3))
    hist, edges = np.histogram(scores, bins=40, range=(0.0, 1.0))
    return KindFit(
        profiles=profiles,
        forest=detector.forest_,
        thresholds={"score": detector.threshold_, "breadth": breadth_threshold},
        stats={"median": median.tolist(), "scale": scale.tolist()},
        calibration={
            "rows": len(X),
            "fit_rows": len(rows),
            "score_quantiles": detector.train_score_quantiles_,
            "breadth_quantile": breadth_q,
            "budget": budget_rows,
            "training_alert_rate": float(
                np.mean((scores >= detector.threshold_) & (breadth >= breadth_threshold))
            ),
            "score_histogram": {"counts": hist.tolist(), "edges": edges.tolist()},
        },
    )


def calibrate_score(
    scores: np.ndarray,
    broad: np.ndarray,
    rows: TrainingRows,
    params: TrainingParams,
) -> tuple[float, list[dict[str, float]]]:
    """The lowest score quantile whose history alerts fit the alert budget.

    Alerts need both gates, so the breadth gate already removes nearly every training
    read; the score threshold can then be as permissive as the budget allows. Returns
    the threshold and, per candidate quantile, the alerting entity-days on history.
    """
    n_days = max(1, len(np.unique(rows.days)))
    budget = params.alert_budget_per_day * n_days
    entities = np.asarray(rows.entities, dtype=object)
    table: list[dict[str, float]] = []
    chosen: float | None = None
    for q in params.score_quantiles:
        threshold = float(np.quantile(scores, q))
        hit = (scores >= threshold) & broad
        entity_days = len(set(zip(entities[hit].tolist(), rows.days[hit].tolist(), strict=True)))
        table.append({"quantile": q, "score": threshold, "entity_days": entity_days})
        if chosen is None and entity_days <= budget:
            chosen = threshold
    if chosen is None:  # even the strictest quantile is over budget: use it anyway
        chosen = table[-1]["score"]
    return chosen, table


def sort_by_time(events: Iterable[AccessEvent]) -> list[AccessEvent]:
    """Event-time order (stable: equal timestamps keep their input order)."""
    return sorted(events, key=lambda e: e.ts)
