"""The three baseline flaws of issue 12, each as the situation that exposed it.

1. an own baseline that learns an ongoing exposure while it happens;
2. one broad member (a backup job) that excuses its whole team;
3. a handful of first-time outside readers, alarming on restricted data, ordinary on
   internal data; counted by team (a kick-off's partner team is one arrival), and only
   those who got the data;
4. a departing employee exporting their own team's data: reads each larger than their
   usual whole hour, a Poisson surprise against their own history.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.tinyorg import START

from reachwatch.models.detector import BreadthDetector
from reachwatch.models.features import (
    DetectionConfig,
    FeatureBuilder,
    View,
    clustered_log_tail,
    group_readers,
    member_key,
    poisson_log_tail,
    resource_key,
)
from reachwatch.models.records import AccessEvent
from reachwatch.models.sides import PRINCIPAL, RESOURCE, Side
from reachwatch.models.training import build_profiles

HOUR = 3600.0
DAY = 86400.0
# The lowest breadth any calibrated gate can have (``BreadthDetector.min_breadth_ratio``).
FLOOR = math.log(2.5)


def _read(ts: float, principal: str, resource: str, **fields) -> AccessEvent:
    return AccessEvent(ts=START + ts, principal=principal, resource=resource, **fields)


class Replay:
    """Feeds reads through one builder, keeping every entity's state."""

    def __init__(self, builder: FeatureBuilder) -> None:
        self.builder = builder
        self.states: dict[tuple[str, str], object] = {}

    def view(self, side: Side, event: AccessEvent) -> View:
        key = (side.name, side.entity(event))
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = self.builder.new_state(side)
        view = self.builder.view(event, state)
        assert view is not None
        return view

    def feed(self, side: Side, events: list[AccessEvent]) -> View:
        view = None
        for event in events:
            view = self.view(side, event)
        assert view is not None
        return view


def _own_team_hours(resource: str, sensitivity: str, days: int, team: str = "hr") -> list:
    """Two team members read ``resource`` every working hour for ``days`` days."""
    return [
        _read(d * DAY + h * HOUR + 60.0 * i, f"{team}-{i}", resource,
              principal_group=team, resource_group=team, sensitivity=sensitivity)
        for d in range(days)
        for h in range(8, 18)
        for i in range(2)
    ]


def test_an_ongoing_exposure_does_not_become_its_own_baseline():
    """Readers from other teams build up over four hours: hour by hour the exposure's
    maxima must not enter the baseline that judges the next hour."""
    replay = Replay(FeatureBuilder(DetectionConfig()))
    before = replay.feed(RESOURCE, _own_team_hours("hr/tracking", "restricted", days=10))
    start = 10 * DAY + 9 * HOUR
    views = []
    readers = 0
    for hour, outsiders in enumerate((5, 10, 20, 40)):
        for i in range(outsiders):
            readers += 1
            views.append(replay.view(RESOURCE, _read(
                start + hour * HOUR + 80.0 * i, f"sales-{readers}", "hr/tracking",
                principal_group="sales", resource_group="hr", sensitivity="restricted")))
    last = views[-1]
    # The own usual high of outside readers is what it was before the exposure ...
    assert last.own["outside_readers_1h"] == before.own["outside_readers_1h"]
    # ... so four hours in, the exposure is still far beyond it.
    assert last.metrics["outside_readers_1h"] == 40
    assert last.breadth > 2 * FLOOR


def test_hours_with_an_open_alert_do_not_update_the_baseline():
    from reachwatch.models.windows import OpenAlert

    replay = Replay(FeatureBuilder(DetectionConfig()))
    replay.feed(RESOURCE, _own_team_hours("hr/tracking", "restricted", days=10))
    state = replay.states[("resource", "hr/tracking")]
    usual = state.baseline("outside_readers_1h", 0.99)[0]
    start = 10 * DAY + 9 * HOUR
    state.open_alert = OpenAlert("a1", START + start, START + start, 0, "high", 3.0, 0.8)
    for i in range(30):  # an hour of outside readers while the alert is open
        ts = start + 100.0 * i
        replay.view(RESOURCE, _read(ts, f"sales-{i}", "hr/tracking", principal_group="sales",
                                    resource_group="hr", sensitivity="restricted"))
        state.open_alert.last_ts = START + ts
    # Two days of the usual later (well past the longest window), that hour never counted.
    replay.feed(RESOURCE, [
        _read(11 * DAY + e.ts - START, e.principal, e.resource, principal_group="hr",
              resource_group="hr", sensitivity="restricted")
        for e in _own_team_hours("hr/tracking", "restricted", days=2)
    ])
    assert state.baseline("outside_readers_1h", 0.99)[0] == usual


