"""Exposure records from log files: the after-the-fact investigation.

``replay_exposures`` runs the resource side of the streaming logic over files in event
time (the same pipeline, alert policy, exposure tracker and grant log as a worker) and
returns every exposure record it published, latest state per resource and alert: what
``reachwatch exposure-report --model M FILE...`` prints. Only the resource side is
replayed: exposures are ``broad_audience`` alerts, and the principal side cannot change
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reachwatch.models.followup import FollowUp
from reachwatch.models.grants import split_grants
from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import AccessEvent
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.offline.replay import BATCH_SIZE, SWEEP_INTERVAL, Tally, collect_events
from reachwatch.streams.offline.statestore import StateStore


def replay_exposures(
    paths: Sequence[Path],
    pipeline: Pipeline,
    chain: Chain,
    *,
    tally: Tally | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[dict[str, Any]]:
    """Published exposure records (the last of each alert), in the order they closed/opened."""
    tally = tally if tally is not None else Tally()
    grants: list[AccessEvent] = []
    reads = sorted(
        (
            e
            for batch in collect_events(paths, chain, tally, grants=grants)
            for e in batch
        ),
        key=lambda e: e.ts,
    )
    # Grants and reads in one event-time order: a grant is filed when its batch comes.
    merged = sorted([*reads, *grants], key=lambda e: e.ts)
    followup = FollowUp("resource", quiet_period=pipeline.policy.quiet_period)
    pipeline.use_grants(followup.grants)  # one log: the detector's and the report's causes
    states = StateStore()
    latest: dict[str, dict[str, Any]] = {}
    next_sweep: float | None = None
    for start in range(0, len(merged), batch_size):
        chunk = merged[start : start + batch_size]
        batch_reads, batch_grants = split_grants(chunk)
        now = chunk[-1].ts
        if next_sweep is None or now >= next_sweep:
            pipeline.expire_idle(states, now)
            followup.sweep(now)
            next_sweep = now + SWEEP_INTERVAL
        new = followup.before_batch(batch_reads, states)
        if batch_reads:
            result = pipeline.observe_resources(chunk, states)  # files the grants first
            alerts, touched = result.alerts, result.touched
        else:
            alerts, touched = [], set()
        done = followup.after_batch(batch_reads, batch_grants, states, alerts, touched, now, new)
        states.flush()
        for record in done.exposures:
            latest[record["alert_id"]] = record
    # Still open at the end of the files: their latest state, cause recomputed.
    for record in followup.exposures.values():
        if record.state == "open" and record.alert_id is not None:
            latest[record.alert_id] = followup.publishable(record)
    return list(latest.values())


def pick(
    records: Sequence[dict[str, Any]], resource: str | None, alert_id: str | None
) -> dict[str, Any] | None:
    """The record asked for: by ``alert_id``, else the latest for ``resource``."""
    chosen: dict[str, Any] | None = None
    for record in records:
        if alert_id is not None and record.get("alert_id") != alert_id:
            continue
        if resource is not None and record.get("resource") != resource:
            continue
        if chosen is None or (record.get("opened") or "") >= (chosen.get("opened") or ""):
            chosen = record
    return chosen
