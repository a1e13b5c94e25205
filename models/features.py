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

import numpy as np

from reachwatch.models.grants import GrantLog
from reachwatch.models.records import SENSITIVITIES, AccessEvent
from reachwatch.models.sides import (
    PRINCIPAL,
    RESOURCE,
    UNKNOWN_GROUP,
    Counts,
    PrincipalAttrs,
    ResourceAttrs,
    Side,
    own_history_only,
)
from reachwatch.models.windows import (
    DAY,
    HOUR,
    DecayedHistogram,
    DistinctWindow,
    EntityState,
    idle_horizon,
    is_idle,
)

SENSITIVE = frozenset({"confidential", "restricted"})
# Small-count metrics whose per-hour rate the peer profiles keep (``rate:<metric>``).
RATE_METRICS = frozenset(RESOURCE.surprise_metrics) | frozenset(PRINCIPAL.surprise_metrics)
# Small counts judged by the plain Poisson tail, not "beyond a pair": whole-table reads
# larger than the reader's usual hour are rare enough in ordinary work (a few per hundred
# person-days on the tuning companies) that a second one in a day is evidence, where first
# reads of unrelated readers or data are not.
PLAIN_TAIL = frozenset({"heavy_24h"})
# Scan metrics (``FeatureBuilder._scan``) and the hourly small-count twin whose rate they
# scale to stretches of the day.
SCANS = {"outside_first_teams_scan": "outside_first_teams_1h"}
# Clustered small-count metrics (``FeatureBuilder._clustered``): readers counted one by one,
# their teams as the Poisson arrivals, each team bringing a geometric number of them. The
# value is (the count of, the arrival metric whose rate is the teams').
CLUSTERED = {"outside_first_readers_1h": ("outside_first_1h", "outside_first_teams_1h")}
# Small-count metrics counted since the last grant on the dataset (``FeatureBuilder._granted``)
# and the hourly twin whose rate they scale to the time since it.
GRANTED = {"outside_first_teams_granted": "outside_first_teams_1h"}
# The profiles' row of the history's grant rate (``PeerProfiles.grants_per_day``).
GRANTS_GROUP = "grants"
# Profile key of a class's mean cluster size (first-time outside readers per team arrival).
CLUSTER_KEY = "cluster:outside_first_teams_1h"


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
    # A group's usual high is this quantile, across its members, of each member's own
    # usual high (robust: one broad member cannot raise it).
    peer_member_quantile: float = 0.75
    # Periods with an open alert stay out of the entity's baselines for at most this long
    # after the alert opened (``windows.EntityState``).
    alert_skip_days: float = 2.0
    # The longest stretch of the day the exposure scan judges (``FeatureBuilder._scan``):
    # an exposure is one event (a link goes round, a share is opened up), and its readers
    # arrive within hours of it; over a whole day the first reads of unrelated readers,
    # each opening many datasets once, add up on every dataset they touch.
    scan_span: float = 6 * HOUR
    # The least surprise (``-ln P(X >= k | X >= 2)``) that is one: the exposure scan's
    # below it is none, and a principal's surprise gate is at least this where training
    # never saw a burst (``training.fit_side``). Gates are quantiles of training breadth;
    # where training saw no burst they fell to the breadth floor (ln 2.5), which for a
    # tail probability means "rarer than 40 %": an on-call engineer who opens a few
    # teams' new data every week reaching three teams in a night (a 1-in-10 night) was
    # an alert. ln 20 asks for 1 in 20 at least.
    min_surprise: float = math.log(20.0)
    # The data the exposure scan judges: data with a named audience, never shared in
    # bulk with a partner team (a kick-off shares internal and confidential data), and
    # whose first-time outside readers are evidence even hours apart.
    scan_sensitivities: tuple[str, ...] = ("restricted",)
    # A heavy read takes the table whole: at least this share of the most records any
    # read of the dataset returned in training (``PeerProfiles.largest``). A query larger
    # than the reader's usual hour is an ordinary heavy-tailed day; the whole table is an
    # export.
    whole_share: float = 0.95
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
            "peer_member_quantile": self.peer_member_quantile,
            "alert_skip_days": self.alert_skip_days,
            "scan_span": self.scan_span,
            "scan_sensitivities": list(self.scan_sensitivities),
            "whole_share": self.whole_share,
            "min_surprise": self.min_surprise,
            "idle_ttl_days": self.idle_ttl_days,
            "window_cap": self.window_cap,
            "memory_cap": self.memory_cap,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> DetectionConfig:
        obj = dict(obj)
        obj["spans"] = tuple(obj["spans"])
        if "scan_sensitivities" in obj:
            obj["scan_sensitivities"] = tuple(obj["scan_sensitivities"])
        return cls(**obj)


def resource_key(resource: str) -> int:
    """A stable 64-bit key for a resource id (peer profiles store keys, not names)."""
    return int.from_bytes(blake2b(resource.encode("utf-8"), digest_size=8).digest(), "little")