def _service_team(backup: bool) -> list[AccessEvent]:
    """Four it services read two datasets an hour; with ``backup``, a fifth reads 200."""
    events = []
    for d in range(7):
        for h in range(24):
            ts = d * DAY + h * HOUR
            for s in range(4):
                for k in range(2):
                    events.append(_read(ts + 60.0 * s + k, f"svc-etl-{s}", f"it/ds{s}-{k}",
                                        principal_type="service", principal_group="it",
                                        resource_group="it", sensitivity="internal"))
            if backup and h == 2:
                for k in range(200):
                    team = ("hr", "sales", "finance", "it")[k % 4]
                    events.append(_read(ts + 600.0 + k, "svc-backup", f"{team}/obj{k}",
                                        principal_type="service", principal_group="it",
                                        resource_group=team, sensitivity="confidential"))
    return events


def test_one_broad_member_does_not_excuse_its_team():
    """A new it service scrapes 60 confidential datasets of other teams: the team's nightly
    backup reads even more, but a typical it service reads two."""
    config = DetectionConfig()
    history = _service_team(backup=True)
    profiles = build_profiles(history, config, sides=(PRINCIPAL,))
    replay = Replay(FeatureBuilder(config, profiles))
    replay.feed(PRINCIPAL, history)
    scrape = [
        _read(7 * DAY + 10 * HOUR + 5.0 * k, "svc-report", f"{team}/obj{k}",
              principal_type="service", principal_group="it", resource_group=team,
              sensitivity="confidential")
        for k in range(60)
        for team in [("hr", "sales", "finance")[k % 3]]
    ]
    view = replay.feed(PRINCIPAL, scrape)
    assert view.breadth > 2 * FLOOR


def test_a_mature_service_is_judged_by_its_own_history_not_its_teams_backup():
    """A team of two services: an ETL reading two datasets an hour and the nightly backup
    reading 200 of every team. The ETL's stolen credential reads 60 confidential datasets
    of other teams, all of them ones the backup reads every night. No quantile across two
    members keeps the backup out of the team's typical high, and the backup makes every
    dataset "known to the peers": judged by its own history, as a service is, it is far
    beyond it on breadth and on data new to it; the backup at its usual night is not."""
    config = DetectionConfig()
    history = [e for e in _service_team(backup=True)
               if e.principal in ("svc-etl-0", "svc-backup")]
    profiles = build_profiles(history, config, sides=(PRINCIPAL,))
    replay = Replay(FeatureBuilder(config, profiles))
    replay.feed(PRINCIPAL, history)
    scrape = replay.feed(PRINCIPAL, [
        _read(7 * DAY + 10 * HOUR + 5.0 * k, "svc-etl-0", f"{team}/obj{k}",
              principal_type="service", principal_group="it", resource_group=team,
              sensitivity="confidential")
        for k in range(60)
        for team in [("hr", "sales", "finance")[k % 3]]
    ])
    assert scrape.own_mature
    assert scrape.peer["outside_weighted_1h"] > scrape.metrics["outside_weighted_1h"]
    assert scrape.breadths["outside_weighted_1h"] > 2 * FLOOR
    assert scrape.metrics["outside_new_sensitive_24h"] == 60
    backup = replay.feed(PRINCIPAL, [
        _read(8 * DAY + 2 * HOUR + 600.0 + k, "svc-backup", f"{team}/obj{k}",
              principal_type="service", principal_group="it", resource_group=team,
              sensitivity="confidential")
        for k in range(200)
        for team in [("hr", "sales", "finance", "it")[k % 4]]
    ])
    assert backup.breadth < FLOOR and backup.metrics["outside_new_sensitive_24h"] == 0


def test_a_group_that_all_reads_broadly_stays_quiet():
    """Auditors all read 60 datasets of other teams a day: one more doing so is usual."""
    config = DetectionConfig()
    history = [
        _read(d * DAY + 10 * HOUR + 30.0 * k, f"auditor-{a}", f"{team}/obj{k}",
              principal_group="audit", resource_group=team, sensitivity="confidential")
        for d in range(7)
        for a in range(5)
        for k in range(60)
        for team in [("hr", "sales", "finance")[k % 3]]
    ]
    profiles = build_profiles(history, config, sides=(PRINCIPAL,))
    builder = FeatureBuilder(config, profiles)
    newcomer = Replay(builder).feed(PRINCIPAL, [
        _read(7 * DAY + 10 * HOUR + 30.0 * k, "auditor-new", f"{team}/obj{k}",
              principal_group="audit", resource_group=team, sensitivity="confidential")
        for k in range(60)
        for team in [("hr", "sales", "finance")[k % 3]]
    ])
    assert newcomer.breadth < FLOOR


