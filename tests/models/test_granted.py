"""Reads judged since a grant: a logged permission change fixes an exposure's start.

Without a grant, first-time outside readers of a restricted dataset alarm only beyond a
pair in an hour (or over a scanned stretch, which pays for choosing it); after a grant,
whose grantee's team is expected, the second outside team is the evidence, less the log
of the grants a day (``FeatureBuilder._granted``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from support.tinyorg import START

from reachwatch.models.features import (
    GRANTS_GROUP,
    DetectionConfig,
    FeatureBuilder,
    PeerProfiles,
    View,
    poisson_log_tail,
)
from reachwatch.models.grants import GrantLog
from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import AccessEvent
from reachwatch.models.sides import RESOURCE

HOUR = 3600.0
DAY = 86400.0
METRIC = "outside_first_teams_granted"
DATASET = "hr/tracking"
LEAST = DetectionConfig().min_surprise


def _read(ts: float, principal: str, team: str, sensitivity: str = "restricted",
          resource: str = DATASET) -> AccessEvent:
    kind = "service" if principal.startswith("svc-") else "human"
    return AccessEvent(ts=START + ts, principal=principal, resource=resource,
                       principal_group=team, resource_group="hr", sensitivity=sensitivity,
                       principal_type=kind)


def _grant(ts: float, action: str, resource: str = DATASET) -> AccessEvent:
    return AccessEvent(ts=START + ts, principal="hr-0", resource=resource,
                       principal_group="hr", resource_group="hr", sensitivity="restricted",
                       action=action)


def _history(sensitivity: str = "restricted") -> list[AccessEvent]:
    """Two hr members read the dataset every working hour for fourteen days."""
    return [_read(d * DAY + h * HOUR + 60.0 * i, f"hr-{i}", "hr", sensitivity)
            for d in range(14) for h in range(8, 18) for i in range(2)]


def _views(grant: AccessEvent | None, teams: tuple[str, ...], *, gap: float = 20 * 60.0,
           sensitivity: str = "restricted", after: float = 10 * 60.0,
           grants_per_day: float = 0.0) -> list[View]:
    """The views of first-time readers of ``teams`` (one each, ``gap`` apart), the first
    ``after`` seconds after the grant (at day 14, 09:00), with the history before."""
    profiles = PeerProfiles(baselines={GRANTS_GROUP: {"per_day": grants_per_day}})
    builder = FeatureBuilder(DetectionConfig(), profiles)
    state = builder.new_state(RESOURCE)
    for event in _history(sensitivity):
        builder.view(event, state)
    if grant is not None:
        builder.file_grant(grant)
    start = 14 * DAY + 9 * HOUR + after
    views = []
    for k, team in enumerate(teams):
        reader = team if team.startswith("svc-") else f"{team}-new"
        view = builder.view(_read(start + k * gap, reader, team, sensitivity), state)
        assert view is not None
        views.append(view)
    return views


def _beyond_one(view: View) -> float:
    expected = view.metrics[f"{METRIC}_expected"]
    return poisson_log_tail(1, expected) - poisson_log_tail(view.metrics[METRIC], expected)


def test_after_a_grant_the_second_outside_team_is_evidence():
    """Beyond the grantee's team, a company-wide link as much as a share: the second
    first-time outside team gates, ``-ln P(X >= 2 | X >= 1)`` at the dataset's rate for
    the hour since the grant, where the hourly count (beyond a pair) says nothing yet."""
    for action in ("share-organization", "share"):
        one, two = _views(_grant(14 * DAY + 9 * HOUR, action), ("ops", "finance"))
        assert one.breadths[METRIC] == 0.0
        assert two.metrics[METRIC] == 2
        assert math.isclose(two.breadths[METRIC], _beyond_one(two))
        assert two.breadths[METRIC] >= LEAST
        assert two.breadths["outside_first_teams_1h"] == 0.0
    # The same readers with no grant logged: nothing on this metric.
    assert _views(None, ("ops", "finance"))[-1].breadths[METRIC] == 0.0


def test_a_service_reading_what_a_grant_opened_is_not_an_audience():
    """An indexer picks up a newly shared dataset as a matter of course: the grantee's team
    and an indexer of another team are one team of people, no evidence."""
    grant = _grant(14 * DAY + 9 * HOUR, "share")
    indexed = _views(grant, ("ops", "svc-indexer"))[-1]
    assert indexed.metrics[METRIC] == 1 and indexed.breadths[METRIC] == 0.0
    assert _views(grant, ("ops", "finance"))[-1].breadths[METRIC] >= LEAST


def test_the_grants_of_a_day_are_as_many_tests():
    """A company that logs a hundred grants a day tests a hundred datasets a day: the
    log of that is taken off, and a pair of teams after one grant is no longer rare."""
    grant = _grant(14 * DAY + 9 * HOUR, "share")
    few = _views(grant, ("ops", "finance"), grants_per_day=0.5)[-1]
    many = _views(grant, ("ops", "finance"), grants_per_day=100.0)[-1]
    assert math.isclose(few.breadths[METRIC], _beyond_one(few))
    assert _beyond_one(many) - math.log(100.0) < LEAST
    assert many.breadths[METRIC] == 0.0


def test_what_a_grant_cannot_explain_stays_quiet():
    grant = _grant(14 * DAY + 9 * HOUR, "share-organization")
    teams = ("ops", "finance")
    # Readers who came before the grant are not its audience.
    assert _views(grant, teams, after=-60 * 60.0)[-1].breadths[METRIC] == 0.0
    # A grant older than the 24 h window says nothing.
    assert _views(grant, teams, after=DAY + HOUR)[-1].breadths[METRIC] == 0.0
    # Internal data opened company-wide is what the label means.
    assert _views(grant, ("ops", "finance", "data"), sensitivity="internal")[-1].breadths[
        METRIC] == 0.0


def test_confidential_data_needs_more_teams_than_restricted():
    """Scaled by sensitivity like the hourly count: two teams after a grant are a page on
    restricted data, not on confidential data; more teams are."""
    grant = _grant(14 * DAY + 9 * HOUR, "share-organization")
    teams = ("ops", "finance", "data", "legal")
    restricted = _views(grant, teams)
    confidential = _views(grant, teams, sensitivity="confidential")
    assert restricted[1].breadths[METRIC] >= LEAST
    assert confidential[1].breadths[METRIC] < LEAST
    assert confidential[-1].breadths[METRIC] >= LEAST


def test_a_grant_on_an_enclosing_scope_covers_the_dataset():
    builder = FeatureBuilder(DetectionConfig())
    state = builder.new_state(RESOURCE)
    resource = "s3://hr-private/tracking/2026.csv"
    for event in _history():
        builder.view(replace(event, resource=resource), state)
    builder.file_grant(_grant(14 * DAY + 9 * HOUR, "public-access-unblocked",
                              resource="s3://hr-private/"))
    view = None
    for k, team in enumerate(("ops", "finance")):
        view = builder.view(_read(14 * DAY + 9 * HOUR + 600.0 * (k + 1), f"{team}-new", team,
                                  resource=resource), state)
    assert view is not None and view.breadths[METRIC] >= LEAST


def test_the_pipeline_files_grants_in_event_order_and_never_scores_them(tiny_model):
    """A grant among a batch's events is filed for the reads after it (its timestamp,
    not its place in the batch) and is neither scored nor late."""
    pipeline = Pipeline(tiny_model)
    states: dict = {}
    ts = 30 * DAY
    grant = AccessEvent(ts=START + ts, principal="a", resource="hr/x", action="share",
                        sensitivity="restricted", resource_group="hr")
    read = AccessEvent(ts=START + ts + 60.0, principal="b", resource="hr/x",
                       sensitivity="restricted", resource_group="hr", principal_group="ops")
    result = pipeline.observe(RESOURCE, [grant, read], states)
    assert result.scored == 1 and result.late == 0
    assert pipeline.grants.latest_before("hr/x", START + ts + 60.0).action == "share"
    assert pipeline.features.grants is pipeline.grants
    # The principal side neither files nor scores it.
    other = Pipeline(tiny_model)
    assert other.observe_principals([grant], {}).scored == 0
    assert not other.grants.scopes


def test_filing_a_grant_twice_keeps_one():
    log = GrantLog()
    event = _grant(0.0, "share")
    log.add_events([event])
    log.add_events([event])
    assert len(log.scopes[DATASET]) == 1


def test_the_summary_says_the_alert_counts_since_a_grant():
    from reachwatch.models.alerts import summary_of

    view = _views(_grant(14 * DAY + 9 * HOUR, "share-organization"), ("ops", "finance"))[-1]
    view.breadth_metric = METRIC
    text = summary_of(view)
    assert "teams of first-time outside readers 2 since a permission grant 30 min earlier" in text