def hour_of_week(ts: float) -> int:
    """0 = Monday 00:00-01:00 UTC (1970-01-01 was a Thursday)."""
    return (int(ts // HOUR) + 72) % 168


def member_key(principal: str) -> int:
    """A stable nonzero 64-bit key for a principal (peer profiles store keys, not names)."""
    return resource_key(principal) or 1


# ``GroupReaders``: a resource two or more members of the group read.
MANY = 0


@dataclass
class GroupReaders:
    """Who of a peer group read each resource in the training history: the one member's
    key (``member_key``), or ``MANY``.

    "New to its peers" is what the slow-collection surprise counts, and it must mean the
    same in training as in serving. Judged against the keys of the whole history, no
    training read was new to its peers (the history defines the keys): the class rate and
    the gate were calibrated on zeros. Judged in time order, the group's first days are
    full of data still new to it, so the gate was calibrated on the group's learning
    curve. Left out, a reader's own reads never make data familiar to "its peers": a
    dataset is new to the peers of a member when no *other* member read it anywhere in
    the history. That has no learning curve and is not zero by construction: the member
    who alone reads a division's data on on-call nights is counted, in training as when
    serving replays the history, so the group's rate of it is measured.
    """

    readers: dict[int, int] = field(default_factory=dict)
    members: set[int] = field(default_factory=set)
    # People are peers of one another; a team's service accounts are not: each runs its
    # own job over its own pool (an ETL, a nightly backup that reads everything, a weekly
    # crawler), so another job's reads say nothing about this one's, and left out, a
    # backup's or crawler's every sweep would be "new to its peers" and set the gate of
    # everyone's slow-collection surprise. A service's own history stands for its peers.
    leave_out: bool = True

    def add(self, key: int, member: int) -> None:
        self.members.add(member)
        who = self.readers.get(key)
        if who is None:
            self.readers[key] = member
        elif who != member:
            self.readers[key] = MANY

    def known_to_others(self, key: int, member: int) -> bool:
        who = self.readers.get(key)
        if not self.leave_out or len(self.members) < 2:  # no peers to leave it out of
            return who is not None
        return who is not None and who != member

    def sole(self) -> dict[int, int]:
        """The resources exactly one member read, with that member's key (none where no
        member is left out: a group of one has no peers to leave it out of)."""
        if not self.leave_out or len(self.members) < 2:
            return {}
        return {key: who for key, who in self.readers.items() if who != MANY}


def largest_reads(events: Sequence[AccessEvent]) -> dict[int, float]:
    """The most records one allowed read of each resource returned (``PeerProfiles.largest``)."""
    out: dict[int, float] = {}
    keys: dict[str, int] = {}
    for event in events:
        if event.records is None or event.outcome == "denied":
            continue
        key = keys.get(event.resource)
        if key is None:
            key = keys[event.resource] = resource_key(event.resource)
        if event.records > out.get(key, -1.0):
            out[key] = float(event.records)
    return out


def group_readers(events: Sequence[AccessEvent]) -> dict[str, GroupReaders]:
    """``GroupReaders`` of every principal peer group over a history."""
    out: dict[str, GroupReaders] = {}
    members: dict[str, int] = {}
    resources: dict[str, int] = {}
    for event in events:
        group = PRINCIPAL.peers(event)[0]
        readers = out.get(group)
        if readers is None:
            readers = out[group] = GroupReaders(leave_out=not own_history_only(event))
        member = members.get(event.principal)
        if member is None:
            member = members[event.principal] = member_key(event.principal)
        key = resources.get(event.resource)
        if key is None:
            key = resources[event.resource] = resource_key(event.resource)
        readers.add(key, member)
    return out


@dataclass
class PeerProfiles:
    """What peers usually do, learnt at training time and shipped with the model.

    ``baselines[group][metric]`` is the ``baseline_quantile`` of the group's member-hour
    (or member-day) maxima; ``resources[group]`` the keys of resources any member read,
    ``sole[group]`` those only one member read (with that member's key, so the member is
    left out of its own peers: ``GroupReaders``); ``hours[group]`` the group's
    hour-of-week activity; ``largest[key]`` the most records one allowed read of a
    resource returned (its table's size, as far as the history shows it). Resource "peers"
    are datasets of the same sensitivity: ``baselines["sensitivity:restricted"]`` and so on.
    """

    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    resources: dict[str, frozenset[int]] = field(default_factory=dict)
    hours: dict[str, list[float]] = field(default_factory=dict)
    sole: dict[str, dict[int, int]] = field(default_factory=dict)
    largest: dict[int, float] = field(default_factory=dict)
    # ``reach[group]``: the teams whose confidential or restricted data people of
    # ``group`` read in training (other than their own): how far the group's work takes
    # it. Only people: a team's service accounts each run their own job (``GroupReaders``).
    reach: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def grants_per_day(self) -> float:
        """Allowed grant events a day in the training history (``FeatureBuilder._granted``)."""
        return self.baselines.get(GRANTS_GROUP, {}).get("per_day", 0.0)

    def baseline(self, group: str, fallback: str, metric: str) -> float:
        row = self.baselines.get(group) or self.baselines.get(fallback) or {}
        return row.get(metric, 0.0)

    def knows(self, group: str, key: int, member: int | None = None) -> bool:
        """Whether a member of ``group`` other than ``member`` read ``key`` in training."""
        keys = self.resources.get(group)
        if keys is None or key not in keys:
            return False
        only = self.sole.get(group)
        return member is None or only is None or only.get(key, MANY) != member

    @classmethod
    def union(cls, parts: Sequence[PeerProfiles]) -> PeerProfiles:
        """Profiles of disjoint peer groups (e.g. each side's, built apart) as one."""
        merged = cls()
        for part in parts:
            merged.baselines.update(part.baselines)
            merged.resources.update(part.resources)
            merged.hours.update(part.hours)
            merged.sole.update(part.sole)
            merged.largest.update(part.largest)
            merged.reach.update(part.reach)
        return merged


class ProfileBuilder:
    """Collects the peer profiles during a first pass over training history.

    A group's baseline of a metric is the ``member_quantile`` (upper quartile), across the
    group's members, of each member's own ``quantile`` (p99) of its hourly/daily maxima:
    what a *typical* member's usual high is. Pooling member-hours instead would let one
    nightly backup job that reads everything set the whole team's "usual". A group's
    ``rate:<metric>`` is the mean per member-hour of a small-count metric, leaving out
    each member's first day (when every reader is a first-time reader). Novelty to the
    group leaves the reader out (``GroupReaders``, from ``readers``: the whole history's,
    collected before the pass), so the rates of "new to the peers" metrics are measured
    as serving will see them, not zero by construction.
    """

    def __init__(
        self,
        quantile: float,
        member_quantile: float = 0.75,
        readers: dict[str, GroupReaders] | None = None,
        largest: dict[int, float] | None = None,
    ) -> None:
        self.quantile = quantile
        self.largest = largest or {}
        self.member_quantile = member_quantile
        self.readers = readers or {}
        # group -> metric -> member -> histogram of that member's maxima
        self.samples: dict[str, dict[str, dict[int, DecayedHistogram]]] = {}
        # group -> metric -> [sum, member-hours] (after each member's first day)
        self.rates: dict[str, dict[str, list[float]]] = {}
        self.seen_hours: dict[int, int] = {}
        # group -> [first-time outside readers, team arrivals] (``FeatureBuilder._clustered``)
        self.clusters: dict[str, list[float]] = {}
        self.resources: dict[str, set[int]] = {}
        self.hours: dict[str, list[float]] = {}

    def add_samples(
        self, group: str, samples: list[tuple[str, float]], member: int = 0
    ) -> None:
        row = self.samples.setdefault(group, {})
        hours = self.seen_hours.get(member, 0)
        self.seen_hours[member] = hours + 1
        for metric, value in samples:
            members = row.setdefault(metric, {})
            hist = members.get(member)
            if hist is None:
                hist = members[member] = DecayedHistogram(half_life_days=1e9)
            hist.add(value, 0)
            if metric in RATE_METRICS and hours >= 24:
                acc = self.rates.setdefault(group, {}).setdefault(metric, [0.0, 0.0])
                acc[0] += value
                acc[1] += 1.0

    def add_cluster(self, group: str, readers: float, arrivals: float) -> None:
        """A read of the group's data: ``readers`` 1 for a first-time outside reader,
        ``arrivals`` 1 when its team had no first-time outside reader in the hour before."""
        acc = self.clusters.setdefault(group, [0.0, 0.0])
        acc[0] += readers
        acc[1] += arrivals

    def knows(self, group: str, key: int, member: int, unseen: bool = True) -> bool:
        """Whether a member of ``group`` other than ``member`` read ``key`` in the
        history; ``unseen`` answers for a group whose readers were not collected."""
        readers = self.readers.get(group)
        return unseen if readers is None else readers.known_to_others(key, member)

    def add_read(self, group: str, key: int, ts: float) -> None:
        self.resources.setdefault(group, set()).add(key)
        hours = self.hours.get(group)
        if hours is None:
            hours = self.hours[group] = [0.0] * 168
        hours[hour_of_week(ts)] += 1.0

    def _typical(self, members: dict[int, DecayedHistogram]) -> float:
        highs = sorted(h.quantile(self.quantile) for h in members.values())
        return float(np.quantile(highs, self.member_quantile)) if highs else 0.0

    def build(self) -> PeerProfiles:
        baselines: dict[str, dict[str, float]] = {}
        for group, row in self.samples.items():
            baselines[group] = {m: self._typical(members) for m, members in row.items()}
            for metric, (total, n) in self.rates.get(group, {}).items():
                baselines[group][f"rate:{metric}"] = total / n if n else 0.0
        for group, (readers, arrivals) in self.clusters.items():
            # Readers per team arrival, with one arrival of two readers as the prior: a
            # class with next to no history expects pairs, not lone readers.
            baselines.setdefault(group, {})[CLUSTER_KEY] = (readers + 2.0) / (arrivals + 1.0)
        return PeerProfiles(
            baselines=baselines,
            resources={g: frozenset(keys) for g, keys in self.resources.items()},
            hours={g: list(h) for g, h in self.hours.items()},
            sole={g: r.sole() for g, r in self.readers.items() if g in self.resources},
            largest=dict(self.largest),
        )


def poisson_log_tail(k: float, lam: float) -> float:
    """ln P(X >= k) for X ~ Poisson(lam), accurate far into the tail.

    >>> round(math.exp(poisson_log_tail(3, 0.01)) * 1e7, 3)  # ~ 0.01**3 / 3!
    1.654
    """
    k = math.ceil(k)
    if k <= 0:
        return 0.0
    lam = max(lam, 1e-12)
    if lam >= k:  # not a tail event: the complement is accurate
        cdf = sum(math.exp(-lam + i * math.log(lam) - math.lgamma(i + 1)) for i in range(k))
        return math.log(max(1.0 - cdf, 1e-300))
    # Terms fall at least by lam/(k+i) each: a few dozen cover the tail's mass.
    logs = [-lam + i * math.log(lam) - math.lgamma(i + 1) for i in range(k, k + 40)]
    top = logs[0]
    return top + math.log(sum(math.exp(v - top) for v in logs))


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


def clustered_log_tail(n: float, lam: float, mean_size: float) -> float:
    """ln P(N >= n) for N the total of Poisson(lam) clusters of geometric sizes (on 1, 2, ...)
    with mean ``mean_size`` (the Polya-Aeppli distribution); plain Poisson at size 1.

    k clusters total at least n exactly when fewer than k of the first n - 1 Bernoulli(p)
    trials succeed (p = 1 / mean_size), so
    P(N >= n) = sum_{k<n} P(K = k) P(Bin(n - 1, p) <= k - 1) + P(K >= n).

    >>> round(math.exp(clustered_log_tail(3, 0.01, 1.0)) * 1e7, 3)  # Poisson
    1.654
    >>> clustered_log_tail(8, 0.02, 1.5) > clustered_log_tail(8, 0.02, 1.0)  # clusters
    True
    """
    n = math.ceil(n)
    if n <= 0:
        return 0.0
    lam = max(lam, 1e-12)
    p = 1.0 / max(mean_size, 1.0)
    if p >= 1.0 - 1e-12 or n == 1:
        return poisson_log_tail(n, lam)
    trials = n - 1
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(trials + 1)
    terms = [poisson_log_tail(n, lam)]
    cdf: list[float] = []  # ln P(Bin(trials, p) <= j)
    for j in range(trials):
        pmf = base - math.lgamma(j + 1) - math.lgamma(trials - j + 1) + j * log_p + (
            trials - j) * log_q
        cdf.append(pmf if not cdf else _logsumexp((cdf[-1], pmf)))
    for k in range(1, n):
        terms.append(-lam + k * math.log(lam) - math.lgamma(k + 1) + cdf[k - 1])
    return min(0.0, _logsumexp(terms))


def _tail_surprise(count: float, expected: float, least: float, given: float = 2.0) -> float:
    """``-ln P(X >= count | X >= given)`` for X ~ Poisson(expected), or 0 below ``least``
    (``given`` 0: the plain tail)."""
    surprise = poisson_log_tail(given, expected) - poisson_log_tail(count, expected)
    return surprise if surprise >= least else 0.0


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
    # Every breadth and surprise metric's breadth (``side.gated_metrics`` order is the
    # detector's): each has a gate of its own (``detector.BreadthDetector.gate``).
    breadths: dict[str, float] = field(default_factory=dict)
    # The teams the entity's peer group reads sensitive data of (``PeerProfiles.reach``).
    reach: frozenset[str] = frozenset()
    # (sensitivity involved, within the peers' reach) as of this read, for a read that
    # may alert (``alerts.involvement``): taken when the read is applied, so an alert's
    # level does not depend on the reads after it in the same batch.
    involved: tuple[str, bool] | None = None

    @property
    def kind(self) -> str:
        return self.side.kind


_NO_REACH: frozenset[str] = frozenset()


def peer_reach(events: Sequence[AccessEvent]) -> dict[str, frozenset[str]]:
    """``PeerProfiles.reach`` of a history: per group of people, the other teams whose
    confidential or restricted data its members were allowed to read."""
    reach: dict[str, set[str]] = {}
    for event in events:
        if (
            own_history_only(event)
            or event.sensitivity not in SENSITIVE
            or event.outcome == "denied"
            or event.resource_group is None
            or event.resource_group == event.principal_group
        ):
            continue
        reach.setdefault(PRINCIPAL.peers(event)[0], set()).add(event.resource_group)
    return {group: frozenset(teams) for group, teams in reach.items()}


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


def _seen(state: EntityState, key: str, day: int, denied: bool) -> bool:
    """Whether ``key`` is in the entity's novelty memory; an allowed read records it. A
    refused read is not a read: the principal has still never seen the data, and its
    first allowed read is still a first-time read."""
    memory = state.memory
    if not denied:
        return memory.check_and_add(key, day)
    last = memory.seen.get(key)
    return last is not None and day - last <= memory.horizon_days


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
        grants: GrantLog | None = None,
    ) -> None:
        self.config = config
        self.profiles = profiles or PeerProfiles()
        self.collector = collector
        # The permission changes filed so far (``models.grants``): what the resource side's
        # reads are judged with since a grant (``_granted``). Whoever feeds the builder in
        # event order files them (``file_grant``); none filed, the metric says nothing.
        self.grants = grants if grants is not None else GrantLog()
        self._grant_tests = math.log(max(1.0, self.profiles.grants_per_day))
        self.weights = config.sensitivity_weights
        self._max_weight = max(self.weights.values())
        self._q = config.baseline_quantile
        # Profiles never change under a builder (a new model gets a new builder): what is
        # derived from them per group is computed once.
        self._peer_rows: dict[tuple[str, str], dict[str, float]] = {}
        self._peer_peaks: dict[str, float] = {}
        self._peer_records: dict[tuple[str, str], float] = {}
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
        return EntityState(side, c.spans, c.window_cap, c.memory_cap, c.alert_skip_days * DAY)

    def _advance(self, state: EntityState, ts: float, peer_key: str) -> float | None:
        """Move the state's clock to ``ts``: finish past hours/days into the baselines,
        expire the windows. None (and nothing changed) when the read is later than allowed.
        """
        if state.events and ts < state.watermark - self.config.allowed_lateness:
            return None
        now = max(state.watermark, ts)
        finished = state.roll_time(now)
        if self.collector is not None and finished:
            self.collector.add_samples(state.last_group or peer_key, finished, id(state))
        state.last_group = peer_key
        state.watermark = now
        for window in state.windows:
            window.expire(now)
        state.counts.expire(now)
        return now

    def _surprise(
        self,
        side: Side,
        metric: str,
        count: float,
        state: EntityState,
        group: str,
        fallback: str,
        sensitivity: str,
    ) -> tuple[float, float, float]:
        """(expected count, class rate, breadth) of a small-count metric.

        The expected count per hour is the larger of the entity's own mean hour (the
        Poisson rate's estimate: the median of counts that are mostly zero is zero, and
        called a dataset that draws a few new outside teams every week as quiet as one
        that never does) and its class's rate (``rate:<metric>``), and never below one
        such event in the entity's history (``1 / (1 + finished hours)``: what has never
        happened is rare, not impossible). Breadth is the Poisson surprise of the burst
        beyond a pair,
        ``-ln P(X >= count | X >= 2)``: across many datasets and hours a first outside
        reader, even a pair of them in one hour, is no rarity (measured on the tuning
        companies and the tiny organisation), so a pair is not evidence, the rest of the
        burst is. It is scaled by the data's
        sensitivity weight relative to the most sensitive: three first-time outside
        readers are alarming on restricted data and ordinary on internal data.
        """
        own_value, own_weight = state.baseline(metric, None)  # the own mean
        class_rate = self.profiles.baseline(group, fallback, f"rate:{metric}")
        floor = 1.0 / (1.0 + own_weight)
        cfg = self.config
        needed = cfg.min_own_days if metric.endswith("24h") else cfg.min_own_hours
        expected = max(own_value if own_weight >= needed else 0.0, class_rate, floor)
        given = 0.0 if metric in PLAIN_TAIL else 2.0
        if count <= max(expected, given, 1.0):
            return expected, class_rate, 0.0
        weight = (self.weights.get(sensitivity, 1.0) / self._max_weight
                  if side.surprise_by_sensitivity else 1.0)
        surprise = _tail_surprise(count, expected, 0.0, given)
        return expected, class_rate, surprise * weight

    def _scan(
        self, read: Read, metric: str, metrics: dict[str, float], rate: float, class_rate: float
    ) -> float:
        """The Poisson scan statistic of first-time outside readers over the last hours.

        An exposure that builds over hours (a link that goes round slowly, a night) brings
        one or two new outside teams an hour, and in a company of five teams there are only
        four to bring: no hour holds the burst, though a few hours
        hold far more than the dataset's rate allows. For every stretch of the 24 h window
        that ends now and starts at one of those arrivals (at least an hour long: shorter
        ones are the hourly surprise's; at most ``scan_span``), its arrivals, counted by
        team as the hourly count does, are judged against their expectation, the hourly
        rate times the stretch's length, with the same "beyond a pair" Poisson
        surprise and sensitivity weight as the hourly count; the largest wins, less the
        log of the number of stretches scanned (the union bound: the price of choosing
        the stretch after seeing the arrivals). Longer stretches expect proportionally
        more, so a dataset that draws a new team every few hours is not exposed. Only
        ``scan_sensitivities`` are scanned. Sets the metric (teams), its
        stretch in hours and its expectation in ``metrics``.
        """
        metrics[metric] = metrics[f"{metric}_hours"] = metrics[f"{metric}_expected"] = 0.0
        window = read.state.windows[2]
        if (
            read.event.sensitivity not in self.config.scan_sensitivities
            or window.sums[_OUTSIDE_FIRST] < 3.0
        ):
            return 0.0
        now = read.event.ts
        teams: set[str] = set()
        best = 0.0
        oldest = now - self.config.scan_span
        stretches = 0
        for ts, category in _arrivals(window, _OUTSIDE_FIRST):
            if ts < oldest:
                break
            stretches += 1
            teams.add(category)
            count = float(len(teams))
            hours = max(1.0, (now - ts) / HOUR)
            expected = rate * hours
            if count <= max(expected, 2.0):
                continue
            surprise = _tail_surprise(count, expected, 0.0)
            if surprise > best:
                best = surprise
                metrics[metric], metrics[f"{metric}_hours"] = count, hours
                metrics[f"{metric}_expected"] = expected
        # The largest of ``stretches`` surprises: by the union bound its tail is at most
        # ``stretches`` times the one stretch's, so ln(stretches) of it is the scan's own.
        best -= math.log(max(stretches, 1))
        if best < self.config.min_surprise:
            return 0.0
        return best * self.weights.get(read.event.sensitivity, 1.0) / self._max_weight

    def file_grant(self, event: AccessEvent) -> None:
        """Remember a grant event (``models.grants``) for the reads that come after it."""
        self.grants.add_events((event,))

    def _granted(self, read: Read, metric: str, metrics: dict[str, float], rate: float) -> float:
        """The Poisson surprise of first-time outside teams since the last grant on the data.

        Without a grant the hourly count and the scan must find an exposure's start in the
        reads themselves, so they judge the burst beyond a pair and pay for the stretches
        they choose: a slow exposure waits for its third outside team. A logged grant on
        the dataset (or a scope holding it: its bucket, site or folder) fixes the start
        from outside the reads, so the first-time outside teams since it, counted as the
        hourly count does, are judged against the rate times the time since it (at least
        an hour), beyond one team (``-ln P(X >= k | X >= 1)``): every grant is made for
        somebody, whose team is expected, a company-wide link sent to one colleague as
        much as a share with a partner team. People only: indexers, scanners and backups
        read what a permission change newly lets them see as a matter of course, so a
        service account's first read after a grant says nothing of the audience. The
        grants of a day are as many tests, so the log of the history's grants per day
        (``PeerProfiles.grants_per_day``, at least 1) is taken off, as the scan takes off
        its stretches. Grants older than the 24 h window say nothing; confidential and
        restricted data only, scaled by sensitivity like the hourly count, and nothing
        below ``min_surprise``. Sets the metric (teams), the hours since the grant and the
        expectation in ``metrics``.
        """
        metrics[metric] = metrics[f"{metric}_hours"] = metrics[f"{metric}_expected"] = 0.0
        window = read.state.windows[2]
        event = read.event
        if (
            event.sensitivity not in SENSITIVE
            or window.sums[_OUTSIDE_FIRST] < 2.0
            or not self.grants.scopes
        ):
            return 0.0
        now = event.ts
        grant = self.grants.latest_before(event.resource, now)
        if grant is None or now - grant.ts > window.span:
            return 0.0
        teams = {team for ts, team in _arrivals(window, _OUTSIDE_FIRST, people=True)
                 if ts >= grant.ts}
        count = float(len(teams))
        hours = max(1.0, (now - grant.ts) / HOUR)
        expected = rate * hours
        metrics[metric], metrics[f"{metric}_hours"] = count, (now - grant.ts) / HOUR
        metrics[f"{metric}_expected"] = expected
        if count <= 1.0:
            return 0.0
        surprise = _tail_surprise(count, expected, 0.0, 1.0) - self._grant_tests
        if surprise < self.config.min_surprise:
            return 0.0
        return surprise * self.weights.get(event.sensitivity, 1.0) / self._max_weight

    def _clustered(
        self, read: Read, metric: str, metrics: dict[str, float], rate: float
    ) -> tuple[float, float]:
        """(mean team size, breadth) of first-time outside readers counted one by one.

        Teams are the arrivals (``_first_outside_teams``): readers of one team come
        together. Counting only teams caps the evidence at the number of other teams,
        four in a company of five, where a link going round two teams brings eight
        first-time readers of restricted data in minutes and reads as "two teams, a
        pair". Here the readers are the count, the teams still the Poisson arrivals, at
        the teams' hourly rate (``rate``: the hourly count's expectation), and each team
        brings a geometric number of readers with the mean the training history measured
        for the class (``CLUSTER_KEY``: first-time outside readers per team arrival). A
        class whose teams arrive in crowds (a partner team's kick-off) expects crowds; one
        whose first-time outside readers come one per team does not. The surprise is the
        same "beyond a pair" tail as the hourly count's, only for ``scan_sensitivities``
        (data never shared in bulk with a team), and none below ``min_surprise``.
        """
        count_of, _ = CLUSTERED[metric]
        count = metrics[metric] = metrics[count_of]
        size = self.profiles.baseline(read.group, read.fallback, CLUSTER_KEY)
        if (
            read.event.sensitivity not in self.config.scan_sensitivities
            or size < 1.0  # a model without cluster sizes: the metric says nothing
            or count <= 2.0
        ):
            return size, 0.0
        surprise = clustered_log_tail(2, rate, size) - clustered_log_tail(count, rate, size)
        if surprise < self.config.min_surprise:
            return size, 0.0
        return size, surprise * self.weights.get(read.event.sensitivity, 1.0) / self._max_weight

    def _compare(
        self,
        metrics: dict[str, float],
        state: EntityState,
        peer: dict[str, float],
        smoothing: float,
        own_alone: bool = False,
    ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
        """Own baselines (nan while immature), peer baselines, and per-metric breadth.

        Breadth needs the read to exceed both the own and the peer baseline (log-ratios):
        unusual for the entity *and* for its peers. Past both, it is their geometric mean,
        not the smaller: ten times a member's own high and twice its team's typical member
        is stronger evidence than twice both (a narrow member of a broad team, a stolen
        indexer credential), while a broad member at its own usual high (own excess <= 0)
        stays silent however far above its peers. Without enough own history the entity
        is judged against its peers only; with it, an entity whose peers are no peers
        (``own_alone``: a service account, each running its own job over its own pool, as
        ``GroupReaders`` says) against its own history only: a team's backup job that
        reads everything must not excuse its ETL's stolen credential, and in a group of two
        or three services no quantile across members keeps the broad one out.
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
                own_excess = _excess(metrics[metric], own_value, smoothing)
                if own_alone:
                    breadth[metric] = own_excess
                    continue
                breadth[metric] = (
                    math.sqrt(own_excess * peer_excess)
                    if own_excess > 0.0 and peer_excess > 0.0
                    else min(own_excess, peer_excess)
                )
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
            seen=_seen(state, counterpart, int(ts // DAY), event.outcome == "denied"),
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
            dict(self._peer_baselines(group, fallback, side.breadth_metrics)),
            self._smoothing[side],
            side is PRINCIPAL and own_history_only(event),
        )
        for metric in side.surprise_metrics:
            if metric in CLUSTERED:
                # Its arrivals' hourly count comes first in ``surprise_metrics``.
                arrivals = CLUSTERED[metric][1]
                peer[metric], breadth_of[metric] = self._clustered(
                    read, metric, metrics, own[arrivals]
                )
                own[metric] = own[arrivals]
                continue
            twin = GRANTED.get(metric)
            if twin is not None:
                # Its twin's hourly rate comes first in ``surprise_metrics``.
                breadth_of[metric] = self._granted(read, metric, metrics, own[twin])
                own[metric], peer[metric] = metrics[f"{metric}_expected"], peer[twin]
                continue
            twin = SCANS.get(metric)
            if twin is not None:
                # Its twin's hourly rate comes first in ``surprise_metrics``.
                breadth_of[metric] = self._scan(read, metric, metrics, own[twin], peer[twin])
                own[metric], peer[metric] = metrics[f"{metric}_expected"], peer[twin]
                continue
            expected, peer_rate, breadth_of[metric] = self._surprise(
                side, metric, metrics[metric], state, group, fallback, event.sensitivity
            )
            own[metric], peer[metric] = expected, peer_rate
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
            breadth_of,
            self.profiles.reach.get(group, _NO_REACH),
        )

    # -- what a principal's windows keep per resource ---------------------------------
    def _principal_attrs(self, read: Read) -> PrincipalAttrs:
        event, state, group, profiles = read.event, read.state, read.group, self.profiles
        key = resource_key(event.resource)
        ts = event.ts
        new_peer = 0.0 if self._peer_knows(read, key) else 1.0
        # Cold start: a newcomer has seen nothing, so "new to me" would flag every read;
        # until its own history matures it inherits its peers' novelty instead.
        new_own = (0.0 if read.seen else 1.0) if read.own_mature else new_peer
        if read.own_mature and own_history_only(event):
            # A service's peers are its own history (``GroupReaders``): the team's nightly
            # backup reading everything must not make every dataset "known" to its ETL.
            new_peer = new_own
        weight = self.weights.get(event.sensitivity, 1.0)
        sensitive = event.sensitivity in SENSITIVE
        out = outside(event)
        # A heavy read takes a table whole (``whole_share`` of the most any read of it
        # returned in training; a dataset training never saw counts as whole) and is
        # bigger than the principal's usual whole hour: judged against its own hours once
        # they count, its peers' typical member's until then (and never while neither is
        # known: training's first pass has no peers yet).
        if read.own_mature:
            usual = state.baseline("records_1h", self._q)[0]
        else:
            usual = self._peer_records.get((group, read.fallback))
            if usual is None:
                usual = self._peer_records[(group, read.fallback)] = profiles.baseline(
                    group, read.fallback, "records_1h"
                )
        heavy = (
            1.0
            if event.records is not None
            and event.sensitivity != "public"
            and usual > 0.0
            and event.records > usual
            and event.records >= self.config.whole_share * profiles.largest.get(key, 0.0)
            else 0.0
        )
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
            outside_new_sensitive=out * new_own * new_peer
            if sensitive and event.outcome != "denied"
            else 0.0,
            heavy=heavy,
        )

    def _peer_knows(self, read: Read, key: int) -> bool:
        """Whether the reader's peers (its group, or the fallback group), the reader left
        out, read ``key`` in training (``GroupReaders``)."""
        collector, profiles = self.collector, self.profiles
        member = member_key(read.event.principal)
        if collector is not None:
            return collector.knows(read.group, key, member) or collector.knows(
                read.fallback, key, member, unseen=False
            )
        return (
            not profiles.resources
            or profiles.knows(read.group, key, member)
            or profiles.knows(read.fallback, key, member)
        )

    # -- what a resource's windows keep per reader ------------------------------------
    def _resource_attrs(self, read: Read) -> ResourceAttrs:
        event = read.event
        if self.collector is not None and event.sensitivity in self.config.scan_sensitivities:
            if not read.seen and event.outcome != "denied" and outside(event):
                # A first-time outside reader: a new team arrival unless a first-time
                # outside reader of its team is already in the hour.
                team = RESOURCE.category(event)
                arrived = any(
                    entry[1] == team and entry[2][_OUTSIDE_FIRST]
                    for entry in read.state.windows[1].keys.values()
                )
                self.collector.add_cluster(read.group, 1.0, 0.0 if arrived else 1.0)
            else:
                self.collector.add_cluster(read.group, 0.0, 0.0)  # the class is measured
        return ResourceAttrs(
            outside=outside(event),
            first_time=0.0 if read.seen else 1.0,
            service=1.0 if event.principal_type == "service" else 0.0,
            outside_first=0.0 if read.seen or event.outcome == "denied" else outside(event),
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
        "outside_new_sensitive_teams_24h": _new_sensitive_teams(w24, a24.outside_new_sensitive),
        "heavy_24h": a24.heavy,
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
        "surprise_heavy_24h": breadth["heavy_24h"],
        "surprise_outside_new_sensitive_teams_24h": breadth["outside_new_sensitive_teams_24h"],
    }


_OUTSIDE_FIRST = ResourceAttrs._fields.index("outside_first")
_SERVICE = ResourceAttrs._fields.index("service")


def _first_outside_teams(window: DistinctWindow, readers: float, read: Read) -> float:
    """Distinct teams of the window's first-time outside readers.

    Readers of one team arrive together (a kick-off meeting, a link in the team's
    channel), so they are not independent arrivals; the team is. Counting teams keeps
    the Poisson surprise honest: ten people of one partner team are one event, five
    people of five teams are five. Up to one reader the count is the answer; beyond,
    the window's keys are scanned, only for data that may raise an audience alert (a
    company-wide public page can have thousands of readers an hour).
    """
    if readers <= 1.0 or not RESOURCE.may_alert(read.event):
        return readers
    return _teams_with(window, _OUTSIDE_FIRST)


def _arrivals(
    window: DistinctWindow, index: int, people: bool = False
) -> list[tuple[float, str]]:
    """(arrival, category) of the window's keys whose attribute ``index`` is set, latest
    first (``people``: of readers that are not service accounts). A key's single log
    entry is its first read in the window (moved to its last read only when that first
    read leaves the window)."""
    keys = window.keys
    found = []
    for ts, key in window.log[window.head :]:
        entry = keys.get(key)
        if entry is not None and entry[2][index] and not (people and entry[2][_SERVICE]):
            found.append((ts, entry[1]))
    found.sort(reverse=True)
    return found


def _teams_with(window: DistinctWindow, index: int) -> float:
    """Distinct categories (teams) of the window's keys whose attribute ``index`` is set."""
    return float(len({entry[1] for entry in window.keys.values() if entry[2][index]}))


_OUTSIDE_NEW_SENSITIVE = PrincipalAttrs._fields.index("outside_new_sensitive")


def _new_sensitive_teams(window: DistinctWindow, datasets: float) -> float:
    """Distinct owning teams of the window's sensitive outside datasets that neither the
    principal nor its peers read before.

    The same argument as for first-time readers, from the reader's side: datasets of one
    team are opened together (a project kick-off's shared data, a team's pages linked
    from one place), so they are one arrival; slow-and-low collection takes a few
    datasets of one team after another. Counting datasets made every partner-team member
    of a kick-off look like a collector."""
    if datasets <= 1.0:
        return datasets
    return _teams_with(window, _OUTSIDE_NEW_SENSITIVE)


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
        "outside_first_1h": a1h.outside_first,
        "outside_first_teams_1h": _first_outside_teams(w1h, a1h.outside_first, read),
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
        "surprise_outside_teams_1h": breadth["outside_first_teams_1h"],
    }