def _security_team(days: int = 7) -> list[AccessEvent]:
    """Three broad members read 20 of 40 confidential datasets of other teams every
    working hour; the fourth, narrow, reads 2."""
    return sorted(
        (
            _read(d * DAY + h * HOUR + 60.0 * k + a, member, f"{team}/obj{k + 20 * (h % 2)}",
                  principal_group="security", resource_group=team, sensitivity="confidential")
            for d in range(days)
            for h in range(8, 18)
            for a, (member, width) in enumerate(
                [("sec-0", 20), ("sec-1", 20), ("sec-2", 20), ("sec-narrow", 2)])
            for k in range(width)
            for team in [("hr", "sales", "finance")[k % 3]]
        ),
        key=lambda e: e.ts,
    )


def test_a_narrow_member_of_a_broad_team_is_not_excused_by_it():
    """Forty datasets in an hour: twenty times the narrow member's own high, twice its
    team's typical member. Twice is under the gate floor (2.5x), so the smaller excess
    would let it pass; past both baselines the evidence is their geometric mean, and a
    broad member at its own usual high stays quiet however far above the narrow one."""
    config = DetectionConfig()
    history = _security_team()
    profiles = build_profiles(history, config, sides=(PRINCIPAL,))
    replay = Replay(FeatureBuilder(config, profiles))
    replay.feed(PRINCIPAL, history)

    def hour(member: str, width: int) -> View:
        return replay.feed(PRINCIPAL, [
            _read(7 * DAY + 10 * HOUR + 60.0 * k, member, f"{team}/obj{k}",
                  principal_group="security", resource_group=team, sensitivity="confidential")
            for k in range(width)
            for team in [("hr", "sales", "finance")[k % 3]]
        ])

    narrow = hour("sec-narrow", 40)
    metric = "outside_weighted_1h"
    smoothing = config.smoothing(PRINCIPAL)
    value = narrow.metrics[metric] + smoothing
    own_excess = math.log(value / (narrow.own[metric] + smoothing))
    peer_excess = math.log(value / (narrow.peer[metric] + smoothing))
    assert peer_excess < FLOOR < own_excess  # the smaller excess would stay silent
    assert narrow.breadths[metric] == pytest.approx(math.sqrt(own_excess * peer_excess))
    assert narrow.breadth >= narrow.breadths[metric] > FLOOR
    assert hour("sec-0", 20).breadth < FLOOR


def _first_time_outside_readers(
    sensitivity: str, teams: tuple[str, ...] = ("sales", "legal", "it"), **fields
) -> View:
    """The view after one first-time reader from each of ``teams`` (in turn) within 15
    minutes, on a dataset otherwise read only by its own team, in a company where
    internal datasets get a new outside reader every few hours (as company-wide data
    does)."""
    config = DetectionConfig()
    history = _own_team_hours("hr/subject", sensitivity, days=10)
    for d in range(10):
        for h in range(8, 18, 2):
            for n in range(2):
                history.append(_read(d * DAY + h * HOUR + 900.0 * n, f"eng-{d}-{h}-{n}",
                                     f"it/wiki{n}", principal_group="eng",
                                     resource_group="it", sensitivity="internal"))
    history.sort(key=lambda e: e.ts)
    profiles = build_profiles(history, config, sides=(RESOURCE,))
    replay = Replay(FeatureBuilder(config, profiles))
    replay.feed(RESOURCE, history)
    return replay.feed(RESOURCE, [
        _read(10 * DAY + 10 * HOUR + 300.0 * i / len(teams) * 3, f"{team}-{i}", "hr/subject",
              principal_group=team, resource_group="hr", sensitivity=sensitivity, **fields)
        for i, team in enumerate(teams)
    ])


def _surprise(view: View) -> float:
    return view.vector[RESOURCE.features.index("surprise_outside_teams_1h")]


def test_three_first_time_outside_readers_alarm_on_restricted_not_on_internal_data():
    restricted = _first_time_outside_readers("restricted").breadth
    internal = _first_time_outside_readers("internal").breadth
    assert restricted > 4 * FLOOR
    assert internal < FLOOR


def test_first_time_readers_of_one_partner_team_are_one_arrival():
    """A kick-off: ten people of one partner team open a restricted dataset for the first
    time together. They are one event (one meeting), not ten independent arrivals: the
    count surprise stays quiet (the reader ratios still see ten outside readers)."""
    kickoff = _first_time_outside_readers("restricted", teams=("sales",) * 10)
    assert kickoff.metrics["outside_first_1h"] == 10
    assert kickoff.metrics["outside_first_teams_1h"] == 1
    assert _surprise(kickoff) < FLOOR
    assert _surprise(_first_time_outside_readers("restricted")) > 4 * FLOOR


def test_denied_first_time_readers_do_not_widen_the_audience():
    """Three people of other teams try a restricted dataset and are refused: the access
    control worked; nobody new read it."""
    denied = _first_time_outside_readers("restricted", outcome="denied")
    assert denied.metrics["outside_first_teams_1h"] == 0
    assert _surprise(denied) == 0.0


