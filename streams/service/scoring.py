"""Scoring one side (principals or resources): envelopes -> aligned events -> the pure core.

Per internal partition, envelopes report the frontier of the input sources their senders
read (``streams.service.alignment``); events wait in a release buffer until that frontier
passes them and leave in event-time order, so every entity sees its reads in the order the
offline replay sorts them, whichever input partition each came from. A read more than
``allowed_lateness`` behind the frontier already released is late: counted per side and
logged with a sample, never silently dropped.

Order keeps at-least-once delivery: a step's alerts are published and awaited, the window
states it changed stay decoded and dirty (``statecache``), and a checkpoint writes them all
and awaits their changelog writes (``checkpoint``); only the envelopes whose events all went
through before a checkpoint settled are acknowledged (``agents``). A crash in between
replays them; the replay recomputes the same alerts with the same ``alert_id``.

A crash while a batch's states settle leaves some of them durable and others not. So each
state records which input it has applied (``models.progress``): per input source, claims
"every event up to this offset and this event time is in this state", made when the state
is written (``SideScorer._record_positions`` says why they hold). Replayed events a state
already holds are skipped as repeats; the others are applied as the first time, so the
entity ends as if there had been no crash.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reachwatch.models.errors import SchemaError
from reachwatch.models.grants import split_grants
from reachwatch.models.pipeline import BatchResult, Pipeline
from reachwatch.models.progress import AppliedInput
from reachwatch.models.sides import PRINCIPAL, RESOURCE, Side
from reachwatch.streams.service.alignment import IDLE, UNKNOWN, UpstreamFrontiers
from reachwatch.streams.service.envelopes import Forwarded, read_envelope
from reachwatch.streams.service.followup import FollowUpStage
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.publisher import AlertPublisher
from reachwatch.streams.service.release import ReleaseBuffer
from reachwatch.streams.service.statecache import DecodedStates
from reachwatch.streams.service.topics import partition_of, settle

log = logging.getLogger(__name__)

LATE_SAMPLE_INTERVAL_S = 60.0  # at most one logged sample of late reads per side per minute
LATE_SAMPLE_SIZE = 3


def count_outcomes(metrics: Metrics, forwarded: Sequence[Forwarded], result: BatchResult) -> None:
    """Input-topic counters of one scored batch (scored or late)."""
    per_topic: dict[str, int] = {}
    for item in forwarded:
        per_topic[item.topic] = per_topic.get(item.topic, 0) + 1
    late_ids = {id(e) for e in result.late_events}
    late_per_topic: dict[str, int] = {}
    for item in forwarded:
        if id(item.event) in late_ids:
            late_per_topic[item.topic] = late_per_topic.get(item.topic, 0) + 1
    counter = metrics.events_consumed
    for topic, count in per_topic.items():
        late = late_per_topic.get(topic, 0)
        counter.labels(topic=topic, outcome="scored").inc(count - late)
        if late:
            counter.labels(topic=topic, outcome="late").inc(late)


@dataclass
class Lane:
    """One internal partition: its upstream frontiers, held events, frontier released.

    ``passed``: the frontier of the latest release; every event that had arrived at or
    before it has been released (``released`` is the highest such frontier so far, a
    frontier can step back).
    """

    upstream: UpstreamFrontiers = field(default_factory=UpstreamFrontiers.empty)
    held: ReleaseBuffer[Forwarded] = field(default_factory=ReleaseBuffer)
    released: float = UNKNOWN
    passed: float = UNKNOWN


class SideScorer:
    """Aligns, scores and keeps the state of one side."""

    def __init__(
        self,
        side: Side,
        pipeline: Callable[[], Pipeline],
        table: MutableMapping[bytes, bytes],
        publisher: AlertPublisher,
        metrics: Metrics,
        cache_size: int,
        error_topic: str,
        scored_log: Path | None = None,
        followup: Callable[[], FollowUpStage | None] = lambda: None,
        checkpoint_interval: float = 0.0,
        partitions: int | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.side = side
        self.followup = followup  # a getter: the app attaches the stage after the worker
        self.pipeline = pipeline  # a getter: promotion swaps the pipeline's model
        self.table = table
        self.publisher = publisher
        self.metrics = metrics
        self.cache = DecodedStates(cache_size, rebuild=self._rebuild)
        # Write-behind (``statecache``): a checkpoint every ``checkpoint_interval`` seconds
        # of ``now`` (0 = after every step), or once more than half the cache is dirty.
        self.checkpoint_interval = checkpoint_interval
        self.partitions = partitions  # of the side's table: which partition a key is in
        self._now = now
        self._checkpointed = now()
        self.checkpoints = 0  # settled so far
        self.error_topic = error_topic
        self.lanes: dict[Any, Lane] = {}
        # Event-time clock: the latest event time scored (drives the idle sweep).
        self.clock: float | None = None
        self._scored_log: IO[str] | None = scored_log.open("a") if scored_log else None
        self._late_logged = -math.inf
        self._repeats_logged = -math.inf
        # The lane of each event of the last release, by identity (for ``score``).
        self._lane_of: dict[int, Lane] = {}

    @property
    def name(self) -> str:
        return self.side.name

    # -- intake ------------------------------------------------------------------------
    def take(
        self,
        holders: Sequence[Any],
        message_of: Callable[[Any], Any] = lambda h: h,
    ) -> None:
        """Put the envelopes of ``holders`` into their partitions' release buffers."""
        for holder in holders:
            message = message_of(holder)
            lane = self.lanes.get(message.partition)
            if lane is None:
                lane = self.lanes[message.partition] = Lane()
            try:
                envelope = read_envelope(message.value)
            except SchemaError as exc:
                # Only reachwatch writes these topics: a bad envelope is a bug or a foreign
                # producer. Count it and go on rather than stop scoring.
                log.error("dropped a bad envelope on the %s side: %s", self.side.name, exc)
                self.metrics.events_consumed.labels(topic=self.error_topic, outcome="error").inc()
                lane.held.put(holder, [], key=id(holder))
                continue
            # Less the events an earlier reading of their input partition already sent (the
            # input commit lagged; streams/service/forwarding.py): repeats, not late reads.
            items = lane.upstream.admit(envelope)
            if len(items) < len(envelope.items):
                self._report_repeats(len(envelope.items) - len(items))
            lane.held.put(holder, [(f.event.ts, f) for f in items], key=id(holder))

    def release(self) -> tuple[list[Forwarded], float | None, list[Any]]:
        """(events the frontiers passed, in order; the watermark they are judged against;
        holders emptied).

        The watermark is the smallest frontier any partition with events here had released
        before (None if one had released nothing): a read behind it came after reads it
        should have preceded.
        """
        out: list[Forwarded] = []
        done: list[Any] = []
        marks: list[float] = []
        lane_of = self._lane_of = {}
        for lane in self.lanes.values():
            frontier = lane.upstream.frontier()
            items = lane.held.release(frontier)
            lane.passed = frontier
            if items:
                out.extend(items)
                marks.append(lane.released)
                for item in items:
                    lane_of[id(item)] = lane
            # An all-idle upstream releases everything; what was released is then the
            # latest event time, not IDLE (or every later read would be late).
            reached = (
                max((f.event.ts for f in items), default=UNKNOWN) if frontier == IDLE else frontier
            )
            if reached > lane.released:
                lane.released = reached
            done.extend(lane.held.done())
        if len(self.lanes) > 1 and out:
            out.sort(key=lambda f: f.event.ts)  # stable: each partition's order is kept
        held = sum(len(lane.held) for lane in self.lanes.values())
        self.metrics.events_held.labels(stage=self.side.name).set(held)
        # A partition that has released nothing yet (a restart reads each from its own
        # committed offset) holds the watermark back: its reads are judged against their
        # entities only, never against a partition that has caught up further.
        lowest = min(marks, default=UNKNOWN)
        return out, (lowest if lowest > UNKNOWN else None), done

    # -- scoring -----------------------------------------------------------------------
    async def score(self, forwarded: Sequence[Forwarded], watermark: float | None) -> BatchResult:
        """Score ``forwarded``, publish its alerts, keep its states durably."""
        if not forwarded:
            return BatchResult()
        side, pipeline = self.side, self.pipeline()
        states = self.cache.load(self.table, {side.entity(f.event) for f in forwarded})
        forwarded = self._unapplied(forwarded, states)
        if not forwarded:
            self.cache.put_back(self.table, states, ())
            return BatchResult()
        events = [f.event for f in forwarded]
        latest = max(e.ts for e in events)
        self.clock = latest if self.clock is None else max(self.clock, latest)
        reads, grants = split_grants(events)
        followup = self.followup()
        new = followup.before(side.name, reads, states) if followup is not None else set()
        if side is RESOURCE and followup is not None:
            # The detector judges reads since a grant (``FeatureBuilder._granted``) with the
            # follow-up stage's grant log; ``observe`` files the batch's grants in event
            # order (idempotent: the follow-up files them again, a replay once more).
            pipeline.use_grants(followup.grant_log)
        started = time.perf_counter()
        result = pipeline.observe(side, events, states, watermark)
        self.metrics.record_batch(
            side.name, len(events), time.perf_counter() - started, side.kind, result.scores
        )
        self.metrics.events_scored.labels(side=side.name).inc(result.scored)
        if side is PRINCIPAL:  # each event is scored on both sides: counted once, here
            count_outcomes(self.metrics, forwarded, result)
        if result.late:
            self._report_late(result, watermark, forwarded)
        if result.alerts:
            await self.publisher.publish(result.alerts, forwarded)
        if followup is not None:
            await followup.after(side.name, reads, grants, states, result, self.clock, new,
                                 self.publisher.send)
        if self._scored_log is not None:
            # Before the states settle: a stop while they settle can leave some of them
            # durable, and the replay then finds those reads already applied (late against
            # the entity), so logged after the settle they would be missing though scored.
            late = {id(e) for e in result.late_events}
            self._scored_log.write(
                "".join(
                    f"{side.name}\t{e.ts!r}\t{e.principal}\t{e.resource}\n"
                    for e in events
                    if id(e) not in late
                )
            )
            self._scored_log.flush()
        positions = self._record_positions(forwarded, states, result.touched)
        self.cache.keep(self.table, states, result.touched,
                        self._journal(reads, watermark, positions, result.touched))
        self.metrics.dirty_states.labels(side=side.name).set(len(self.cache.dirty))
        return result

    def _journal(
        self,
        reads: Sequence[Any],
        watermark: float | None,
        positions: dict[str, list[tuple[str, int, float]]],
        touched: set[str],
    ) -> dict[str, tuple[list[Any], float | None, list[tuple[str, int, float]]]]:
        """Per touched entity, what ``_rebuild`` needs to apply this step again: its reads,
        the watermark they were judged against, the positions recorded."""
        entity = self.side.entity
        journal: dict[str, tuple[list[Any], float | None, list[tuple[str, int, float]]]] = {}
        for event in reads:
            key = entity(event)
            if key in touched:
                entry = journal.get(key)
                if entry is None:
                    entry = journal[key] = ([], watermark, positions.get(key, []))
                entry[0].append(event)
        return journal

    def _rebuild(self, key: str, state: Any, steps: list[Any]) -> Any:
        """``key``'s state as the steps since its last write left it, from the state its
        table bytes hold (``statecache``): their alerts were published already."""
        states = {} if state is None else {key: state}
        pipeline = self.pipeline()
        for reads, watermark, positions in steps:
            pipeline.observe(self.side, reads, states, watermark)
            rebuilt = states.get(key)
            if rebuilt is not None:
                for source, offset, frontier in positions:
                    if rebuilt.applied is None:
                        rebuilt.applied = AppliedInput()
                    rebuilt.applied.advance(source, offset, frontier)
        log.info("rebuilt a %s state from its table bytes and %d step(s) since",
                 self.side.name, len(steps))
        return states.get(key)

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint_due(self) -> bool:
        """Whether the dirty states are to be written now (``checkpoint``)."""
        return (
            self.checkpoint_interval <= 0
            or len(self.cache.dirty) > self.cache.cache.capacity / 2
            or self._now() - self._checkpointed >= self.checkpoint_interval
        )

    async def checkpoint(self) -> int:
        """Write every dirty state to the table and wait until the broker acknowledged all
        the table's writes (evictions' too); how many states were written.

        Everything the steps so far applied is then durable: the envelopes they emptied
        may be acknowledged. Tried again after raising, it writes what is still dirty and
        settles again; a step is never applied twice."""
        started = time.perf_counter()
        self._checkpointed = self._now()
        written = self.cache.write(self.table)
        self.metrics.dirty_states.labels(side=self.side.name).set(len(self.cache.dirty))
        await settle(self.table)
        self.checkpoints += 1
        name = self.side.name
        self.metrics.checkpoints.labels(side=name).inc()
        self.metrics.checkpoint_states.labels(side=name).observe(written)
        self.metrics.checkpoint_duration.labels(side=name).observe(time.perf_counter() - started)
        return written

    def _unapplied(
        self, forwarded: Sequence[Forwarded], states: dict[str, Any]
    ) -> Sequence[Forwarded]:
        """``forwarded`` less the events their entity's stored state has applied already
        (replayed after a crash that left that state durable): repeats, counted as such."""
        entity = self.side.entity
        kept: list[Forwarded] = []
        # The same read sent by two readings of its source, both in this batch: the later
        # reading started from an input commit that lagged what the earlier one had sent,
        # whose claim of its last step never went out (``forwarding``). All reads of one
        # message come from one reading, so the message's position and the reading that
        # sent it first tell them apart (two equal reads of one message both count).
        sent_by: dict[tuple[str, int], str] = {}
        for item in forwarded:
            if item.epoch and item.offset >= 0:
                first = sent_by.setdefault((item.source, item.offset), item.epoch)
                if first != item.epoch:
                    continue
            state = states.get(entity(item.event))
            applied = state.applied if state is not None else None
            if applied and applied.covers(item.source, item.offset, item.event.ts):
                continue
            kept.append(item)
        if len(kept) < len(forwarded):
            self._report_repeats(len(forwarded) - len(kept))
            return kept
        return forwarded

    def _record_positions(
        self, forwarded: Sequence[Forwarded], states: dict[str, Any], touched: set[str]
    ) -> dict[str, list[tuple[str, int, float]]]:
        """Record in each state about to be written which input it has applied
        (``models.progress``).

        For an event ``e`` of source ``S`` applied now: its sender had sent every event of
        ``S`` it read before ``e`` (at a lower offset) up to the frontier it reported with
        ``e``, so they reached this lane before ``e`` (one partition, in order; an earlier
        reading of ``S`` sent what it read before this one started); the lane has
        released every event that reached it up to the frontier it passed; an event
        released is applied to its entity in that batch. So every event of ``S`` up to
        ``e``'s offset and the lower of the two frontiers is in the state written now (or
        in one written before: acknowledged envelopes are not read again).
        """
        entity, lane_of = self.side.entity, self._lane_of
        recorded: dict[str, list[tuple[str, int, float]]] = {}
        for item in forwarded:
            lane = lane_of.get(id(item))
            if lane is None or item.offset < 0:
                continue  # not from this scorer's lanes, or no input position
            frontier = min(item.frontier, lane.passed)
            if frontier < item.event.ts:
                continue  # a frontier unknown: no claim (not even for the event itself)
            key = entity(item.event)
            if key not in touched:
                continue
            state = states[key]
            if state.applied is None:
                state.applied = AppliedInput()
            state.applied.advance(item.source, item.offset, frontier)
            recorded.setdefault(key, []).append((item.source, item.offset, frontier))
        return recorded

    def _report_repeats(self, count: int) -> None:
        self.metrics.events_repeated.labels(side=self.side.name).inc(count)
        now = time.monotonic()
        if now - self._repeats_logged >= LATE_SAMPLE_INTERVAL_S:
            self._repeats_logged = now
            log.info("%d event(s) forwarded again on the %s side recognised and skipped "
                     "(read again after a restart or a rebalance)", count, self.side.name)

    def _report_late(
        self,
        result: BatchResult,
        watermark: float | None,
        forwarded: Sequence[Forwarded],
    ) -> None:
        self.metrics.events_late.labels(side=self.side.name).inc(result.late)
        now = time.monotonic()
        if now - self._late_logged >= LATE_SAMPLE_INTERVAL_S:
            self._late_logged = now
            # Event times and input positions only: nothing identifying an entity.
            late = {id(e) for e in result.late_events[:LATE_SAMPLE_SIZE]}
            sample = [
                (f.event.ts, f"{f.source}@{f.offset}") for f in forwarded if id(f.event) in late
            ]
            log.warning(
                "%d late read(s) on the %s side (watermark %s, allowed lateness %ss), e.g. "
                "at (event time, input position) %s",
                result.late,
                self.side.name,
                watermark,
                self.pipeline().model.config.allowed_lateness,
                sample,
            )

    def forget(self, partitions: set[int] | None = None) -> None:
        """Drop lanes of revoked ``partitions`` (all if None) and the decoded states.

        Dirty states of revoked partitions are dropped, never written: their new owner
        reads again the envelopes not acknowledged, from the state of the last checkpoint.
        Those of partitions kept stay (the table does not hold them)."""
        count = self.partitions
        if partitions is None:
            self.lanes.clear()
            dropped = self.cache.drop()
        else:
            for partition in partitions:
                self.lanes.pop(partition, None)
            revoked = partitions
            dropped = self.cache.drop(
                None if count is None else lambda key: partition_of(key.encode(), count) in revoked
            )
        if dropped:
            log.info("dropped %d %s state(s) changed since the last checkpoint (revoked: "
                     "read again by their new owner)", dropped, self.side.name)
        self.metrics.dirty_states.labels(side=self.side.name).set(len(self.cache.dirty))
