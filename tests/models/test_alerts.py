"""The alert policy: when a scored read opens, updates or leaves an alert, and what it says."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.tinyorg import START

from reachwatch.models.alerts import (
    AlertPolicy,
    alert_id_for,
    evidence_of,
    sample_of,
    severity_of,
    summary_of,
)
from reachwatch.models.detector import BreadthDetector
from reachwatch.models.features import GRANTED, SCANS, DetectionConfig, FeatureBuilder, View
from reachwatch.models.records import AccessEvent
from reachwatch.models.sides import PRINCIPAL, RESOURCE

BREADTH_GATE = 1.0
SCORE_GATE = 0.6


@pytest.fixture()
def detector() -> BreadthDetector:
    """A detector with known gates and training statistics (what ``fit`` would set)."""
    d = BreadthDetector(kind="broad_reader")
    d.score_threshold_, d.breadth_threshold_ = SCORE_GATE, BREADTH_GATE
    d.feature_median_ = np.zeros(len(PRINCIPAL.features))
    d.feature_scale_ = np.ones(len(PRINCIPAL.features))
    return d


def _reader_view(ts: float = 0.0, breadth: float = 1.2, *, restricted: bool = False,
                 metric: str = "weighted_1h", own: float = math.nan,
                 state=None, resource: str = "fin/ledger", mature: bool = True) -> View:
    """A real principal view (state and all), with the breadth the test needs; its own
    history counts (``mature``) unless the test says otherwise."""
    builder = FeatureBuilder(DetectionConfig())
    state = state or builder.new_state(PRINCIPAL)
    event = AccessEvent(ts=START + ts, principal="ana", resource=resource,
                        principal_group="hr", resource_group="finance",
                        sensitivity="restricted" if restricted else "internal")
    view = builder.view(event, state)
    assert view is not None
    view.breadth, view.breadth_metric = breadth, metric
    view.own[metric] = own
    view.own_mature = mature
    return view


def _audience_view(sensitivity: str, breadth: float) -> View:
    builder = FeatureBuilder(DetectionConfig())
    event = AccessEvent(ts=START, principal="bo", resource="hr/salaries", principal_group="sales",
                        resource_group="hr", sensitivity=sensitivity)
    view = builder.view(event, builder.new_state(RESOURCE))
    assert view is not None
    view.breadth = breadth
    return view


def test_alert_id_is_stable_and_depends_on_the_opening_read():
    one = alert_id_for("broad_reader", "ana", 10.0, "fin/ledger")
    assert one == alert_id_for("broad_reader", "ana", 10.0, "fin/ledger")
    assert one != alert_id_for("broad_audience", "ana", 10.0, "fin/ledger")
    assert one != alert_id_for("broad_reader", "ana", 10.5, "fin/ledger")
    assert len(one) == 32


def test_a_broad_high_scoring_read_opens_an_alert(detector):
    view = _reader_view()
    alert = AlertPolicy().decide(view, 0.9, detector, "v1")
    assert alert is not None and alert.status == "opened" and alert.revision == 0
    body = alert.to_json()
    assert body["kind"] == "broad_reader" and body["entity_type"] == "principal"
    assert body["entity"] == "ana"
    assert body["alert_id"] == alert_id_for("broad_reader", "ana", START, "fin/ledger")
    assert body["ts"] == "2026-03-02T00:00:00.000Z"
    assert body["thresholds"] == {"score": SCORE_GATE, "breadth": BREADTH_GATE}


@pytest.mark.parametrize(("score", "breadth"), [(0.5, 3.0), (0.9, 0.5)])
def test_both_gates_must_pass(detector, score, breadth):
    assert AlertPolicy().decide(_reader_view(breadth=breadth), score, detector, "v1") is None


def test_a_public_or_internal_dataset_never_raises_broad_audience():
    detector = BreadthDetector(kind="broad_audience")
    detector.score_threshold_, detector.breadth_threshold_ = SCORE_GATE, BREADTH_GATE
    detector.feature_median_ = np.zeros(len(RESOURCE.features))
    detector.feature_scale_ = np.ones(len(RESOURCE.features))
    policy = AlertPolicy()
    assert policy.decide(_audience_view("public", 5.0), 0.99, detector, "v1") is None
    assert policy.decide(_audience_view("internal", 5.0), 0.99, detector, "v1") is None
    alert = policy.decide(_audience_view("confidential", 5.0), 0.99, detector, "v1")
    assert alert is not None and alert.to_json()["entity_type"] == "resource"


def test_an_open_alert_is_updated_only_when_breadth_doubles_or_severity_rises(detector):
    policy = AlertPolicy()
    first = _reader_view(0.0, breadth=2.0)
    opened = policy.decide(first, 0.9, detector, "v1")
    assert opened is not None and opened.severity == "medium"
    same = policy.decide(_reader_view(60.0, 2.1, state=first.state), 0.9, detector, "v1")
    assert same is None  # one open alert per entity: no new message for more of the same
    grown = policy.decide(_reader_view(120.0, 2.0 + math.log(2) + 0.01, state=first.state),
                          0.9, detector, "v1")
    assert grown is not None and grown.status == "updated" and grown.revision == 1
    assert grown.alert_id == opened.alert_id and grown.severity == "medium"
    restricted = _reader_view(180.0, 2.0, restricted=True, state=first.state,
                              resource="fin/payroll")
    worse = policy.decide(restricted, 0.9, detector, "v1")
    assert worse is not None and worse.status == "escalated" and worse.revision == 2
    assert worse.severity == "critical" and worse.alert_id == opened.alert_id


def test_after_a_quiet_period_the_next_alert_is_a_new_one(detector):
    policy = AlertPolicy()
    first = _reader_view(0.0)
    opened = policy.decide(first, 0.9, detector, "v1")
    later = _reader_view(policy.quiet_period + 1.0, state=first.state)
    again = policy.decide(later, 0.9, detector, "v1")
    assert again is not None and again.status == "opened"
    assert again.alert_id != opened.alert_id


def test_severity_starts_from_the_most_sensitive_data_and_moves_with_breadth():
    gate = 1.0
    assert severity_of(_reader_view(breadth=1.6, restricted=True), gate) == "high"
    assert severity_of(_reader_view(breadth=2.0, restricted=True), gate) == "critical"
    assert severity_of(_reader_view(breadth=1.6), gate) == "low"
    # Barely past the gate: a reader is demoted, an exposure of a dataset is not.
    assert severity_of(_reader_view(breadth=1.1, restricted=True), gate) == "medium"
    assert severity_of(_audience_view("restricted", 1.1), gate) == "high"
    assert severity_of(_audience_view("confidential", 2.5), gate) == "high"


def test_a_reader_judged_against_its_peers_alone_is_one_level_lower():
    """A newcomer (a new auditor's first week) has no own history: its alert rests on the
    peer baseline alone, half the evidence, so it lands one level below a mature reader's
    (a ticket, not a page); an exposure alert is never demoted for it (the audience side
    does not demote: a new dataset read company-wide is no weaker a case)."""
    gate = 1.0
    for breadth, mature, cold in ((1.6, "high", "medium"), (2.0, "critical", "high"),
                                  (1.1, "medium", "low")):
        assert severity_of(_reader_view(breadth=breadth, restricted=True), gate) == mature
        assert severity_of(
            _reader_view(breadth=breadth, restricted=True, mature=False), gate) == cold
    assert severity_of(_reader_view(breadth=1.1, mature=False), gate) == "low"  # the floor
    exposure = _audience_view("restricted", 1.1)
    assert not exposure.own_mature and severity_of(exposure, gate) == "high"


def test_summary_compares_with_own_and_peer_baselines():
    no_history = summary_of(_reader_view())
    assert no_history.startswith("read 1 datasets in the last hour (1 in the last 15 min), "
                                 "1 of them from 1 team other than its own")
    assert "no own history yet" in no_history and "peers' p99 is 0" in no_history
    with_history = summary_of(_reader_view(own=2.5))
    assert "own 30-day p99 is 2.5" in with_history
    daily = summary_of(_reader_view(metric="outside_weighted_24h"))
    assert daily.startswith("read 1 datasets of 1 team other than its own in 24 h")


def test_summary_of_a_dataset_names_its_sensitivity_and_audience():
    text = summary_of(_audience_view("confidential", 2.0))
    assert text.startswith("confidential dataset read by 1 principals from 1 team in the last "
                           "hour (1 outside the owning team, 1 first-time)")
    assert "readers per hour 1 vs" in text
    assert "similar confidential datasets' p99" in text


def test_sample_names_the_other_side_of_each_recent_read():
    (read,) = sample_of(_reader_view())
    assert read == {"ts": "2026-03-02T00:00:00.000Z", "resource": "fin/ledger",
                    "sensitivity": "internal", "resource_group": "finance"}
    (reader,) = sample_of(_audience_view("internal", 1.0))
    assert set(reader) == {"ts", "principal", "principal_group", "principal_type"}


def test_evidence_leads_with_breadth_then_the_most_deviant_features(detector):
    view = _reader_view()
    view.vector = [0.0] * len(view.vector)
    view.vector[PRINCIPAL.features.index("bytes_1h")] = 9.0
    view.vector[PRINCIPAL.features.index("groups_1h")] = -4.0
    evidence = evidence_of(view, detector)
    assert evidence[0]["feature"] == "weighted_1h" and evidence[0]["own_baseline"] is None
    assert [e["feature"] for e in evidence[1:3]] == ["bytes_1h", "groups_1h"]
    assert evidence[1]["deviation"] == 9.0
    assert len(evidence) == 1 + 5


@pytest.mark.parametrize(
    "side,metric",
    [(side, metric) for side in (PRINCIPAL, RESOURCE) for metric in side.surprise_metrics],
    ids=lambda x: getattr(x, "name", x),
)
def test_every_surprise_metric_explains_itself(side, metric):
    """Each small-count signal names its count, what was expected and the period."""
    builder = FeatureBuilder(DetectionConfig())
    event = AccessEvent(ts=START, principal="bo", resource="hr/salaries",
                        principal_group="sales", resource_group="hr",
                        sensitivity="restricted")
    view = builder.view(event, builder.new_state(side))
    assert view is not None
    view.breadth, view.breadth_metric = 5.0, metric
    view.breadths[metric] = 5.0
    text = summary_of(view)
    if metric in SCANS:  # a stretch of the day: its length in hours
        view.metrics.update({metric: 3.0, f"{metric}_hours": 2.25})
        assert "3 in the last 2.2 h vs" in summary_of(view)
        return
    if metric in GRANTED:  # since a grant: how long ago, and what kind of grant
        view.metrics.update({metric: 2.0, f"{metric}_hours": 0.5})
        assert "2 since a permission grant 30 min earlier vs" in summary_of(view)
        return
    period = "24 h" if metric.endswith("24h") else "hour"
    assert f"in the last {period} vs" in text and "surprise 5" in text


def test_a_surprise_is_told_in_nats_not_rescaled_to_the_floor():
    """The scan's gate is ln 20 where history had no burst: its breadth, rescaled so the
    gate falls on the floor, is 1.1 for a surprise of 3.6 nats; the summary says 3.6."""
    builder = FeatureBuilder(DetectionConfig())
    event = AccessEvent(ts=START, principal="bo", resource="hr/salaries",
                        principal_group="sales", resource_group="hr",
                        sensitivity="restricted")
    view = builder.view(event, builder.new_state(RESOURCE))
    metric = "outside_first_teams_scan"
    view.metrics.update({metric: 3.0, f"{metric}_hours": 4.1})
    view.breadths[metric] = 3.6
    view.breadth, view.breadth_metric = 1.1, metric
    assert summary_of(view).endswith("surprise 3.6")


def _read(builder: FeatureBuilder, state, ts: float, resource: str, team: str,
          sensitivity: str, records: int | None = None) -> View:
    event = AccessEvent(ts=START + ts, principal="ana", resource=resource, records=records,
                        principal_group="hr", resource_group=team, sensitivity=sensitivity)
    view = builder.view(event, state)
    assert view is not None
    return view


def test_the_readers_own_routine_data_does_not_set_the_level():
    """An HR analyst reads the team's restricted records every day: a broad read of other
    teams' confidential data is a confidential alert, not a restricted one, and so it stays
    after opening restricted tables of the team's new to the analyst (the team's data is
    the team's to read). Another team's restricted data, or the team's restricted data
    taken whole (an export), makes it a restricted one."""
    from reachwatch.models.features import PeerProfiles, resource_key

    gate = 1.0
    profiles = PeerProfiles(largest={resource_key("hr/cases"): 500.0})
    builder = FeatureBuilder(DetectionConfig(), profiles)
    state = builder.new_state(PRINCIPAL)
    for hour in range(72):  # three days of the team's own restricted records, hourly
        _read(builder, state, hour * 3600.0, "hr/records", "hr", "restricted", records=10)
    day = 72 * 3600.0
    levels = []
    for ts, resource, team, records in (
        (day, "hr/records", "hr", 10),
        (day + 60, "fin/ledger", "finance", 10),
        (day + 120, "hr/pay", "hr", 10),  # new to ana, read a little
        (day + 180, "hr/cases", "hr", 500),  # the whole table
    ):
        event = AccessEvent(ts=START + ts, principal="ana", resource=resource,
                            principal_group="hr", resource_group=team, records=records,
                            sensitivity="confidential" if team == "finance" else "restricted")
        view = builder.view(event, state)
        assert view is not None and view.own_mature
        view.breadth = 1.6
        levels.append(severity_of(view, gate))
    assert levels == ["low", "medium", "medium", "high"]
    other = _read(builder, builder.new_state(PRINCIPAL), day, "fin/payroll", "finance",
                  "restricted")
    other.breadth, other.own_mature = 1.6, True
    assert severity_of(other, gate) == "high"


def test_reading_within_the_peers_reach_is_one_level_lower():
    """Other teams' sensitive data that the reader's peers read in training (the
    division's data an on-call engineer digs through) is broader than usual but within
    the group's reach: one level lower. One team nobody in the group reads lifts it back;
    a model without reach (stored before it) lowers nothing."""
    from reachwatch.models.features import PeerProfiles

    gate = 1.0
    levels = {}
    reaches = {"reach": {"hr/human": frozenset({"finance", "payroll"})}, "none": {}}
    for name, reach in reaches.items():
        builder = FeatureBuilder(DetectionConfig(), PeerProfiles(reach=reach))
        state = builder.new_state(PRINCIPAL)
        levels[name] = []
        for ts, resource, team in ((0.0, "fin/ledger", "finance"), (60.0, "pay/runs", "payroll"),
                                   (120.0, "legal/cases", "legal")):
            view = _read(builder, state, ts, resource, team, "confidential")
            view.breadth, view.own_mature = 1.6, True
            levels[name].append(severity_of(view, gate))
    assert levels == {"reach": ["low", "low", "medium"], "none": ["medium"] * 3}


def test_reach_counts_other_teams_sensitive_data_read_by_people():
    """A group's reach: the other teams whose confidential or restricted data its people
    were allowed to read. Its own team, public and internal data, denied reads and the
    team's service accounts (each runs its own job) add nothing."""
    from reachwatch.models.features import peer_reach

    def read(team: str, sensitivity: str, *, kind: str = "human",
             outcome: str = "allowed") -> AccessEvent:
        return AccessEvent(ts=START, principal="p", resource=f"{team}/x", principal_type=kind,
                           principal_group="ops", resource_group=team,
                           sensitivity=sensitivity, outcome=outcome)

    events = [read("finance", "confidential"), read("legal", "restricted"),
              read("ops", "restricted"), read("sales", "internal"), read("hr", "public"),
              read("audit", "restricted", outcome="denied"),
              read("payroll", "restricted", kind="service")]
    assert peer_reach(events) == {"ops/human": frozenset({"finance", "legal"})}
