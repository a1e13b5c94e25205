"""Feature vectors for both alert kinds, computed from per-entity state.

One function per side turns (event, state) into a ``View``: the feature vector the
IsolationForest scores, plus the breadth figures the alert policy needs to explain itself.
The same functions run in ``reachwatch train``, ``reachwatch replay`` and the Faust agents,
so analysts train on exactly what the stream computes.

Breadth is always compared twice: with the entity's *own* history (decayed 30-day
baselines of hourly and daily maxima) and with its *peers* (same team, from the model's
peer profiles; resources are compared with datasets of the same sensitivity). An entity
without enough own history is judged against its peers only, so being new is not
suspicious in itself.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

from reachwatch.models.records import SENSITIVITIES, AccessEvent
from reachwatch.models.windows import (
    DAY,
    HOUR,
    DecayedHistogram,
    EntityState,
    PrincipalState,
    ResourceState,
)

KINDS = ("broad_reader", "broad_audience")
SENSITIVE = frozenset({"confidential", "restricted"})
UNKNOWN_GROUP = "?"


@dataclass(frozen=True)
class DetectionConfig:
    """Knobs of the feature definitions (stored with every model; not thresholds).

    Thresholds on scores and breadth are calibrated from training data by
    ``models.training``; these only say what is measured and how.
    """

    spans: tuple[float, float, float] = (15 * 60.0, HOUR, DAY)
    sensitivity_weights: dict[str, float] = field(
        default_factory=lambda: {
            "public": 0.2,
            "internal": 1.0,
            "confidential": 3.0,
            "restricted": 9.0,
        }
    )
    # Pseudo-count added to both sides of every value/baseline ratio, so one odd read
    # against an empty baseline is not "infinitely" unusual. Principal side counts
    # sensitivity-weighted reads (3 = three internal datasets), resource side readers.
    principal_smoothing: float = 3.0
    resource_smoothing: float = 2.0
    baseline_quantile: float = 0.99
    # Own history counts once it holds this much (decayed) weight of finished hours/days.
    min_own_hours: float = 8.0
    min_own_days: float = 4.0
    allowed_lateness: float = 600.0
    # An entity with no read for this long is forgotten (bounded memory); by then its
    # decayed baselines carry under a tenth of their weight anyway.
    idle_ttl_days: float = 35.0
    window_cap: int = 5000
    memory_cap: int = 4096

    def to_json(self) -> dict[str, Any]:
        return {
            "spans": list(self.spans),
            "sensitivity_weights": dict(self.sensitivity_weights),
            "principal_smoothing": self.principal_smoothing,
            "resource_smoothing": self.resource_smoothing,
            "baseline_quantile": self.baseline_quantile,
            "min_own_hours": self.min_own_hours,
            "min_own_days": self.min_own_days,
            "allowed_lateness": self.allowed_lateness,
            "idle_ttl_days": self.idle_ttl_days,
            "window_cap": self.window_cap,
            "memory_cap": self.memory_cap,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> DetectionConfig:
        obj = dict(obj)
        obj["spans"] = tuple(obj["spans"])
        return cls(**obj)


# Compact on purpose: an IsolationForest isolates along randomly chosen features, so
# every redundant column dilutes the ones that matter. Breadth enters as the *smaller* of
# the own and peer excess ("unusual for me and for my team"), the quantity the gate uses.
PRINCIPAL_FEATURES = (
    "distinct_1h",
    "groups_1h",
    "weighted_1h",
    "outside_share_1h",
    "outside_weighted_24h",
    "new_own_1h",
    "new_peer_24h",
    "outside_new_sensitive_24h",
    "records_1h",
    "bytes_1h",
    "denied_ratio_1h",
    "hour_rarity",
    "breadth_weighted_1h",
    "breadth_outside_1h",
    "breadth_outside_24h",
)

RESOURCE_FEATURES = (
    "readers_15m",
    "readers_1h",
    "reader_groups_1h",
    "outside_readers_1h",
    "first_time_1h",
    "outside_share_1h",
    "service_share_1h",
    "records_1h",
    "bytes_1h",
    "denied_ratio_1h",
    "sensitivity",
    "breadth_readers_1h",
    "breadth_outside_1h",
    "breadth_groups_1h",
)

FEATURE_NAMES = {"broad_reader": PRINCIPAL_FEATURES, "broad_audience": RESOURCE_FEATURES}

# Which window metrics gate an alert ("the breadth really is unusual"): feature metric
# name -> (state baseline metric, human label used in summaries).
PRINCIPAL_BREADTH = ("weighted_1h", "outside_weighted_1h", "outside_weighted_24h")
RESOURCE_BREADTH = ("readers_1h", "outside_readers_1h", "reader_groups_1h")


def resource_key(resource: str) -> int:
    """A stable 64-bit key for a resource id (peer profiles store keys, not names)."""
    return int.from_bytes(blake2b(resource.encode("utf-8"), digest_size=8).digest(), "little")


def peer_group_of(event: AccessEvent) -> str:
    """The peer group a principal is compared with: same team *and* same principal type.

    People are compared with people of their team, service accounts with the team's
    service accounts: one nightly backup job in it-ops must not make every it-ops
    engineer's peer baseline "reads everything". Without a team, all of its type.
    """
    if event.principal_group is None:
        return f"~{event.principal_type}"
    return f"{event.principal_group}/{event.principal_type}"


def hour_of_week(ts: float) -> int:
    """0 = Monday 00:00-01:00 UTC (1970-01-01 was a Thursday)."""
    return (int(ts // HOUR) + 72) % 168


@dataclass
class PeerProfiles:
    """What peers usually do, learnt at training time and shipped with the model.

    ``baselines[group][metric]`` is the ``baseline_quantile`` of the group's member-hour
    (or member-day) maxima; ``resources[group]`` the keys of resources any member read;
    ``hours[group]`` the group's hour-of-week activity. Resource "peers" are datasets of
    the same sensitivity: ``baselines["sensitivity:restricted"]`` and so on.
    """

    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    resources: dict[str, frozenset[int]] = field(default_factory=dict)
    hours: dict[str, list[float]] = field(default_factory=dict)

    def baseline(self, group: str, fallback: str, metric: str) -> float:
        row = self.baselines.get(group) or self.baselines.get(fallback) or {}
        return row.get(metric, 0.0)

    def knows(self, group: str, key: int) -> bool:
        keys = self.resources.get(group)
        return keys is not None and key in keys

    @classmethod
    def union(cls, parts: Sequence[PeerProfiles]) -> PeerProfiles:
        """Profiles of disjoint peer groups (e.g. each side's, built apart) as one."""
        merged = cls()
        for part in parts:
            merged.baselines.update(part.baselines)
            merged.resources.update(part.resources)
            merged.hours.update(part.hours)
        return merged


class ProfileBuilder:
    """Collects the peer profiles during a first pass over training history."""

    def __init__(self, quantile: float) -> None:
        self.quantile = quantile
        self.samples: dict[str, dict[str, DecayedHistogram]] = {}
        self.resources: dict[str, set[int]] = {}
        self.hours: dict[str, list[float]] = {}

    def add_samples(self, group: str, samples: list[tuple[str, float]]) -> None:
        row = self.samples.setdefault(group, {})
        for metric, value in samples:
            hist = row.get(metric)
            if hist is None:
                hist = row[metric] = DecayedHistogram(half_life_days=1e9)
            hist.add(value, 0)

    def add_read(self, group: str, key: int, ts: float) -> None:
        self.resources.setdefault(group, set()).add(key)
        hours = self.hours.get(group)
        if hours is None:
            hours = self.hours[group] = [0.0] * 168
        hours[hour_of_week(ts)] += 1.0

    def build(self) -> PeerProfiles:
        return PeerProfiles(
            baselines={
                group: {m: h.quantile(self.quantile) for m, h in row.items()}
                for group, row in self.samples.items()
            },
            resources={g: frozenset(keys) for g, keys in self.resources.items()},
            hours={g: list(h) for g, h in self.hours.items()},
        )


@dataclass(slots=True)
class View:
    """One scored side of one read: the vector, and what explains it."""

    kind: str
    entity: str
    event: AccessEvent
    vector: list[float]
    metrics: dict[str, float]
    own: dict[str, float]
    peer: dict[str, float]
    own_mature: bool
    breadth: float  # max over breadth metrics of min(own excess, peer excess), log-ratio
    breadth_metric: str
    state: EntityState


def _excess(value: float, baseline: float, smoothing: float) -> float:
    return math.log((value + smoothing) / (baseline + smoothing))


def _hour_rarity(
    state: EntityState, peer_hours: list[float] | None, peer_peak: float, ts: float
) -> float:
    """How unusual this hour of the week is for the entity (0 usual .. 1 never seen)."""
    how = hour_of_week(ts)
    # Until an entity has 20 reads of its own it is judged by its peers' hours. Its own
    # profile sums to its read count until a bucket passes 1,000 (then it is halved, and
    # still sums to 500 or more), so the read count answers without summing 168 buckets.
    if state.events < 20 and peer_hours:
        hours_seq: Any = peer_hours
        peak = peer_peak
    else:
        hours_seq = state.hour_of_week
        if hours_seq is None:
            return 0.0
        peak = state.hours_peak
        if peak is None:
            peak = state.hours_peak = max(hours_seq)
    if peak <= 0:
        return 0.0
    return 1.0 - min(1.0, (hours_seq[how] + 0.5) / (peak + 0.5)) ** 0.5


def _outside(event: AccessEvent) -> float:
    """1.0 when the reader's team is known and is not the dataset's owning team."""
    return (
        1.0
        if event.principal_group is not None
        and event.resource_group is not None
        and event.resource_group != event.principal_group
        else 0.0
    )


def _outside_groups(categories: dict[str, int], own_group: str | None) -> int:
    """Owning groups in a window other than the reader's own (and the unknown group)."""
    inside = {own_group, UNKNOWN_GROUP}
    return len(categories) - sum(1 for group in inside if group in categories)


def _note_hour(state: EntityState, ts: float) -> None:
    hours = state.hour_of_week
    if hours is None:
        hours = state.hour_of_week = array("f", bytes(4 * 168))
    how = hour_of_week(ts)
    hours[how] += 1.0
    if hours[how] > 1000.0:  # keep it a profile, not a lifetime counter
        for i in range(168):
            hours[i] *= 0.5
        state.hours_peak = None
    elif state.hours_peak is not None and hours[how] > state.hours_peak:
        state.hours_peak = hours[how]


class FeatureBuilder:
    """Updates entity state with one read and returns that side's ``View``."""

    def __init__(
        self,
        config: DetectionConfig,
        profiles: PeerProfiles | None = None,
        collector: ProfileBuilder | None = None,
    ) -> None:
        self.config = config
        self.profiles = profiles or PeerProfiles()
        self.collector = collector
        self.weights = config.sensitivity_weights
        self._q = config.baseline_quantile
        # Profiles never change under a builder (a new model gets a new builder): what is
        # derived from them per group is computed once.
        self._peer_rows: dict[tuple[str, str], dict[str, float]] = {}
        self._peer_peaks: dict[str, float] = {}

    def _peer_baselines(
        self, group: str, fallback: str, metrics: tuple[str, ...]
    ) -> dict[str, float]:
        row = self._peer_rows.get((group, fallback))
        if row is None:
            row = self._peer_rows[(group, fallback)] = {
                m: self.profiles.baseline(group, fallback, m) for m in metrics
            }
        return row

    def _peer_peak(self, group: str) -> float:
        peak = self._peer_peaks.get(group)
        if peak is None:
            hours = self.profiles.hours.get(group)
            peak = self._peer_peaks[group] = max(hours) if hours else 0.0
        return peak

    # -- state factories --------------------------------------------------------------
    def new_principal(self) -> PrincipalState:
        c = self.config
        return PrincipalState(c.spans, c.window_cap, c.memory_cap)

    def new_resource(self) -> ResourceState:
        c = self.config
        return ResourceState(c.spans, c.window_cap, c.memory_cap)

    def _advance(self, state: EntityState, ts: float, peer_key: str) -> float | None:
        """Move the state's clock to ``ts``: finish past hours/days into the baselines,
        expire the windows. None (and nothing changed) when the read is later than allowed.
        """
        if state.events and ts < state.watermark - self.config.allowed_lateness:
            return None
        now = max(state.watermark, ts)
        finished = state.roll_time(now)
        if self.collector is not None and finished:
            self.collector.add_samples(state.last_group or peer_key, finished)
        state.last_group = peer_key
        state.watermark = now
        for window in state.windows:
            window.expire(now)
        state.counts.expire(now)
        return now

    def _compare(
        self,
        metrics: dict[str, float],
        state: EntityState,
        peer: dict[str, float],
        smoothing: float,
    ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
        """Own baselines (nan while immature), peer baselines, and per-metric breadth.

        Breadth is the smaller of the excess over the own and over the peer baseline
        (log-ratios): unusual for the entity *and* for its peers. Without enough own
        history the entity is judged against its peers only.
        """
        cfg = self.config
        own: dict[str, float] = {}
        breadth: dict[str, float] = {}
        for metric, peer_value in peer.items():
            own_value, own_weight = state.baseline(metric, self._q)
            needed = cfg.min_own_days if metric.endswith("24h") else cfg.min_own_hours
            peer_excess = _excess(metrics[metric], peer_value, smoothing)
            if own_weight >= needed:
                own[metric] = own_value
                breadth[metric] = min(_excess(metrics[metric], own_value, smoothing), peer_excess)
            else:
                own[metric] = math.nan
                breadth[metric] = peer_excess
        return own, peer, breadth

    # -- principal side ---------------------------------------------------------------
    def principal_view(self, event: AccessEvent, state: PrincipalState) -> View | None:
        group = peer_group_of(event)
        if self._advance(state, event.ts, group) is None:
            return None
        cfg, profiles = self.config, self.profiles
        fallback = f"~{event.principal_type}"

        ts = event.ts
        day = int(ts // DAY)
        key = resource_key(event.resource)
        own_mature = state.hourly[0].total >= cfg.min_own_hours
        seen = state.memory.check_and_add(event.resource, day)
        peer_known = profiles.knows(group, key) or profiles.knows(fallback, key)
        new_peer = 0.0 if peer_known or not profiles.resources else 1.0
        # Cold start: a newcomer has seen nothing, so "new to me" would flag every read;
        # until its own history matures it inherits its peers' novelty instead.
        new_own = (0.0 if seen else 1.0) if own_mature else new_peer
        weight = self.weights.get(event.sensitivity, 1.0)
        outside = _outside(event)
        attrs = (
            weight,
            1.0 if event.sensitivity in SENSITIVE else 0.0,
            outside,
            outside * weight,
            new_own,
            new_peer,
            1.0 if event.sensitivity == "restricted" else 0.0,
            outside * new_own if event.sensitivity in SENSITIVE else 0.0,
        )
        category = event.resource_group or UNKNOWN_GROUP
        for window in state.windows:
            window.add(ts, event.resource, category, attrs)
        denied = 1.0 if event.outcome == "denied" else 0.0
        state.counts.add(ts, (1.0, float(event.records or 0), float(event.bytes or 0), denied))
        rarity = _hour_rarity(state, profiles.hours.get(group), self._peer_peak(group), ts)
        _note_hour(state, ts)
        if self.collector is not None:
            self.collector.add_read(group, key, ts)
        state.events += 1
        state.remember([ts, event.resource, event.sensitivity, event.resource_group])

        w15, w1h, w24 = state.windows
        metrics = {
            "weighted_1h": w1h.sums[0],
            "outside_weighted_1h": w1h.sums[3],
            "groups_1h": float(w1h.distinct_categories),
            "outside_weighted_24h": w24.sums[3],
            "distinct_1h": float(w1h.distinct),
            "distinct_15m": float(w15.distinct),
            "sensitive_1h": w1h.sums[1],
            "outside_1h": w1h.sums[2],
            "outside_groups_1h": float(_outside_groups(w1h.categories, event.principal_group)),
            "distinct_24h": float(w24.distinct),
            "outside_24h": w24.sums[2],
            "sensitive_24h": w24.sums[1],
            "restricted_1h": w1h.sums[6],
            "restricted_24h": w24.sums[6],
            "outside_groups_24h": float(_outside_groups(w24.categories, event.principal_group)),
        }
        state.track(
            (metrics["weighted_1h"], metrics["outside_weighted_1h"], metrics["groups_1h"]),
            (metrics["outside_weighted_24h"],),
        )
        own, peer, breadth_of = self._compare(
            metrics,
            state,
            self._peer_baselines(group, fallback, PRINCIPAL_BREADTH),
            cfg.principal_smoothing,
        )
        breadth_metric = max(breadth_of, key=breadth_of.__getitem__)
        breadth = breadth_of[breadth_metric]
        reads, records, nbytes, denied_n = state.counts.sums
        distinct_1h = max(1, w1h.distinct)
        log1p = math.log1p
        vector = [
            log1p(w1h.distinct),
            log1p(w1h.distinct_categories),
            log1p(w1h.sums[0]),
            w1h.sums[2] / distinct_1h,
            log1p(w24.sums[3]),
            log1p(w1h.sums[4]),
            log1p(w24.sums[5]),
            log1p(w24.sums[7]),
            log1p(records),
            log1p(nbytes),
            denied_n / reads if reads > 0 else 0.0,
            rarity,
            breadth_of["weighted_1h"],
            breadth_of["outside_weighted_1h"],
            breadth_of["outside_weighted_24h"],
        ]
        return View(
            "broad_reader",
            event.principal,
            event,
            vector,
            metrics,
            own,
            peer,
            own_mature,
            breadth,
            breadth_metric,
            state,
        )

    # -- resource side ----------------------------------------------------------------
    def resource_view(self, event: AccessEvent, state: ResourceState) -> View | None:
        peer_key = f"sensitivity:{event.sensitivity}"
        if self._advance(state, event.ts, peer_key) is None:
            return None
        cfg = self.config

        ts = event.ts
        seen = state.memory.check_and_add(event.principal, int(ts // DAY))
        outside = _outside(event)
        attrs = (outside, 0.0 if seen else 1.0, 1.0 if event.principal_type == "service" else 0.0)
        category = event.principal_group or f"~{event.principal_type}"
        for window in state.windows:
            window.add(ts, event.principal, category, attrs)
        denied = 1.0 if event.outcome == "denied" else 0.0
        state.counts.add(ts, (1.0, float(event.records or 0), float(event.bytes or 0), denied))
        state.events += 1
        state.remember([ts, event.principal, event.principal_group, event.principal_type])

        w15, w1h, w24 = state.windows
        metrics = {
            "readers_1h": float(w1h.distinct),
            "outside_readers_1h": w1h.sums[0],
            "reader_groups_1h": float(w1h.distinct_categories),
            "readers_24h": float(w24.distinct),
            "first_time_1h": w1h.sums[1],
            "readers_15m": float(w15.distinct),
        }
        state.track(
            (metrics["readers_1h"], metrics["outside_readers_1h"], metrics["reader_groups_1h"]),
            (metrics["readers_24h"],),
        )
        own_mature = state.hourly[0].total >= cfg.min_own_hours
        own, peer, breadth_of = self._compare(
            metrics,
            state,
            self._peer_baselines(peer_key, "sensitivity:internal", RESOURCE_BREADTH),
            cfg.resource_smoothing,
        )
        breadth_metric = max(breadth_of, key=breadth_of.__getitem__)
        breadth = breadth_of[breadth_metric]
        reads, records, nbytes, denied_n = state.counts.sums
        readers = max(1, w1h.distinct)
        log1p = math.log1p
        vector = [
            log1p(w15.distinct),
            log1p(w1h.distinct),
            log1p(w1h.distinct_categories),
            log1p(w1h.sums[0]),
            log1p(w1h.sums[1]),
            w1h.sums[0] / readers,
            w1h.sums[2] / readers,
            log1p(records),
            log1p(nbytes),
            denied_n / reads if reads > 0 else 0.0,
            float(SENSITIVITIES.index(event.sensitivity)),
            breadth_of["readers_1h"],
            breadth_of["outside_readers_1h"],
            breadth_of["reader_groups_1h"],
        ]
        return View(
            "broad_audience",
            event.resource,
            event,
            vector,
            metrics,
            own,
            peer,
            own_mature,
            breadth,
            breadth_metric,
            state,
        )