def _working_hours(principal: str, team: str, days: int, records: int) -> list:
    """``principal`` reads four of its team's datasets an hour, ``records`` rows each."""
    return [
        _read(d * DAY + h * HOUR + 600.0 * k, principal, f"{team}/ds{(h + k) % 12}",
              principal_group=team, resource_group=team, sensitivity="confidential",
              records=records + 7 * k)
        for d in range(days)
        for h in range(9, 17)
        for k in range(4)
    ]


def _export(records: int, tables: int = 6, backup_rows: int | None = None) -> View:
    """A finance employee with ten days of ordinary hours, then ``tables`` of the team's
    own datasets in one hour, ``records`` rows each; with ``backup_rows``, a nightly backup
    service read every dataset whole (that many rows) in the history."""
    config = DetectionConfig()
    backups = [] if backup_rows is None else [
        _read(d * DAY + 2 * HOUR + 60.0 * k, "svc-backup", f"finance/ds{k}",
              principal_type="service", principal_group="it", resource_group="finance",
              sensitivity="confidential", records=backup_rows)
        for d in range(10)
        for k in range(12)
    ]
    history = sorted(
        _working_hours("fin-1", "finance", 10, 200) + _working_hours("fin-2", "finance", 10, 150)
        + backups,
        key=lambda e: e.ts,
    )
    profiles = build_profiles(history, config, sides=(PRINCIPAL,))
    replay = Replay(FeatureBuilder(config, profiles))
    replay.feed(PRINCIPAL, history)
    return replay.feed(PRINCIPAL, [
        _read(10 * DAY + 10 * HOUR + 300.0 * k, "fin-1", f"finance/ds{k}",
              principal_group="finance", resource_group="finance", sensitivity="confidential",
              records=records)
        for k in range(tables)
    ])


def test_a_big_query_is_not_the_whole_table_two_whole_tables_are_an_export():
    """Heavy reads take the table whole (the most rows any read of it returned in
    training, here a nightly backup's 2M): three queries of 20,000 rows, ten times the
    reader's usual hour, are an ordinary heavy-tailed day; two whole tables in a day are
    already an export (the plain tail: a first whole-table read is no rarity, a second
    in a day is, where a "beyond a pair" count never sees two)."""
    queries = _export(records=20_000, tables=3, backup_rows=2_000_000)
    assert queries.metrics["heavy_24h"] == 0
    assert queries.breadths["heavy_24h"] == 0.0
    whole = _export(records=2_000_000, tables=2, backup_rows=2_000_000)
    assert whole.metrics["heavy_24h"] == 2
    assert whole.breadths["heavy_24h"] > math.log(20.0)
    assert _export(records=2_000_000, tables=1, backup_rows=2_000_000).breadths["heavy_24h"] == 0


def test_whole_tables_of_the_own_team_alarm_ordinary_reads_do_not():
    """A departing employee reads no *more* datasets than usual, and only their own
    team's: what is unusual is that each read is larger than their usual whole hour."""
    export = _export(records=500_000)
    assert export.metrics["heavy_24h"] == 6
    assert export.breadth > 4 * FLOOR and export.breadth_metric == "heavy_24h"
    assert _export(records=200).breadth < FLOOR


