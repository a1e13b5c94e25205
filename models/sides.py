"""The two sides of a read: the principal who reads and the resource that is read.

Every read updates two entities, and each side judges its own entity: a principal reading
unusually *widely* raises ``broad_reader``, a dataset read by an unusually *wide audience*
raises ``broad_audience``. What differs between the two sides is written here, once, as
one ``Side`` per side; the windows, features, training, pipeline, replay and alert policy
take a ``Side`` and never branch on which one it is. A *side* is principal or resource; a
*kind* is only ever an alert kind.

>>> [(side.name, side.kind) for side in SIDES]
[('principal', 'broad_reader'), ('resource', 'broad_audience')]
>>> BY_KIND["broad_audience"] is RESOURCE
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple

from reachwatch.models.records import SENSITIVITIES, AccessEvent

# Category of a window key whose group is unknown.
UNKNOWN_GROUP = "?"


class PrincipalAttrs(NamedTuple):
    """What a principal's windows keep per distinct resource read (summed per window)."""

    weight: float  # the resource's sensitivity weight
    sensitive: float  # 1 when confidential or restricted
    outside: float  # 1 when owned by a team other than the reader's
    outside_weight: float  # outside x weight
    new_own: float  # 1 when new to the principal (its peers' novelty until it matures)
    new_peer: float  # 1 when none of its peers read it before (in training: so far)
    restricted: float  # 1 when restricted
    # outside x new_own x new_peer x allowed, for sensitive resources only: data of
    # other teams that neither the principal nor its peers read (what the group does,
    # an on-call night through the division's data, is excused)
    outside_new_sensitive: float
    # 1 when the read returned more records than the principal's usual *hour* (own p99 of
    # records_1h, its peers' until its own history counts), of non-public data
    heavy: float


class ResourceAttrs(NamedTuple):
    """What a resource's windows keep per distinct reader (summed per window)."""

    outside: float  # 1 when the reader's team is not the owning team
    first_time: float  # 1 when the reader never read it before
    service: float  # 1 when the reader is a service account
    # outside x first_time x allowed: a first-time reader from another team who got the
    # data (a denied read is the access control working, not the audience growing)
    outside_first: float


class Counts(NamedTuple):
    """What both sides add up per read, distinct or not (``windows.CountWindow``)."""

    reads: float
    records: float
    bytes: float
    denied: float


def peer_group_of(event: AccessEvent) -> str:
    """The peer group a principal is compared with: same team *and* same principal type.

    People are compared with people of their team, service accounts with the team's
    service accounts: one nightly backup job in it-ops must not make every it-ops
    engineer's peer baseline "reads everything". Without a team, all of its type.
    """
    if event.principal_group is None:
        return f"~{event.principal_type}"
    return f"{event.principal_group}/{event.principal_type}"


def _principal_peers(event: AccessEvent) -> tuple[str, str]:
    return peer_group_of(event), f"~{event.principal_type}"


def _resource_peers(event: AccessEvent) -> tuple[str, str]:
    # A dataset's "peers" are datasets of the same sensitivity.
    return f"sensitivity:{event.sensitivity}", "sensitivity:internal"


def _reader_category(event: AccessEvent) -> str:
    return event.principal_group or f"~{event.principal_type}"


_SENSITIVE, _OUTSIDE, _RESTRICTED, _HEAVY = (
    PrincipalAttrs._fields.index(name) for name in ("sensitive", "outside", "restricted", "heavy")
)


