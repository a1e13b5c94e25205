"""Feature vectors for both alert kinds, computed from per-entity state.

``FeatureBuilder.view`` turns (event, state) into a ``View``: the feature vector the
IsolationForest scores, plus the breadth figures the alert policy needs to explain itself.
The steps are the same for both sides (``models.sides``); what a side's windows keep
per key, its window metrics and its features are one small function each below.
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
from reachwatch.models.sides import (
    PRINCIPAL,
    RESOURCE,
    UNKNOWN_GROUP,
    Counts,
    PrincipalAttrs,
    ResourceAttrs,
    Side,
)
from reachwatch.models.windows import (
    DAY,
    HOUR,
    DecayedHistogram,
    EntityState,
    idle_horizon,
    is_idle,
)

SENSITIVE = frozenset({"confidential", "restricted"})


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

    def smoothing(self, side: Side) -> float:
        """The pseudo-count of ``side``'s ratios (one field per side, named for it)."""
        return float(getattr(self, f"{side.name}_smoothing"))

    def idle(self, watermark: float, now: float) -> bool:
        """Whether an entity last read at ``watermark`` is forgotten at ``now``."""
        return is_idle(watermark, now, self.idle_ttl_days)

    def idle_horizon(self, now: float) -> float:
        """Entities last read before this are idle at ``now`` (``windows.idle_horizon``)."""
        return idle_horizon(now, self.idle_ttl_days)

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


def resource_key(resource: str) -> int:
    """A stable 64-bit key for a resource id (peer profiles store keys, not names)."""
    return int.from_bytes(blake2b(resource.encode("utf-8"), digest_size=8).digest(), "little")


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

    side: Side
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

    @property
    def kind(self) -> str:
        return self.side.kind


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


def outside(event: AccessEvent) -> float:
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


