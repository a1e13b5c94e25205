from __future__ import annotations

import random

import pytest
from support.tinyorg import START, TEAMS, datasets, office_day, people

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import AccessEvent

TEST_DAY = 14  # the Monday after the two weeks of training history


def warm_states(pipeline: Pipeline, history: list[AccessEvent]):
    principals: dict = {}
    resources: dict = {}
    for start in range(0, len(history), 2000):
        chunk = history[start : start + 2000]
        pipeline.observe_principals(chunk, principals)
        pipeline.observe_resources(chunk, resources)
    return principals, resources


def run(pipeline: Pipeline, history, test_events, batch: int = 500):
    principals, resources = warm_states(pipeline, history)
    alerts = []
    for start in range(0, len(test_events), batch):
        chunk = test_events[start : start + batch]
        alerts += pipeline.observe_principals(chunk, principals).alerts
        alerts += pipeline.observe_resources(chunk, resources).alerts
    return alerts


def normal_day() -> list[AccessEvent]:
    return office_day(random.Random(99), TEST_DAY)


def insider(principal: str = "eng-3", at: float = 10.5) -> list[AccessEvent]:
    """An engineer reading every confidential/restricted dataset of hr and finance."""
    t0 = START + TEST_DAY * 86400 + at * 3600
    targets = [d for team in ("hr", "finance") for d in datasets(team) if d[1] != "internal"]
    return [
        AccessEvent(
            ts=t0 + i * 40,
            principal=principal,
            resource=r,
            principal_group="eng",
            resource_group=r.split("/")[0],
            sensitivity=s,
        )
        for i, (r, s) in enumerate(targets)
    ]


def exposure(resource: str = "hr/ds3", sensitivity: str = "restricted") -> list[AccessEvent]:
    """Most of the company reads one hr dataset within half an hour."""
    t0 = START + TEST_DAY * 86400 + 13 * 3600
    readers = [p for team in TEAMS if team != "hr" for p in people(team)]
    return [
        AccessEvent(
            ts=t0 + i * 50,
            principal=p,
            resource=resource,
            principal_group=p.split("-")[0],
            resource_group="hr",
            sensitivity=sensitivity,
        )
        for i, p in enumerate(readers)
    ]


def by_time(*parts: list[AccessEvent]) -> list[AccessEvent]:
    return sorted((e for part in parts for e in part), key=lambda e: e.ts)


def test_a_normal_day_raises_nothing(tiny_model, tiny_history):
    assert run(Pipeline(tiny_model), tiny_history, normal_day()) == []


def test_insider_broad_read_raises_one_broad_reader_alert(tiny_model, tiny_history):
    alerts = run(Pipeline(tiny_model), tiny_history, by_time(normal_day(), insider()))
    readers = [a for a in alerts if a.kind == "broad_reader"]
    assert {a.entity for a in readers} == {"eng-3"}
    assert len({a.alert_id for a in readers}) == 1  # updates, not a flood
    assert [a.revision for a in readers] == list(range(len(readers)))
    assert readers[-1].severity in ("high", "critical")
    first = readers[0].to_json()
    assert first["evidence"][0]["peer_baseline"] is not None
    assert 0 < len(first["sample"]) <= 5
    assert "other than its own" in first["summary"]


def test_exposure_of_restricted_data_raises_critical_broad_audience(tiny_model, tiny_history):
    alerts = run(Pipeline(tiny_model), tiny_history, by_time(normal_day(), exposure()))
    audience = [a for a in alerts if a.kind == "broad_audience"]
    assert {a.entity for a in audience} == {"hr/ds3"}
    assert audience[-1].severity == "critical"
    # Caught early: within 30 minutes of the first outside read.
    assert audience[0].ts - exposure()[0].ts < 1800


def test_public_data_read_by_everyone_is_quiet(tiny_model, tiny_history):
    alerts = run(
        Pipeline(tiny_model), tiny_history, by_time(normal_day(), exposure("hr/handbook", "public"))
    )
    assert [a for a in alerts if a.kind == "broad_audience"] == []


def test_a_newcomer_reading_own_team_data_is_quiet(tiny_model, tiny_history):
    t0 = START + TEST_DAY * 86400 + 9 * 3600
    rng = random.Random(5)
    newcomer = [
        AccessEvent(
            ts=t0 + i * 300,
            principal="finance-new",
            resource=r,
            principal_group="finance",
            resource_group="finance",
            sensitivity=s,
        )
        for i, (r, s) in enumerate(rng.sample(datasets("finance"), 10))
    ]
    alerts = run(Pipeline(tiny_model), tiny_history, by_time(normal_day(), newcomer))
    assert [a for a in alerts if a.entity == "finance-new"] == []


def test_alerts_do_not_depend_on_batch_boundaries(tiny_model, tiny_history):
    events = by_time(normal_day(), insider(), exposure())
    small = [a.to_json() for a in run(Pipeline(tiny_model), tiny_history, events, batch=7)]
    large = [a.to_json() for a in run(Pipeline(tiny_model), tiny_history, events, batch=5000)]
    key = lambda a: (a["ts"], a["kind"], a["revision"])  # noqa: E731
    assert sorted(small, key=key) == sorted(large, key=key)
    assert small


def test_incident_reads_score_higher_than_ordinary_reads(tiny_model, tiny_history):
    pipeline = Pipeline(tiny_model)
    principals, _ = warm_states(pipeline, tiny_history)
    ordinary = pipeline.observe_principals(normal_day(), principals).scores
    incident = pipeline.observe_principals(insider("sales-2", at=19.0), principals).scores
    assert max(incident[-5:]) > sorted(ordinary)[int(len(ordinary) * 0.99)]


def test_reads_later_than_the_allowed_lateness_are_counted_not_applied(tiny_model):
    pipeline = Pipeline(tiny_model)
    principals: dict = {}
    first = AccessEvent(ts=START + 10_000, principal="p", resource="r")
    late = AccessEvent(
        ts=START + 10_000 - tiny_model.config.allowed_lateness - 1, principal="p", resource="r2"
    )
    result = pipeline.observe_principals([first, late], principals)
    assert (result.scored, result.late) == (1, 1)
    assert principals["p"].windows[1].distinct == 1


@pytest.mark.parametrize("kind", ["broad_reader", "broad_audience"])
def test_swapping_the_model_keeps_state(tiny_model, tiny_history, kind):
    pipeline = Pipeline(tiny_model)
    principals, resources = warm_states(pipeline, tiny_history[:3000])
    before = len(principals) + len(resources)
    pipeline.swap_model(tiny_model)
    assert len(principals) + len(resources) == before
    assert pipeline.model_version == tiny_model.version


def test_idle_entities_are_forgotten_and_active_ones_kept(tiny_model):
    pipeline = Pipeline(tiny_model)
    principals: dict = {}
    ttl = tiny_model.config.idle_ttl_days * 86400
    old = [AccessEvent(ts=START + i, principal=f"gone-{i}", resource="r") for i in range(50)]
    pipeline.observe_principals(old, principals)
    recent = AccessEvent(ts=START + ttl, principal="active", resource="r")
    pipeline.observe_principals([recent], principals)
    removed = pipeline.expire_idle(principals, now=START + ttl + 100)
    assert sorted(removed) == sorted(f"gone-{i}" for i in range(50))
    assert list(principals) == ["active"]