def _reading_involved(
    event: AccessEvent, metrics: Mapping[str, float], window: Any, reach: frozenset[str]
) -> tuple[str, bool]:
    """(the most sensitive of the data that makes the reading unusual, whether all of it
    lies within the peers' reach), in ``window``: the breadth metric's, the last hour or
    the last 24 h. One pass over the window's kept datasets.

    Unusual data is other teams', or the own team's taken whole. The team's own data is
    the team's to read: an HR analyst reads the team's restricted records every day, and a
    broad read of theirs is not a restricted one for it (an on-call night through the
    division's confidential data was paged as high for the team's own restricted tables).
    Taken whole, it is an export (a departing employee), and counts.

    Within reach: every other team's confidential or restricted dataset belongs to a team
    whose such data the reader's peers read in training (``PeerProfiles.reach``), with at
    least one of them and nothing taken whole. More of what the group's work already
    touches (an on-call night through the division's data, an auditor's first week) is
    broader than usual, but not reach that nobody in the team has: it is evidence of less.

    Past the window's cap the kept keys are a part only, so the window's sums (every
    dataset read) decide the level, and nothing is within reach."""
    if window.overflow or not window.keys:
        suffix = "_1h" if window.span <= 3600.0 else "_24h"
        if metrics["restricted" + suffix] > 0:
            return "restricted", False
        if metrics["sensitive" + suffix] > 0:
            return "confidential", False
        return "internal", False
    level = "internal"
    reached, seen = bool(reach), False
    for entry in window.keys.values():
        attrs = entry[2]
        heavy = attrs[_HEAVY]
        if heavy:
            reached = False
        if attrs[_SENSITIVE] and (attrs[_OUTSIDE] or heavy):
            if attrs[_RESTRICTED]:
                level = "restricted"
            elif level == "internal":
                level = "confidential"
        if attrs[_SENSITIVE] and attrs[_OUTSIDE]:
            seen = True
            if entry[1] not in reach:
                reached = False
        if level == "restricted" and not reached:
            break  # nothing later can change either
    return level, reached and seen


def own_history_only(event: AccessEvent) -> bool:
    """Whether the reader's peers are its own history once it has one: a service account.
    A team's services each run their own job over their own pool (an ETL, a nightly backup
    that reads everything, a weekly crawler), so another job's reads say nothing about this
    one's (``features.GroupReaders``, ``FeatureBuilder._compare``)."""
    return event.principal_type == "service"


