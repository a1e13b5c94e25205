"""Offline replay: files -> the streaming pipeline in event-time order -> alert JSON lines.

Used by ``reachwatch replay`` and ``reachwatch train``. Files are read in the order given
(history first, then new days) and each file is sorted by event time, so state is warm
when the interesting part arrives, exactly as a stream that consumed the history would be.

Records are read through the ingest ``Chain`` the stream uses (adapter, enrichment,
pseudonyms, field and nesting limits); a file line is not a stream message, so its size is
bounded by ``ingest.files``' line limit, not by ``max_message_bytes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from reachwatch.models.alerts import Alert
from reachwatch.models.forked import map_forked
from reachwatch.models.grants import GRANT_ACTIONS
from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import AccessEvent
from reachwatch.models.sides import SIDES, Side
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.files import Outcome, read_files
from reachwatch.streams.offline.statestore import StateStore

BATCH_SIZE = 2000
SWEEP_INTERVAL = 86400.0


@dataclass
class Tally:
    """What happened to every input record (the CLI's one-line JSON summary)."""

    events: int = 0
    accepted: int = 0
    skipped: int = 0
    grants: int = 0  # permission changes: kept for exposure causes, never scored
    late: int = 0
    expired: int = 0  # idle entities forgotten
    rejected: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    alerts_by_kind: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "accepted": self.accepted,
            "skipped": self.skipped,
            "grants": self.grants,
            "late": self.late,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "alerts": self.alerts,
            "alerts_by_kind": dict(sorted(self.alerts_by_kind.items())),
            "expired_entities": self.expired,
        }


def collect_events(
    paths: Sequence[Path],
    chain: Chain,
    tally: Tally,
    rejects: IO[bytes] | None = None,
    grants: list[AccessEvent] | None = None,
    keep_grants: bool = False,
) -> Iterator[list[AccessEvent]]:
    """Per input file, its valid reads (through ``chain``) in event-time order; counts
    everything else. Grant events (``models.grants``) are not reads: they go to ``grants``
    when given, or stay among the reads with ``keep_grants`` (``Pipeline.observe`` and
    ``training.fit`` file them for the reads after them)."""
    for path in paths:
        events: list[AccessEvent] = []
        for outcome in read_files([path], chain):
            tally.events += 1
            _count(outcome, events, tally, rejects, path, events if keep_grants else grants)
        events.sort(key=lambda e: e.ts)
        yield events


def _count(
    outcome: Outcome,
    events: list[AccessEvent],
    tally: Tally,
    rejects: IO[bytes] | None,
    path: Path,
    grants: list[AccessEvent] | None = None,
) -> None:
    if outcome.error is not None:
        tally.rejected[outcome.error.code] += 1
        if rejects is not None:
            row = {
                "file": str(path),
                "line": outcome.line,
                "reason": outcome.error.code,
                "detail": outcome.error.detail,
                "raw": outcome.raw,
            }
            rejects.write(orjson.dumps(row) + b"\n")
    elif outcome.event is None:
        tally.skipped += 1
    elif outcome.event.action in GRANT_ACTIONS:
        tally.grants += 1
        if grants is not None:
            grants.append(outcome.event)
    else:
        tally.accepted += 1
        events.append(outcome.event)


class _SideReplay:
    """One side of the pipeline (principals or resources) over the replay's chunks."""

    def __init__(self, pipeline: Pipeline, side: Side) -> None:
        self.pipeline = pipeline
        self.side = side
        self.states = StateStore()

    def step(self, chunk: list[AccessEvent], sweep: bool) -> tuple[list[Alert], int, int]:
        """(alerts, late events, expired entities) of one chunk."""
        expired = 0
        if sweep:  # once per event-time day, like the stream's periodic sweep
            idle = self.pipeline.idle(self.states.watermarks(), chunk[-1].ts)
            for key in idle:
                del self.states[key]
            expired = len(idle)
        result = self.pipeline.observe(self.side, chunk, self.states)
        self.states.flush()
        return result.alerts, result.late, expired


def _chunks(
    batches: Iterable[list[AccessEvent]], batch_size: int
) -> Iterator[tuple[list[AccessEvent], bool]]:
    """(chunk, whether the daily idle sweep runs before it), in the stream's batch shape."""
    next_sweep = None
    for events in batches:
        for start in range(0, len(events), batch_size):
            chunk = events[start : start + batch_size]
            now = chunk[-1].ts
            sweep = next_sweep is None or now >= next_sweep
            if sweep:
                next_sweep = now + SWEEP_INTERVAL
            yield chunk, sweep


def _replay_side(
    batches: list[list[AccessEvent]], pipeline: Pipeline, side: Side, batch_size: int
) -> list[tuple[int, list[Alert], int, int]]:
    """A whole side in one go: (chunk index, alerts, late, expired) of every chunk."""
    replay = _SideReplay(pipeline, side)
    return [
        (index, *replay.step(chunk, sweep))
        for index, (chunk, sweep) in enumerate(_chunks(batches, batch_size))
    ]


def run_replay(
    batches: Iterable[list[AccessEvent]],
    pipeline: Pipeline,
    tally: Tally,
    on_alert: Callable[[Alert], None],
    batch_size: int = BATCH_SIZE,
    jobs: int = 1,
) -> None:
    """Drive the pipeline over ordered events, in the stream's micro-batch shape.

    With ``jobs`` >= 2 the two sides run in forked processes (``models.forked``): every
    batch is read first, and the alerts come out at the end, in the same order and with
    the same content as with one job.
    """
    if jobs >= 2:
        everything = list(batches)  # inherited by the side processes, never pickled
        per_side = map_forked(
            lambda side, _: _replay_side(everything, pipeline, side, batch_size),
            SIDES,
            jobs=jobs,
        )
        steps: Iterable[tuple[tuple[Any, ...], ...]] = zip(*per_side, strict=True)
    else:
        sides = [_SideReplay(pipeline, side) for side in SIDES]
        steps = (
            tuple((index, *side.step(chunk, sweep)) for side in sides)
            for index, (chunk, sweep) in enumerate(_chunks(batches, batch_size))
        )
    for per_side in steps:
        alerts: list[Alert] = []
        for side, (_, side_alerts, late, expired) in zip(SIDES, per_side, strict=True):
            if side.books_events:
                tally.late += late
            tally.expired += expired
            alerts += side_alerts
        for alert in sorted(alerts, key=lambda a: (a.ts, a.kind)):
            tally.alerts += 1
            tally.alerts_by_kind[alert.kind] += 1
            on_alert(alert)
