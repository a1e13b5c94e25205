"""Training: history -> peer profiles -> feature vectors -> fitted, calibrated detectors.

Two passes over the same event-time-ordered history, both through ``FeatureBuilder``
(the code the stream runs):

1. *profiles*: members' hourly/daily maxima per peer group (and per sensitivity for
   datasets), the resources each group reads, its hours of activity;
2. *features*: the same history again, now with those profiles, giving one vector per
   read and side. A ``detector.BreadthDetector`` per alert kind is fitted on them (the
   two kinds describe different entities with different features, so one joint model
   would mix incomparable rows); its ``fit`` also calibrates both alert thresholds on
   the training reads.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
import skops

from reachwatch.models.detector import BreadthDetector
from reachwatch.models.errors import ReachwatchError
from reachwatch.models.features import (
    CLUSTERED,
    GRANTED,
    GRANTS_GROUP,
    SCANS,
    DetectionConfig,
    FeatureBuilder,
    PeerProfiles,
    ProfileBuilder,
    group_readers,
    largest_reads,
    peer_reach,
)
from reachwatch.models.forked import map_forked
from reachwatch.models.grants import GRANT_ACTIONS
from reachwatch.models.records import AccessEvent
from reachwatch.models.sides import PRINCIPAL, RESOURCE, SIDES, Side
from reachwatch.models.windows import DAY, EntityState


@dataclass(frozen=True)
class TrainingParams:
    """Hyper-parameters of the fit and of threshold calibration (stored with the model)."""

    n_estimators: int = 100
    max_samples: int = 512
    max_rows: int = 200_000  # rows per kind used to fit (uniform sample, seeded)
    # The score threshold is the lowest of these training-score quantiles whose alerts,
    # replayed on the (presumed mostly benign) history, stay within the alert budget
    # (0: no score gate, when the breadth gates alone keep the history within it).
    score_quantiles: tuple[float, ...] = (0.0, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
    # Alerts per day of history (a run of consecutive broad days is one, as the serving
    # policy keeps it open): as many as the false-positive entities per
    # company-day issue 12 accepts, so history may alert as often as ordinary days may.
    alert_budget_per_day: float = 0.5
    breadth_quantile: float = 0.999
    # An alert needs at least this ratio over both own and peer baselines, whatever the
    # training data says: "far more / far wider" than the usual high (p99), not a bit more.
    min_breadth_ratio: float = 2.5
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["score_quantiles"] = list(self.score_quantiles)
        return out

    def detector(self, side: Side) -> BreadthDetector:
        """An unfitted detector of ``side``'s alert kind with these parameters."""
        return BreadthDetector(
            kind=side.kind,
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            max_rows=self.max_rows,
            score_quantiles=self.score_quantiles,
            alert_budget_per_day=self.alert_budget_per_day,
            breadth_quantile=self.breadth_quantile,
            min_breadth_ratio=self.min_breadth_ratio,
            random_state=self.seed,
        )


@dataclass
class FittedModel:
    """What ``Registry.write`` stores: a fitted detector per alert kind, peer profiles and
    metadata."""

    detectors: dict[str, BreadthDetector]
    profiles: PeerProfiles
    metadata: dict[str, Any]


def _states_of(
    builder: FeatureBuilder, side: Side, states: dict[str, EntityState], event: AccessEvent
) -> EntityState:
    key = side.entity(event)
    state = states.get(key)
    if state is None:
        state = states[key] = builder.new_state(side)
    return state


def build_profiles(
    events: Sequence[AccessEvent],
    config: DetectionConfig,
    progress: Callable[[int], None] | None = None,
    sides: Sequence[Side] = SIDES,
) -> PeerProfiles:
    """Peer profiles of ``sides`` (their groups never overlap: principal peer groups are
    teams, resource ones sensitivities, so sides can be built apart)."""
    # "New to the peers" leaves the reader out (``GroupReaders``): who read what is
    # collected over the whole history before the pass.
    # So is each dataset's largest read: what "the whole table" is (``heavy``).
    principals = PRINCIPAL in sides
    reads = [e for e in events if e.action not in GRANT_ACTIONS] if principals else []
    largest = largest_reads(reads) if principals else {}
    collector = ProfileBuilder(
        config.baseline_quantile,
        config.peer_member_quantile,
        group_readers(reads) if principals else None,
        largest,
    )
    builder = FeatureBuilder(config, PeerProfiles(largest=largest), collector)
    states: dict[Side, dict[str, EntityState]] = {side: {} for side in sides}
    step = 10000 * len(sides) // len(SIDES)  # progress: one unit per event, side and pass
    for i, event in enumerate(events):
        if event.action in GRANT_ACTIONS:
            builder.file_grant(event)  # not a read: filed for the reads after it
            continue
        for side in sides:
            builder.view(event, _states_of(builder, side, states[side], event))
        if progress is not None and i % 10000 == 9999:
            progress(step)
    # Close the last hour/day of every entity so its maxima count too.
    end = (events[-1].ts if events else 0.0) + 2 * DAY
    for side in sides:
        for state in states[side].values():
            finished = state.roll_time(end)
            if finished:
                collector.add_samples(state.last_group, finished, id(state))
    profiles = collector.build()
    if principals:
        profiles.reach = peer_reach(reads)
    if RESOURCE in sides and events:
        # How many grants a day the reads after them are tested for (``_granted``).
        granted = sum(1 for e in events if e.action in GRANT_ACTIONS and e.outcome == "allowed")
        days = max(1.0, (events[-1].ts - events[0].ts) / DAY)
        profiles.baselines[GRANTS_GROUP] = {"per_day": granted / days}
    return profiles