def _collector(outcome: str = "allowed", teams: tuple[str, ...] = ("hr", "legal", "sales")
               ) -> View:
    """Ten ordinary days of own-team reads, then three confidential datasets of other
    teams (``teams`` in turn) an hour, each new to the reader, for two hours (slow-and-low
    collection)."""
    config = DetectionConfig()
    history = sorted(
        _working_hours("fin-1", "finance", 10, 200) + _working_hours("fin-2", "finance", 10, 150),
        key=lambda e: e.ts,
    )
    profiles = build_profiles(history, config, sides=(PRINCIPAL,))
    replay = Replay(FeatureBuilder(config, profiles))
    replay.feed(PRINCIPAL, history)
    return replay.feed(PRINCIPAL, [
        _read(10 * DAY + (10 + k // 3) * HOUR + 1000.0 * (k % 3), "fin-1", f"{team}/ds{k}",
              principal_group="finance", resource_group=team, sensitivity="confidential",
              records=200, outcome=outcome)
        for k in range(6)
        for team in [teams[k % len(teams)]]
    ])


def test_refused_attempts_are_not_collection():
    """Six confidential datasets of other teams, new to the reader and its peers, count as
    collected when read and not at all when refused (the forest sees the refusals)."""
    assert _collector().metrics["outside_new_sensitive_24h"] == 6
    assert _collector(outcome="denied").metrics["outside_new_sensitive_24h"] == 0


def test_a_refused_read_does_not_make_the_next_allowed_read_familiar():
    """Someone of another team was refused a restricted dataset last night; once it is
    opened to all, their first allowed read is a first-time read."""
    replay = Replay(FeatureBuilder(DetectionConfig()))
    replay.feed(RESOURCE, _own_team_hours("hr/tracking", "restricted", days=10))
    fields = dict(principal_group="sales", resource_group="hr", sensitivity="restricted")
    replay.view(RESOURCE, _read(9 * DAY + 17.5 * HOUR, "sales-1", "hr/tracking",
                                outcome="denied", **fields))
    later = replay.view(RESOURCE, _read(10 * DAY + 10 * HOUR, "sales-1", "hr/tracking",
                                        **fields))
    assert later.metrics["outside_first_1h"] == 1


def test_slow_collection_is_judged_as_a_count_over_the_day():
    """Sensitive data of other teams that neither the reader nor its peers ever read are
    rare arrivals, one per owning team: a few datasets an hour of three teams add up over
    the day to a Poisson surprise past any floor; six of one partner team (a kick-off) are
    one arrival, refused ones do not count, and data the peers do read is no arrival."""
    collected = _collector()
    assert collected.metrics["outside_new_sensitive_teams_24h"] == 3
    assert collected.breadths["outside_new_sensitive_teams_24h"] > 2 * FLOOR
    assert _collector(outcome="denied").breadths["outside_new_sensitive_teams_24h"] == 0.0
    # A kick-off: the same six datasets of one partner team are one arrival.
    kickoff = _collector(teams=("hr",))
    assert kickoff.metrics["outside_new_sensitive_24h"] == 6
    assert kickoff.breadths["outside_new_sensitive_teams_24h"] == 0.0
    # The reader's own team reading those datasets in training makes them familiar.
    config = DetectionConfig()
    history = sorted(
        _working_hours("fin-1", "finance", 10, 200) + _working_hours("fin-2", "finance", 10, 150)
        + [_read(2 * DAY + 11 * HOUR + 60.0 * k, "fin-2", f"{team}/ds{k}",
                 principal_group="finance", resource_group=team, sensitivity="confidential")
           for k in range(6) for team in [("hr", "legal", "sales")[k % 3]]],
        key=lambda e: e.ts,
    )
    replay = Replay(FeatureBuilder(config, build_profiles(history, config, sides=(PRINCIPAL,))))
    replay.feed(PRINCIPAL, history)
    familiar = replay.feed(PRINCIPAL, [
        _read(10 * DAY + (10 + k // 3) * HOUR + 1000.0 * (k % 3), "fin-1", f"{team}/ds{k}",
              principal_group="finance", resource_group=team, sensitivity="confidential",
              records=200)
        for k in range(6)
        for team in [("hr", "legal", "sales")[k % 3]]
    ])
    assert familiar.breadths["outside_new_sensitive_teams_24h"] == 0.0


def _night_digging(principal: str, team: str, night: int, tag: str,
                   others: tuple[str, ...] | None = None) -> list:
    """A page at night: ``principal`` opens one confidential dataset each of three other
    teams, datasets nobody of ``team`` read before (by default of teams new that night)."""
    others = others or tuple(f"{name}-{tag}-{night}" for name in ("ops", "infra", "data"))
    return [
        _read(night * DAY + 23 * HOUR + 300.0 * k, principal, f"{other}/{tag}-n{night}",
              principal_group=team, resource_group=other, sensitivity="confidential",
              records=200)
        for k, other in enumerate(others)
    ]


def _paged_at_night(history_nights: tuple[int, ...]) -> View:
    """Two engineers of a team with fourteen ordinary days, one of them paged on
    ``history_nights``; then the other is paged on night 14."""
    config = DetectionConfig()
    history = _working_hours("sre-1", "sre", 14, 200) + _working_hours("sre-2", "sre", 14, 150)
    for night in history_nights:
        history += _night_digging("sre-2", "sre", night, "history")
    history.sort(key=lambda e: e.ts)
    replay = Replay(FeatureBuilder(config, build_profiles(history, config, sides=(PRINCIPAL,))))
    replay.feed(PRINCIPAL, history)
    return replay.feed(PRINCIPAL, _night_digging("sre-1", "sre", 14, "test"))


def test_data_new_to_the_peers_is_judged_in_time_order():
    """Training must see "new to its peers" as serving does. Judged against the keys of
    the whole history, no training read was ever new to its peers, so the class rate of
    such reads was zero by construction and a team whose on-call engineers regularly open
    the division's data for the first time looked as quiet as any other: three teams'
    new data in a night was an alarm for both. Judged in time order, the class rate of the
    team that does this every other night is measured, and the same night is a far
    smaller surprise for it than for a team that never does."""
    paged = _paged_at_night((5, 7, 9, 11, 13))
    quiet = _paged_at_night(())
    assert paged.metrics["outside_new_sensitive_teams_24h"] == 3
    assert quiet.metrics["outside_new_sensitive_teams_24h"] == 3
    assert paged.peer["outside_new_sensitive_teams_24h"] > 0.1  # the measured class rate
    assert quiet.peer["outside_new_sensitive_teams_24h"] == 0.0
    surprise = "outside_new_sensitive_teams_24h"
    assert quiet.breadths[surprise] > 2 * FLOOR
    assert paged.breadths[surprise] < quiet.breadths[surprise] - 2 * FLOOR


def _trio_of_new_teams(history_trios: tuple[int, ...]) -> View:
    """A restricted dataset read by its own team every working hour for fourteen days,
    with first-time readers of three other teams within an hour on ``history_trios``
    days; then three more first-time outside teams within an hour on day 14."""
    replay = Replay(FeatureBuilder(DetectionConfig()))
    history = _own_team_hours("hr/tracking", "restricted", days=14)
    fields = dict(resource_group="hr", sensitivity="restricted")
    for day in history_trios:
        history += [_read(day * DAY + 11 * HOUR + 600.0 * k, f"{team}-{day}", "hr/tracking",
                          principal_group=team, **fields)
                    for k, team in enumerate(("sales", "legal", "it"))]
    history.sort(key=lambda e: e.ts)
    replay.feed(RESOURCE, history)
    return replay.feed(RESOURCE, [
        _read(14 * DAY + 11 * HOUR + 600.0 * k, f"{team}-new", "hr/tracking",
              principal_group=team, **fields)
        for k, team in enumerate(("ops", "finance", "data"))
    ])


def test_the_expected_count_is_the_own_mean_not_the_median():
    """A dataset that draws three new outside teams within an hour every few days expects
    such an hour; one that never did does not. The median hour of both is zero (counts of
    rare arrivals are mostly zero), so the median called them equally quiet; the mean is
    the Poisson rate's estimate."""
    metric = "outside_first_teams_1h"
    regular = _trio_of_new_teams((2, 5, 8, 11))
    quiet = _trio_of_new_teams(())
    assert regular.metrics[metric] == quiet.metrics[metric] == 3
    assert regular.own[metric] > 5 * quiet.own[metric]
    assert regular.breadths[metric] < quiet.breadths[metric] - FLOOR



def _slow_exposure(gap: float, sensitivity: str = "restricted") -> View:
    """A restricted dataset read by its own team for fourteen days, then a first-time
    reader of another team every ``gap`` seconds: four teams, each alone in its hour."""
    replay = Replay(FeatureBuilder(DetectionConfig()))
    replay.feed(RESOURCE, _own_team_hours("hr/tracking", sensitivity, days=14))
    return replay.feed(RESOURCE, [
        _read(14 * DAY + 9 * HOUR + gap * k, f"{team}-new", "hr/tracking",
              principal_group=team, resource_group="hr", sensitivity=sensitivity)
        for k, team in enumerate(("ops", "finance", "data", "legal"))
    ])


def test_a_slow_exposure_is_a_surprise_of_the_day_though_no_hour_holds_it():
    """Four first-time outside teams over two hours and a quarter: never more than two in
    one hour, so the hourly count is no surprise (and in a company of five teams no hour
    of an exposure may hold more); the scan of the day judges the whole stretch against
    the dataset's rate times its length. Spread over a day, the same four teams are what
    a dataset's rate allows far more easily (and past ``scan_span`` not one stretch)."""
    slow = _slow_exposure(45 * 60.0)
    assert slow.metrics["outside_first_teams_1h"] <= 2
    assert slow.breadths["outside_first_teams_1h"] == 0.0
    assert slow.metrics["outside_first_teams_scan"] == 4
    assert 2.0 <= slow.metrics["outside_first_teams_scan_hours"] <= 2.5
    assert slow.breadths["outside_first_teams_scan"] > 2 * FLOOR
    # Its surprise is the best stretch's, less the log of the four stretches scanned.
    expected = slow.metrics["outside_first_teams_scan_expected"]
    best = poisson_log_tail(2, expected) - poisson_log_tail(4, expected)
    assert math.isclose(slow.breadths["outside_first_teams_scan"], best - math.log(4))
    spread = _slow_exposure(7 * HOUR)
    assert spread.breadths["outside_first_teams_scan"] < slow.breadths[
        "outside_first_teams_scan"] - FLOOR
    # Confidential data is shared with partner teams in bulk (kick-offs): not scanned.
    assert _slow_exposure(45 * 60.0, "confidential").breadths["outside_first_teams_scan"] == 0


def test_new_to_the_peers_leaves_the_reader_out_and_has_no_learning_curve():
    """Two finance members each open three other teams' confidential data now and then,
    the same datasets: the first on day 6, the other on day 9. For the group this data is
    familiar (a member other than the reader read it), so none of those reads is new to
    the peers and the group's rate of such reads is zero. Judged in time order, the first
    member's reads on day 6, after the group's warm-up, were new to it: the rate was the
    group's learning curve, and a real collection had to beat it. What one member alone
    read in the history is new to the others' peers, and to its own peers it stays new:
    left out of the group, its reads of that data count as the group's rate."""
    config = DetectionConfig()
    shared = [f"{team}/shared" for team in ("hr", "legal", "sales")]
    history = _working_hours("fin-1", "finance", 14, 200) + _working_hours(
        "fin-2", "finance", 14, 150)
    for day, member in ((6, "fin-1"), (9, "fin-2")):
        history += [_read(day * DAY + 11 * HOUR + 300.0 * k, member, resource,
                          principal_group="finance", resource_group=resource.split("/")[0],
                          sensitivity="confidential", records=100)
                    for k, resource in enumerate(shared)]
    history.sort(key=lambda e: e.ts)
    profiles = build_profiles(history, config, sides=(PRINCIPAL,))
    metric = "rate:outside_new_sensitive_teams_24h"
    assert profiles.baselines["finance/human"][metric] == 0.0
    # Alone: fin-1 reads three other teams' data nobody else in finance ever read.
    alone = sorted(
        _working_hours("fin-1", "finance", 14, 200) + _working_hours("fin-2", "finance", 14, 150)
        + [_read(day * DAY + 11 * HOUR + 300.0 * k, "fin-1", f"{team}/alone-{day}",
                 principal_group="finance", resource_group=team, sensitivity="confidential",
                 records=100)
           for day in (3, 6, 9, 12) for k, team in enumerate(("hr", "legal", "sales"))],
        key=lambda e: e.ts,
    )
    lonely = build_profiles(alone, config, sides=(PRINCIPAL,))
    assert lonely.baselines["finance/human"][metric] > 0.0
    # Serving knows the same: the sole reader is stored with the keys.
    key = resource_key("hr/alone-3")
    assert not lonely.knows("finance/human", key, member_key("fin-1"))
    assert lonely.knows("finance/human", key, member_key("fin-2"))
    assert lonely.knows("finance/human", resource_key("hr/shared"), None) is False


def test_a_teams_service_accounts_are_not_left_out_of_one_another():
    """A nightly backup reads everything and the team's ETL job reads its own pool: they
    are not peers of each other, and left out, every first read of the backup would be
    new to "its peers" (and its sweeps would set everyone's gate). A service's own
    history stands for its peers; a person is still left out of theirs."""
    reads = [
        AccessEvent(ts=START + 60.0 * k, principal=who, resource=f"hr/ds{k}",
                    principal_type=kind, principal_group="it", resource_group="hr",
                    sensitivity="confidential")
        for k in range(6)
        for who, kind in (("svc-backup", "service"), ("ana", "human"))
    ] + [AccessEvent(ts=START, principal=who, resource="it/pool", principal_type=kind,
                     principal_group="it", resource_group="it")
         for who, kind in (("svc-etl", "service"), ("bo", "human"))]
    groups = group_readers(reads)
    key = resource_key("hr/ds0")
    assert groups["it/service"].known_to_others(key, member_key("svc-backup"))
    assert not groups["it/human"].known_to_others(key, member_key("ana"))
    assert groups["it/human"].known_to_others(key, member_key("bo"))
    assert groups["it/service"].sole() == {}


def _on_call(history_nights: tuple[int, ...]) -> View:
    """An engineer with fourteen ordinary days who opens one other team's data, new to
    the team, on ``history_nights``; then three teams' new data in one night."""
    config = DetectionConfig()
    history = _working_hours("sre-1", "sre", 14, 200) + _working_hours("sre-2", "sre", 14, 150)
    for night in history_nights:
        history += _night_digging("sre-1", "sre", night, "history", others=(f"ops-{night}",))
    history.sort(key=lambda e: e.ts)
    replay = Replay(FeatureBuilder(config, build_profiles(history, config, sides=(PRINCIPAL,))))
    replay.feed(PRINCIPAL, history)
    return replay.feed(PRINCIPAL, _night_digging("sre-1", "sre", 14, "test"))


def test_where_history_had_no_burst_a_principals_surprise_gate_asks_for_one_in_twenty():
    """Four nights in fourteen with new data of one other team (each in the 24 h window
    of two days): a rate of under one such team a day. Three in one night is then a
    1-in-10 burst or so, ``-ln P(X >= 3 | X >= 2)`` about 2: above the breadth floor
    (ln 2.5) the gate fell to wherever training never saw a burst, so an alert on every
    such night. There the gate is ln 20 (1 in 20) instead; where training saw bursts its
    quantile is the gate, never below ln 20. For the engineer who never did this the night
    passes."""
    metric = "outside_new_sensitive_teams_24h"
    regular = _on_call((2, 5, 8, 11))
    never = _on_call(())
    assert regular.metrics[metric] == never.metrics[metric] == 3
    assert 0.2 < regular.own[metric] < 1.0
    assert FLOOR < regular.breadths[metric] < math.log(20.0) < never.breadths[metric]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    quiet = np.zeros((2000, 1))
    least = {metric: DetectionConfig().min_surprise}
    gate = BreadthDetector(n_estimators=10).fit(
        X, breadth=quiet, metrics=(metric,), least=least).metric_gates_[metric]
    assert gate == math.log(20.0)
    assert BreadthDetector(n_estimators=10).fit(
        X, breadth=quiet, metrics=(metric,)).metric_gates_[metric] == FLOOR
    rare = quiet.copy()
    rare[0, 0] = 9.0  # one burst in 2,000 reads: the 0.999 quantile is still zero
    assert BreadthDetector(n_estimators=10).fit(
        X, breadth=rare, metrics=(metric,), least=least).metric_gates_[metric] == gate
    # Where training saw bursts, their quantile is the gate, but never below ln 20: ten
    # per cent of reads at 1.5 nats (a plain tail's ordinary days) is no evidence either.
    bursty = quiet.copy()
    bursty[:200, 0] = 1.5
    assert BreadthDetector(n_estimators=10).fit(
        X, breadth=bursty, metrics=(metric,), least=least).metric_gates_[metric] == gate
    bursty[:200, 0] = 5.0
    calibrated = BreadthDetector(n_estimators=10).fit(
        X, breadth=bursty, metrics=(metric,), least=least).metric_gates_[metric]
    assert calibrated == 5.0


def test_the_clustered_tail_is_the_polya_aeppli_distribution():
    """Poisson(lam) teams, each bringing a geometric number of readers with mean m: the tail
    equals the one built by convolving the cluster-size distribution k times."""
    lam, mean = 0.7, 1.8
    p = 1.0 / mean
    size = np.array([0.0] + [p * (1 - p) ** (s - 1) for s in range(1, 60)])
    total = np.zeros(60)
    convolved = np.zeros(60)
    convolved[0] = 1.0
    for k in range(40):
        total += math.exp(-lam) * lam**k / math.factorial(k) * convolved
        convolved = np.convolve(convolved, size)[:60]
    for n in (1, 2, 3, 5, 8, 13):
        assert math.isclose(math.exp(clustered_log_tail(n, lam, mean)), 1.0 - total[:n].sum(),
                            rel_tol=1e-6)
    # One reader a team is the plain Poisson count.
    assert math.isclose(clustered_log_tail(5, 0.3, 1.0), poisson_log_tail(5, 0.3))


def _two_team_exposure(sensitivity: str, crowds: int = 0) -> View:
    """A five-team company: its restricted dataset read by its own team for fourteen days
    (on ``crowds`` history days six first-time readers of one partner team within the
    hour); then eight first-time readers of two other teams within twelve minutes."""
    config = DetectionConfig()
    fields = dict(resource_group="hr", sensitivity=sensitivity)
    history = _own_team_hours("hr/tracking", sensitivity, days=14)
    history += [_read(day * DAY + 11 * HOUR + 300.0 * i, f"legal-{day}-{i}", "hr/tracking",
                      principal_group="legal", **fields)
                for day in range(2, 2 + crowds) for i in range(6)]
    history.sort(key=lambda e: e.ts)
    profiles = build_profiles(history, config, sides=(RESOURCE,))
    replay = Replay(FeatureBuilder(config, profiles))
    replay.feed(RESOURCE, history)
    return replay.feed(RESOURCE, [
        _read(14 * DAY + 10 * HOUR + 90.0 * k, f"{team}-{k}", "hr/tracking",
              principal_group=team, **fields)
        for k, team in enumerate(("sales", "ops") * 4)
    ])


def test_eight_first_time_readers_of_two_teams_are_counted_one_by_one():
    """In a company of five teams an exposure reaches at most four other teams, and a link
    that goes round two of them is "a pair" of team arrivals: no surprise by team. Its
    eight first-time readers of restricted data, where history's first-time outside
    readers came in ones and twos, are; a class whose history saw partner teams arrive
    in crowds of six expects crowds; confidential data (shared in bulk at kick-offs) is
    not counted by reader."""
    metric = "outside_first_readers_1h"
    exposed = _two_team_exposure("restricted")
    assert exposed.metrics["outside_first_teams_1h"] == 2
    assert exposed.breadths["outside_first_teams_1h"] == 0.0
    assert exposed.metrics[metric] == 8
    assert exposed.breadths[metric] >= DetectionConfig().min_surprise
    crowded = _two_team_exposure("restricted", crowds=4)
    assert crowded.peer[metric] > 2 * exposed.peer[metric]  # readers per team arrival
    assert crowded.breadths[metric] < exposed.breadths[metric] - FLOOR
    assert _two_team_exposure("confidential").breadths[metric] == 0.0