@dataclass(frozen=True, eq=False)
class Side:
    """One side of a read: everything in which principals and resources differ."""

    name: str  # "principal" | "resource": the entity type, and the state's tag
    kind: str  # the alert kind this side raises
    entity: Callable[[AccessEvent], str]  # whose state a read updates
    counterpart: Callable[[AccessEvent], str]  # what that entity's windows count distinct
    category: Callable[[AccessEvent], str]  # the counterpart's group (distinct groups)
    # (peer group, fallback) the entity is compared with; the group also keys profiles.
    peers: Callable[[AccessEvent], tuple[str, str]]
    attrs: type[tuple[float, ...]]  # a NamedTuple: what windows keep per counterpart
    hourly_metrics: tuple[str, ...]  # own baselines of finished hours' maxima
    daily_metrics: tuple[str, ...]  # ... and of finished days' maxima
    breadth_metrics: tuple[str, ...]  # window metrics that gate an alert (log-ratios)
    # Small-count metrics that gate an alert by their Poisson tail (``features.surprise``).
    surprise_metrics: tuple[str, ...]
    features: tuple[str, ...]  # the feature vector the detector scores, in this order
    sample_fields: tuple[str, ...]  # the event fields kept of each recent read
    # The sensitivities whose reads may alert on this side (and are fitted on). A wide
    # audience on public or internal data is what those labels mean: public is for
    # anyone, internal for every employee; only need-to-know data can be exposed.
    alerts_on: frozenset[str]
    # Every event is scored on both sides: this one books its per-event outcomes (late,
    # scored), so each event is counted once.
    books_events: bool
    # Whether a small-count surprise is scaled by the data's sensitivity weight (readers
    # of one dataset: yes; a principal's heavy reads count only non-public data already).
    surprise_by_sensitivity: bool
    # Whether a breadth barely past the threshold lowers the severity (an exposure of
    # restricted data to everyone keeps its level).
    demotes_marginal: bool
    # (the most sensitive data an alert of this side involves: its base severity, whether
    # it all lies within the peers' reach: a level lower) from the read, its metrics, the
    # entity's window of the breadth metric's horizon and its peer group's reach.
    involvement: Callable[
        [AccessEvent, Mapping[str, float], Any, frozenset[str]], tuple[str, bool]
    ]
    # How an alert's summary describes the breadth: by breadth-metric horizon ("1h",
    # "24h"), a ``str.format`` template over the view's metrics and ``sensitivity``.
    headlines: Mapping[str, str]
    unit: str  # what the breadth figure is, ``{metric}`` the metric in words
    peers_text: str  # whose p99 the peer baseline is
    sample_of: Callable[[AccessEvent], tuple[Any, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sample_of", attrgetter(*self.sample_fields))

    def __reduce__(self) -> tuple[Any, ...]:
        # Sides are singletons: a copy or pickle of a state refers to the same one.
        return _side_named, (self.name,)

    @property
    def gated_metrics(self) -> tuple[str, ...]:
        """Every metric whose breadth can raise an alert, each with its own gate."""
        return self.breadth_metrics + self.surprise_metrics

    @property
    def n_attrs(self) -> int:
        return len(self.attrs._fields)  # type: ignore[attr-defined]

    def may_alert(self, event: AccessEvent) -> bool:
        """Whether a read of this event may alert (and is fitted on) on this side."""
        return event.sensitivity in self.alerts_on


# Compact on purpose: an IsolationForest isolates along randomly chosen features, so
# every redundant column dilutes the ones that matter. Breadth enters as the *smaller* of
# the own and peer excess ("unusual for me and for my team"), the quantity the gate uses.
PRINCIPAL = Side(
    name="principal",
    kind="broad_reader",
    entity=attrgetter("principal"),
    counterpart=attrgetter("resource"),
    category=lambda event: event.resource_group or UNKNOWN_GROUP,
    peers=_principal_peers,
    attrs=PrincipalAttrs,
    hourly_metrics=("weighted_1h", "outside_weighted_1h", "groups_1h", "records_1h"),
    daily_metrics=("outside_weighted_24h", "heavy_24h", "outside_new_sensitive_teams_24h"),
    breadth_metrics=("weighted_1h", "outside_weighted_1h", "outside_weighted_24h"),
    surprise_metrics=("heavy_24h", "outside_new_sensitive_teams_24h"),
    features=(
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
        "surprise_heavy_24h",
        "surprise_outside_new_sensitive_teams_24h",
    ),
    sample_fields=("resource", "sensitivity", "resource_group"),
    alerts_on=frozenset(SENSITIVITIES),
    books_events=True,
    surprise_by_sensitivity=False,
    demotes_marginal=True,
    involvement=_reading_involved,
    headlines={
        "1h": "read {distinct_1h} datasets in the last hour ({distinct_15m} in the last "
        "15 min), {outside_1h} of them from {outside_groups_1h:teams} other than its own "
        "({sensitive_1h} confidential/restricted)",
        "24h": "read {outside_24h} datasets of {outside_groups_24h:teams} other than its "
        "own in 24 h ({sensitive_24h} confidential/restricted)",
    },
    unit="sensitivity-weighted breadth",
    peers_text="peers'",
)

RESOURCE = Side(
    name="resource",
    kind="broad_audience",
    entity=attrgetter("resource"),
    counterpart=attrgetter("principal"),
    category=_reader_category,
    peers=_resource_peers,
    attrs=ResourceAttrs,
    hourly_metrics=(
        "readers_1h", "outside_readers_1h", "reader_groups_1h", "outside_first_teams_1h"
    ),
    daily_metrics=("readers_24h",),
    breadth_metrics=("readers_1h", "outside_readers_1h", "reader_groups_1h"),
    surprise_metrics=(
        "outside_first_teams_1h",
        "outside_first_teams_scan",
        "outside_first_teams_granted",
        "outside_first_readers_1h",
    ),
    features=(
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
        "surprise_outside_teams_1h",
    ),
    sample_fields=("principal", "principal_group", "principal_type"),
    alerts_on=frozenset({"confidential", "restricted"}),
    books_events=False,
    surprise_by_sensitivity=True,
    demotes_marginal=False,
    involvement=lambda event, metrics, window, reach: (event.sensitivity, False),
    headlines={
        "1h": "{sensitivity} dataset read by {readers_1h} principals from "
        "{reader_groups_1h:teams} in the last hour ({outside_readers_1h} outside the "
        "owning team, {first_time_1h} first-time)",
    },
    unit="{metric} per hour",
    peers_text="similar {sensitivity} datasets'",
)

SIDES = (PRINCIPAL, RESOURCE)
KINDS = tuple(side.kind for side in SIDES)
BY_NAME = {side.name: side for side in SIDES}
BY_KIND = {side.kind: side for side in SIDES}


def _side_named(name: str) -> Side:
    return BY_NAME[name]