@dataclass
class TrainingRows:
    """One kind's training reads: feature vectors, breadth, and whose read on which day."""

    vectors: np.ndarray
    breadth: np.ndarray  # rows x ``side.gated_metrics``: each metric's breadth
    entities: list[str]
    days: np.ndarray


def build_vectors(
    events: Sequence[AccessEvent],
    config: DetectionConfig,
    profiles: PeerProfiles,
    progress: Callable[[int], None] | None = None,
    sides: Sequence[Side] = SIDES,
) -> dict[str, TrainingRows]:
    """Feature rows, by alert kind, of every read of the history that may alert."""
    builder = FeatureBuilder(config, profiles)
    states: dict[Side, dict[str, EntityState]] = {side: {} for side in sides}
    vectors: dict[Side, list[list[float]]] = {side: [] for side in sides}
    breadths: dict[Side, list[list[float]]] = {side: [] for side in sides}
    entities: dict[Side, list[str]] = {side: [] for side in sides}
    days: dict[Side, list[int]] = {side: [] for side in sides}
    step = 10000 * len(sides) // len(SIDES)
    for i, event in enumerate(events):
        if event.action in GRANT_ACTIONS:
            builder.file_grant(event)
            continue
        day = int(event.ts // DAY)
        for side in sides:
            view = builder.view(event, _states_of(builder, side, states[side], event))
            if view is not None and side.may_alert(event):
                vectors[side].append(view.vector)
                breadths[side].append([view.breadths[m] for m in side.gated_metrics])
                entities[side].append(view.entity)
                days[side].append(day)
        if progress is not None and i % 10000 == 9999:
            progress(step)
    return {
        side.kind: TrainingRows(
            np.asarray(vectors[side], dtype=np.float64).reshape(-1, len(side.features)),
            np.asarray(breadths[side], dtype=np.float64).reshape(-1, len(side.gated_metrics)),
            entities[side],
            np.asarray(days[side], dtype=np.int64),
        )
        for side in sides
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

    The two sides share nothing until their results are merged (their peer groups differ,
    see ``build_profiles``), so with ``jobs`` >= 2 each is trained in a forked process of
    its own: the same model, bit for bit, in about half the time on two cores.
    """
    config = config or DetectionConfig()
    params = params or TrainingParams()
    grants = sum(1 for e in events if e.action in GRANT_ACTIONS)
    if len(events) - grants < 100:
        raise ReachwatchError(
            f"need at least 100 valid reads to train, got {len(events) - grants}"
        )
    started = time.time()
    parts = map_forked(
        lambda side, report: fit_side(events, side, config, params, report),
        SIDES,
        jobs=jobs,
        progress=progress,
    )
    profiles = PeerProfiles.union([part.profiles for part in parts])
    detectors = {side.kind: part.detector for side, part in zip(SIDES, parts, strict=True)}
    metadata = {
        "created_ts": time.time(),
        "features": {side.kind: list(side.features) for side in SIDES},
        "thresholds": {
            kind: {"score": d.score_threshold_, "breadth": d.breadth_threshold_}
            for kind, d in detectors.items()
        },
        "feature_stats": {
            kind: {"median": d.feature_median_.tolist(), "scale": d.feature_scale_.tolist()}
            for kind, d in detectors.items()
        },
        "calibration": {kind: d.calibration_ for kind, d in detectors.items()},
        "config": config.to_json(),
        "params": params.to_json(),
        "training_window": {"start": events[0].ts, "end": events[-1].ts},
        "counts": {
            "events": len(events) - grants,
            "grants": grants,
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
    return FittedModel(detectors, profiles, metadata)


@dataclass
class SideFit:
    """One side, trained: its peer profiles and its fitted detector."""

    profiles: PeerProfiles
    detector: BreadthDetector


def fit_side(
    events: Sequence[AccessEvent],
    side: Side,
    config: DetectionConfig,
    params: TrainingParams,
    progress: Callable[[int], None] | None = None,
) -> SideFit:
    """Both passes and the fitted, calibrated detector of one side."""
    profiles = build_profiles(events, config, progress, sides=(side,))
    rows = build_vectors(events, config, profiles, progress, sides=(side,))[side.kind]
    if len(rows.vectors) < 50:
        raise ReachwatchError(
            f"too few {side.kind} training rows ({len(rows.vectors)}) to fit a model"
        )
    detector = params.detector(side).fit(
        rows.vectors,
        breadth=rows.breadth,
        metrics=side.gated_metrics,
        entities=rows.entities,
        days=rows.days,
        least=least_surprise(side, config),
    )
    return SideFit(profiles, detector)


def least_surprise(side: Side, config: DetectionConfig) -> dict[str, float]:
    """The lowest gate of each small-count surprise, and its gate where history had no
    burst (its training quantile is zero): ``min_surprise`` (1 in 20).

    A principal's surprises are tail probabilities in nats, so the breadth floor (ln 2.5,
    "rarer than 40 %") is no bar for them. The exposure scan and the clustered reader
    count are never below ``min_surprise`` when they say anything (``FeatureBuilder``),
    so that is their real bar too: left at the floor, every one of their alerts was
    "twice the gate", and raised a level (``alerts.severity_of``), whatever its surprise.
    """
    return {
        m: config.min_surprise
        for m in side.surprise_metrics
        if not side.surprise_by_sensitivity or m in SCANS or m in CLUSTERED or m in GRANTED
    }


def sort_by_time(events: Iterable[AccessEvent]) -> list[AccessEvent]:
    """Event-time order (stable: equal timestamps keep their input order)."""
    return sorted(events, key=lambda e: e.ts)