@dataclass(slots=True)
class Read:
    """What the shared steps of ``FeatureBuilder.view`` know about one read."""

    event: AccessEvent
    state: EntityState
    group: str  # the entity's peer group
    fallback: str  # the peer group used where ``group`` has no profile
    seen: bool  # the counterpart is in the entity's novelty memory
    own_mature: bool  # the entity's own baselines count
    hour_rarity: float = 0.0


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
        # What differs per side in measuring a read: the attributes its windows keep per
        # key, its window metrics, its features (the rest of ``view`` is shared).
        self._measures = {
            PRINCIPAL: (self._principal_attrs, _principal_metrics, _principal_features),
            RESOURCE: (self._resource_attrs, _resource_metrics, _resource_features),
        }
        self._smoothing = {side: config.smoothing(side) for side in self._measures}

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

    def new_state(self, side: Side) -> EntityState:
        c = self.config
        return EntityState(side, c.spans, c.window_cap, c.memory_cap)

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

    def view(self, event: AccessEvent, state: EntityState) -> View | None:
        """Add ``event`` to ``state`` (its side's entity) and return the read's view; None
        when the read is later than the allowed lateness (and nothing changed)."""
        side = state.side
        group, fallback = side.peers(event)
        if self._advance(state, event.ts, group) is None:
            return None
        cfg = self.config
        attrs_of, metrics_of, features_of = self._measures[side]
        ts = event.ts
        counterpart = side.counterpart(event)
        read = Read(
            event,
            state,
            group,
            fallback,
            seen=state.memory.check_and_add(counterpart, int(ts // DAY)),
            own_mature=state.finished_hours >= cfg.min_own_hours,
        )
        attrs = attrs_of(read)
        category = side.category(event)
        for window in state.windows:
            window.add(ts, counterpart, category, attrs)
        counts = Counts(
            reads=1.0,
            records=float(event.records or 0),
            bytes=float(event.bytes or 0),
            denied=1.0 if event.outcome == "denied" else 0.0,
        )
        state.counts.add(ts, counts)
        state.events += 1
        state.remember([ts, *side.sample_of(event)])

        metrics = metrics_of(read)
        totals = Counts._make(state.counts.sums)
        metrics["reads_1h"] = totals.reads
        metrics["records_1h"] = totals.records
        metrics["bytes_1h"] = totals.bytes
        metrics["denied_1h"] = totals.denied
        state.track(metrics)
        own, peer, breadth_of = self._compare(
            metrics,
            state,
            self._peer_baselines(group, fallback, side.breadth_metrics),
            self._smoothing[side],
        )
        breadth_metric = max(breadth_of, key=breadth_of.__getitem__)
        values = features_of(read, metrics, breadth_of)
        return View(
            side,
            side.entity(event),
            event,
            [values[name] for name in side.features],
            metrics,
            own,
            peer,
            read.own_mature,
            breadth_of[breadth_metric],
            breadth_metric,
            state,
        )

    # -- what a principal's windows keep per resource ---------------------------------
    def _principal_attrs(self, read: Read) -> PrincipalAttrs:
        event, state, group, profiles = read.event, read.state, read.group, self.profiles
        key = resource_key(event.resource)
        peer_known = profiles.knows(group, key) or profiles.knows(read.fallback, key)
        new_peer = 0.0 if peer_known or not profiles.resources else 1.0
        # Cold start: a newcomer has seen nothing, so "new to me" would flag every read;
        # until its own history matures it inherits its peers' novelty instead.
        new_own = (0.0 if read.seen else 1.0) if read.own_mature else new_peer
        weight = self.weights.get(event.sensitivity, 1.0)
        sensitive = event.sensitivity in SENSITIVE
        out = outside(event)
        ts = event.ts
        read.hour_rarity = _hour_rarity(
            state, profiles.hours.get(group), self._peer_peak(group), ts
        )
        _note_hour(state, ts)
        if self.collector is not None:
            self.collector.add_read(group, key, ts)
        return PrincipalAttrs(
            weight=weight,
            sensitive=1.0 if sensitive else 0.0,
            outside=out,
            outside_weight=out * weight,
            new_own=new_own,
            new_peer=new_peer,
            restricted=1.0 if event.sensitivity == "restricted" else 0.0,
            outside_new_sensitive=out * new_own if sensitive else 0.0,
        )

    # -- what a resource's windows keep per reader ------------------------------------
    def _resource_attrs(self, read: Read) -> ResourceAttrs:
        event = read.event
        return ResourceAttrs(
            outside=outside(event),
            first_time=0.0 if read.seen else 1.0,
            service=1.0 if event.principal_type == "service" else 0.0,
        )


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _principal_metrics(read: Read) -> dict[str, float]:
    w15, w1h, w24 = read.state.windows
    a1h, a24 = PrincipalAttrs._make(w1h.sums), PrincipalAttrs._make(w24.sums)
    own_group = read.event.principal_group
    return {
        "weighted_1h": a1h.weight,
        "outside_weighted_1h": a1h.outside_weight,
        "groups_1h": float(w1h.distinct_categories),
        "outside_weighted_24h": a24.outside_weight,
        "distinct_1h": float(w1h.distinct),
        "distinct_15m": float(w15.distinct),
        "sensitive_1h": a1h.sensitive,
        "outside_1h": a1h.outside,
        "outside_groups_1h": float(_outside_groups(w1h.categories, own_group)),
        "distinct_24h": float(w24.distinct),
        "outside_24h": a24.outside,
        "sensitive_24h": a24.sensitive,
        "restricted_1h": a1h.restricted,
        "restricted_24h": a24.restricted,
        "outside_groups_24h": float(_outside_groups(w24.categories, own_group)),
        "new_own_1h": a1h.new_own,
        "new_peer_24h": a24.new_peer,
        "outside_new_sensitive_24h": a24.outside_new_sensitive,
    }


def _principal_features(
    read: Read, m: dict[str, float], breadth: dict[str, float]
) -> dict[str, float]:
    log1p = math.log1p
    return {
        "distinct_1h": log1p(m["distinct_1h"]),
        "groups_1h": log1p(m["groups_1h"]),
        "weighted_1h": log1p(m["weighted_1h"]),
        "outside_share_1h": m["outside_1h"] / max(1.0, m["distinct_1h"]),
        "outside_weighted_24h": log1p(m["outside_weighted_24h"]),
        "new_own_1h": log1p(m["new_own_1h"]),
        "new_peer_24h": log1p(m["new_peer_24h"]),
        "outside_new_sensitive_24h": log1p(m["outside_new_sensitive_24h"]),
        "records_1h": log1p(m["records_1h"]),
        "bytes_1h": log1p(m["bytes_1h"]),
        "denied_ratio_1h": _ratio(m["denied_1h"], m["reads_1h"]),
        "hour_rarity": read.hour_rarity,
        "breadth_weighted_1h": breadth["weighted_1h"],
        "breadth_outside_1h": breadth["outside_weighted_1h"],
        "breadth_outside_24h": breadth["outside_weighted_24h"],
    }


def _resource_metrics(read: Read) -> dict[str, float]:
    w15, w1h, w24 = read.state.windows
    a1h = ResourceAttrs._make(w1h.sums)
    return {
        "readers_1h": float(w1h.distinct),
        "outside_readers_1h": a1h.outside,
        "reader_groups_1h": float(w1h.distinct_categories),
        "readers_24h": float(w24.distinct),
        "first_time_1h": a1h.first_time,
        "readers_15m": float(w15.distinct),
        "service_1h": a1h.service,
    }


def _resource_features(
    read: Read, m: dict[str, float], breadth: dict[str, float]
) -> dict[str, float]:
    readers = max(1.0, m["readers_1h"])
    log1p = math.log1p
    return {
        "readers_15m": log1p(m["readers_15m"]),
        "readers_1h": log1p(m["readers_1h"]),
        "reader_groups_1h": log1p(m["reader_groups_1h"]),
        "outside_readers_1h": log1p(m["outside_readers_1h"]),
        "first_time_1h": log1p(m["first_time_1h"]),
        "outside_share_1h": m["outside_readers_1h"] / readers,
        "service_share_1h": m["service_1h"] / readers,
        "records_1h": log1p(m["records_1h"]),
        "bytes_1h": log1p(m["bytes_1h"]),
        "denied_ratio_1h": _ratio(m["denied_1h"], m["reads_1h"]),
        "sensitivity": float(SENSITIVITIES.index(read.event.sensitivity)),
        "breadth_readers_1h": breadth["readers_1h"],
        "breadth_outside_1h": breadth["outside_readers_1h"],
        "breadth_groups_1h": breadth["reader_groups_1h"],
    }
