"""Exposure records: exactly the outside newcomers, bounded, with their cause and end."""

from __future__ import annotations

import random

import pytest
from support.incidents import (
    ESTABLISHED,
    RESOURCE,
    TEST_DAY,
    established_history,
    exposure_with_grant,
)
from support.tinyorg import office_day

from reachwatch.models.exposure import ExposureRecord, readers_csv
from reachwatch.models.followup import FollowUp
from reachwatch.models.grants import split_grants
from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import AccessEvent, parse_timestamp

DAY = 86400.0
_epoch = parse_timestamp


def replay(pipeline: Pipeline, events: list[AccessEvent], batch: int = 40):
    """The resource side with its follow-up, as the stream runs it; published records."""
    followup = FollowUp("resource", quiet_period=pipeline.policy.quiet_period)
    states: dict = {}
    published, messages = [], []
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        reads, grants = split_grants(chunk)
        new = followup.before_batch(reads, states)
        result = pipeline.observe_resources(reads, states)
        done = followup.after_batch(
            reads, grants, states, result.alerts, result.touched, chunk[-1].ts, new
        )
        published += done.exposures
        messages += done.messages
    return followup, published, messages


@pytest.fixture(scope="module")
def story(tiny_model, tiny_history):
    history = sorted(tiny_history + established_history(), key=lambda e: e.ts)
    incident = exposure_with_grant(history)
    rng = random.Random(5)
    later = [e for e in office_day(rng, TEST_DAY + 2) if e.resource != RESOURCE]
    events = sorted(
        history + office_day(random.Random(99), TEST_DAY) + incident.events + later,
        key=lambda e: e.ts,
    )
    events = [
        e
        for e in events
        if not (
            e.ts > incident.reads[0].ts - 3600
            and e.resource == RESOURCE
            and e not in incident.reads
            and e is not incident.grant
        )
    ]
    followup, published, messages = replay(Pipeline(tiny_model), events)
    return incident, followup, published, messages


def test_the_record_lists_exactly_the_outside_newcomers(story):
    incident, _, published, _ = story
    final = [r for r in published if r["resource"] == RESOURCE][-1]
    listed = {r["principal"] for r in final["readers"]}
    assert listed == incident.outside
    assert ESTABLISHED not in listed
    assert not any(r["group"] == "hr" for r in final["readers"])


def test_reader_figures_count_every_read_since_the_first(story):
    incident, _, published, _ = story
    final = [r for r in published if r["resource"] == RESOURCE][-1]
    by_principal = {r["principal"]: r for r in final["readers"]}
    for principal in incident.outside:
        reads = [e for e in incident.reads if e.principal == principal]
        row = by_principal[principal]
        assert row["reads"] == len(reads)
        assert row["records"] == sum(e.records or 0 for e in reads)
        assert row["bytes"] == sum(e.bytes or 0 for e in reads)
    assert final["downloaders"] == len(incident.downloaders)


def test_the_grant_before_the_widening_is_named_as_cause(story):
    incident, _, published, _ = story
    final = [r for r in published if r["resource"] == RESOURCE][-1]
    assert final["cause"]["by"] == incident.grant.principal
    assert final["cause"]["action"] == "share-organization"
    assert "company-wide link" in final["summary"]


def test_the_record_grows_then_closes_with_the_alert(story):
    _, followup, published, messages = story
    mine = [r for r in published if r["resource"] == RESOURCE]
    assert mine[0]["state"] == "open" and mine[-1]["state"] == "closed"
    counts = [r["reader_count"] for r in mine]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    closed = [m for m in messages if m["status"] == "closed" and m["entity"] == RESOURCE]
    assert len(closed) == 1 and closed[0]["alert_id"] == mine[-1]["alert_id"]
    assert mine[-1]["closed"] == closed[0]["ts"]
    assert followup.exposures[RESOURCE].state == "closed"  # kept for queries
    # Watching records of other resources (a stray outside newcomer) are swept too.
    assert RESOURCE in followup.sweep(_epoch(mine[-1]["closed"]) + 8 * DAY)
    assert len(followup.exposures) == 0


def test_a_capped_record_counts_the_overflow():
    record = ExposureRecord("hr/x", "restricted", "hr", cap=2)
    for i in range(5):
        record.note(
            AccessEvent(
                ts=1774368000.0 + i,
                principal=f"p{i}",
                resource="hr/x",
                principal_group="sales",
                resource_group="hr",
            )
        )
    assert len(record.readers) == 2 and record.overflow_reads == 3
    assert "beyond the cap of 2" in record.summary()


def test_a_record_survives_its_own_serialisation():
    record = ExposureRecord("hr/x", "restricted", "hr")
    record.note(
        AccessEvent(
            ts=1774368000.0,
            principal="ana",
            resource="hr/x",
            principal_group="sales",
            resource_group="hr",
            action="export",
            source="vpn",
        )
    )
    record.open("a1", 1774368000.0, "critical", "restricted")
    again = ExposureRecord.from_obj(record.to_obj())
    assert again.to_json() == record.to_json()


def test_summary_reads_like_the_issue_example():
    record = ExposureRecord("people/performance-tracking", "restricted", "People")
    for i in range(3):
        record.note(
            AccessEvent(
                ts=1774368000.0 + 60 * i,
                principal=f"p{i}",
                resource="people/performance-tracking",
                principal_group=f"team{i % 2}",
                resource_group="People",
                sensitivity="restricted",
                action="download" if i == 0 else "read",
            )
        )
    assert record.summary() == (
        "people/performance-tracking (restricted) was read by 3 people of 2 teams outside "
        "People between 2026-03-24 16:00 and 16:02 UTC; 1 downloaded it"
    )


def test_readers_csv_has_one_row_per_reader(story):
    _, _, published, _ = story
    final = [r for r in published if r["resource"] == RESOURCE][-1]
    rows = readers_csv(final).strip().splitlines()
    assert rows[0].startswith("principal,group,") and len(rows) == 1 + final["reader_count"]


def test_a_replayed_read_is_not_counted_twice():
    # At-least-once: after a crash the stream replays the batch it had not committed.
    record = ExposureRecord("hr/x", "restricted", "hr")
    reads = [
        AccessEvent(
            ts=1774368000.0 + i,
            principal="ana",
            resource="hr/x",
            principal_group="sales",
            resource_group="hr",
            records=5,
        )
        for i in range(3)
    ]
    for event in reads + reads:
        record.note(event)
    record = ExposureRecord.from_obj(record.to_obj())  # across a restart, too
    for event in reads:
        record.note(event)
    assert record.readers["ana"].reads == 3 and record.readers["ana"].records == 15


def test_a_stray_reader_before_the_grant_does_not_hide_the_cause():
    from reachwatch.models.grants import Grant

    followup = FollowUp("resource")
    followup.grants.add(
        Grant(ts=1774368000.0, principal="hr-0", resource="hr/x", action="share-organization")
    )
    record = ExposureRecord("hr/x", "restricted", "hr")
    record.note(
        AccessEvent(
            ts=1774368000.0 - 1500,
            principal="early",
            resource="hr/x",
            principal_group="sales",
            resource_group="hr",
        )
    )
    record.open("a1", 1774368000.0 + 300, "high", "restricted")
    assert followup.publishable(record)["cause"]["by"] == "hr-0"
