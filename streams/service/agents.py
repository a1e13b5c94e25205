r"""The worker's agents: thin loops that move data between Kafka and the pure core.

    input topics --ingest (micro-batches)--> dead-letter topic  (bad messages, verbatim)
                                        \--> events-by-principal  (envelopes, partitioned
                                        \--> events-by-resource    by principal / resource)
    events-by-X  --score (micro-batches)--> alerts topic  (keyed by entity)
                                       \--> X-state table (changelog-backed)

Internal topics carry envelopes (``streams.envelopes``): all events of one ingest batch
bound for one partition in one message, because Faust's cost is per message, not per byte.

Order inside a scoring batch matters for at-least-once delivery: alerts are published (and
their delivery awaited) *before* the window state is written, and offsets are committed
after both. A crash in between replays the batch; the replay recomputes the same alerts
with the same ``alert_id``, so a SIEM de-duplicates them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from array import array
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import numpy as np
import orjson
from faust.types import StreamT

from reachwatch.models.alerts import Alert
from reachwatch.models.errors import SchemaError
from reachwatch.models.grants import GRANT_ACTIONS, split_grants
from reachwatch.models.pipeline import BatchResult, Pipeline
from reachwatch.models.windows import decode_state, encode_state, state_watermark
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.messages import read_message
from reachwatch.streams.service.alertlog import AlertLog
from reachwatch.streams.service.deadletter import DeadLetter, redaction_for
from reachwatch.streams.service.envelopes import (
    MAX_ENVELOPE_EVENTS,
    Forwarded,
    decode_envelope,
    encode_envelope,
)
from reachwatch.streams.service.followup import FollowUpStage
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.recent import RecentAlerts
from reachwatch.streams.service.reload import ModelWatcher
from reachwatch.streams.service.settings import Settings
from reachwatch.streams.service.topics import ServiceTables, ServiceTopics, partition_of

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
SCORING_ENVELOPES = 4  # per partition of a side's topic, per scoring batch (see below)
SWEEP_CHUNK = 5000  # entities checked between two yields to the event loop


@dataclass
class Worker:
    """What the agents share: the pipeline (swapped on promotion), topics, tables, metrics."""

    settings: Settings
    pipeline: Pipeline
    watcher: ModelWatcher
    chain: Chain  # adapter → enrichment → pseudonyms, under the settings' limits
    topics: ServiceTopics
    tables: ServiceTables
    metrics: Metrics
    events_in: int = 0
    alerts_out: int = 0
    # What /alerts/recent serves: the alerts this worker published, as published (the
    # app puts the follow-up stage's changelog-backed AlertLog here).
    recent: RecentAlerts | AlertLog = field(default_factory=RecentAlerts)
    # Decoded window state by side and entity, with the table bytes it was decoded from:
    # saves decoding every touched entity's state from JSON on every batch.
    decoded: dict[str, dict[str, tuple[bytes, Any]]] = field(
        default_factory=lambda: {"principal": {}, "resource": {}}
    )
    # Event-time clock per side: the latest event time scored (drives the idle sweep).
    clock: dict[str, float] = field(default_factory=dict)
    sweeping: bool = False
    sweep_task: asyncio.Future[None] | None = None  # a sweep started by table growth
    # Lifecycle, exposure records, grants, alert log and pages (streams/service/followup.py).
    followup: FollowUpStage | None = None

    # -- ingest -----------------------------------------------------------------------
    async def ingest(self, stream: StreamT) -> None:
        # Micro-batches of input messages: their events leave as one envelope per internal
        # partition (see ``envelopes``), not as two messages per event.
        async for events in stream.take_events(self.settings.batch_size, self.stage_wait):
            self.ingest_batch([event.message for event in events])

    def ingest_batch(self, messages: Sequence[Any]) -> None:
        received = time.time()
        partitions = self.settings.partitions
        by_principal: dict[int, list[Forwarded]] = {}
        by_resource: dict[int, list[Forwarded]] = {}
        counter = self.metrics.events_consumed
        for message in messages:
            intake = read_message(message.value, self.chain)
            self.events_in += 1
            if intake.skipped:
                counter.labels(topic=message.topic, outcome="skipped").inc(intake.skipped)
            if intake.rejected is not None:
                self._dead_letter(message, intake.rejected)
            for access in intake.events:
                self.metrics.record_event_lag(access.ts, received)
                item = Forwarded(access, message.topic, received)
                if access.action in GRANT_ACTIONS:  # about the resource only, never scored
                    counter.labels(topic=message.topic, outcome="grant").inc()
                else:
                    by_principal.setdefault(
                        partition_of(access.principal.encode(), partitions), []
                    ).append(item)
                by_resource.setdefault(
                    partition_of(access.resource.encode(), partitions), []
                ).append(item)
        # Buffered sends: the consumer flushes the producer before it commits offsets,
        # so a crash replays rather than loses (at-least-once).
        for topic, groups in ((self.topics.by_principal, by_principal),
                              (self.topics.by_resource, by_resource)):
            for partition, items in groups.items():
                for start in range(0, len(items), MAX_ENVELOPE_EVENTS):
                    chunk = items[start : start + MAX_ENVELOPE_EVENTS]
                    topic.send_soon(value=encode_envelope(chunk), partition=partition)

    def _dead_letter(self, message: Any, error: SchemaError) -> None:
        self.metrics.events_consumed.labels(topic=message.topic, outcome="invalid").inc()
        self.metrics.events_dead_lettered.labels(reason=error.code).inc()
        letter = DeadLetter(
            reason=error.code,
            detail=error.detail,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            value=message.value,
            key=message.key,
            message_ts=message.timestamp,
            rejected_ts=time.time(),
            value_limit=self.settings.max_message_bytes,
            redaction=redaction_for(self.chain.pseudonymizer),  # none when pseudonymising
        )
        self.topics.dead_letters.send_soon(key=letter.wire_key, value=letter.encode())

    # -- scoring ----------------------------------------------------------------------
    # An ingest batch sends at most one envelope per partition of a side's topic, so a
    # scoring batch of SCORING_ENVELOPES x partitions envelopes holds up to about that many
    # ingest batches: under load each touched entity's state is encoded and written once
    # per few ingest batches instead of once per batch (larger batches cost memory and
    # longer event-loop stalls). At low rates the stage wait closes the batch first.
    async def score_principals(self, stream: StreamT) -> None:
        async for batch in stream.take(self.scoring_take, self.stage_wait):
            await self.score_batch(batch, "principal")

    async def score_resources(self, stream: StreamT) -> None:
        async for batch in stream.take(self.scoring_take, self.stage_wait):
            await self.score_batch(batch, "resource")

    @property
    def scoring_take(self) -> int:
        return SCORING_ENVELOPES * self.settings.partitions

    @property
    def stage_wait(self) -> float:
        # Faust's take() waits its whole timeout unless the batch fills, and an event
        # passes two batching stages (ingest, scoring): each gets half the allowed wait.
        return self.settings.batch_max_wait / 2

    async def score_batch(self, batch: Sequence[bytes], side: str) -> None:
        forwarded: list[Forwarded] = []
        for raw in batch:
            try:
                forwarded.extend(decode_envelope(raw))
            except SchemaError as exc:
                # Only reachwatch writes these topics: a bad envelope is a bug or a foreign
                # producer. Count it and go on rather than stop scoring.
                log.error("dropped a bad envelope on the %s side: %s", side, exc)
                self.metrics.events_consumed.labels(
                    topic=self.settings.input_topics[0], outcome="error"
                ).inc()
        if not forwarded:
            return
        events = [f.event for f in forwarded]
        latest = max(e.ts for e in events)
        self.clock[side] = max(self.clock.get(side, latest), latest)
        if side == "principal":
            table, kind = self.tables.principals, "broad_reader"
            keys = {e.principal for e in events}
            observe: Callable[..., BatchResult] = self.pipeline.observe_principals
        else:
            table, kind = self.tables.resources, "broad_audience"
            keys = {e.resource for e in events}
            observe = self.pipeline.observe_resources
        cache = self.decoded[side]
        states: MutableMapping[str, Any] = {}
        for key in keys:
            raw = table.get(key.encode())
            if raw is None:
                continue
            # Popped, not read: observe() mutates states in place, so a batch that fails
            # half-way must not leave them behind; the next try decodes the table's bytes.
            cached = cache.pop(key, None)
            # The table holds the bytes we wrote last; the same object means nobody (a
            # changelog recovery, a rebalance) replaced them since we decoded them.
            if cached is not None and cached[0] is raw:
                states[key] = cached[1]
            else:
                states[key] = decode_state(raw)
        reads, grants = split_grants(events)
        followup = self.followup
        new = followup.before(side, reads, states) if followup is not None else set()
        started = time.perf_counter()
        result = observe(reads, states)
        self.metrics.record_batch(
            side, len(events), time.perf_counter() - started, kind, result.scores
        )
        if side == "principal":
            # Count each event once (it is scored on both sides): on the principal side.
            self._count_outcomes(forwarded, result)
        if result.alerts:
            await self.publish_alerts(result.alerts, forwarded)
        if followup is not None:
            await followup.after(side, reads, grants, states, result, self.clock[side], new,
                                 self._publish_with_retry)
        for key in result.touched:
            state = states[key]
            encoded = encode_state(state)
            table[key.encode()] = encoded
            cache[key] = (encoded, state)
        self._maybe_sweep_soon(len(table))
        # Bounded: a decoded state costs several KB, and unbounded the cache would grow with
        # every entity ever seen. Reads pop and writes re-insert: the first key is the LRU.
        while len(cache) > self.settings.decoded_state_cache:
            del cache[next(iter(cache))]

    def _count_outcomes(self, forwarded: Sequence[Forwarded], result: BatchResult) -> None:
        per_topic: dict[str, int] = {}
        for item in forwarded:
            per_topic[item.topic] = per_topic.get(item.topic, 0) + 1
        # The pipeline reports late events per batch, not per event: with several input
        # topics in one batch they are booked on the busiest one.
        busiest = max(per_topic, key=per_topic.__getitem__)
        counter = self.metrics.events_consumed
        for topic, count in per_topic.items():
            late = result.late if topic == busiest else 0
            counter.labels(topic=topic, outcome="scored").inc(count - late)
            if late:
                counter.labels(topic=topic, outcome="late").inc(late)

    async def publish_alerts(self, alerts: Sequence[Alert], forwarded: Sequence[Forwarded]) -> None:
        received = {(f.event.ts, f.event.principal): f.received for f in forwarded}
        received.update({(f.event.ts, f.event.resource): f.received for f in forwarded})
        for alert in alerts:
            body = alert.to_json()
            await self._publish_with_retry(alert.entity.encode(), orjson.dumps(body))
            self.alerts_out += 1
            self.recent.add(body)
            self.metrics.record_alert(alert.kind, alert.severity, _highest_sensitivity(body))
            started = received.get((alert.ts, alert.entity))
            if started is not None:
                self.metrics.event_to_alert.observe(max(0.0, time.time() - started))

    async def _publish_with_retry(self, key: bytes, value: bytes) -> None:
        limit = self.settings.alert_publish_retries
        attempt = 0
        while True:
            try:
                delivery = await self.topics.alerts.send(key=key, value=value)
                await delivery
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                if limit and attempt > limit:
                    self.metrics.alert_publish_failures.inc()
                    log.error("alert publish failed %d times, giving up: %s", attempt, exc)
                    raise
                self.metrics.alert_publish_retries.inc()
                delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S)) - 1]
                log.warning("alert publish failed (attempt %d), retrying in %.1fs: %s",
                            attempt, delay, exc)
                await asyncio.sleep(delay)

    # -- idle expiry and the entity cap -----------------------------------------------
    async def sweep_idle(self) -> None:
        """Forget entities idle for longer than the model's ``idle_ttl_days``, then, where a
        side still holds more than ``max_entities``, the least recently active beyond it.

        Idleness is judged in event time against the side's clock (the latest event time
        it scored), as the offline replay does; a deletion is a tombstone in the table's
        changelog. Watermarks are read from the state header, without decoding, and the
        sweep yields to the event loop every few thousand entities. The cap bounds memory
        under a flood of new ids (a cardinality attack): an evicted entity that reads
        again starts over, judged by its peers until its own history matures.
        """
        if self.sweeping:
            return
        self.sweeping = True
        try:
            config = self.pipeline.model.config
            for side, table in (("principal", self.tables.principals),
                                ("resource", self.tables.resources)):
                cache, clock = self.decoded[side], self.clock.get(side)
                if clock is not None:  # else nothing scored since start: no "now" yet
                    idle = await _forget_older(table, cache, config.idle_horizon(clock))
                    self._count_forgotten(side, "idle", idle)
                excess = len(table) - self.settings.max_entities
                if excess > 0:
                    cutoff = await _oldest_watermarks_cutoff(table, excess)
                    evicted = await _forget_older(table, cache, cutoff, limit=excess)
                    self._count_forgotten(side, "cap", evicted)
            if self.followup is not None and "resource" in self.clock:
                self.followup.sweep(self.clock["resource"])
        finally:
            self.sweeping = False

    def _count_forgotten(self, side: str, reason: str, count: int) -> None:
        if count:
            self.metrics.entities_expired.labels(side=side, reason=reason).inc(count)
            log.info("forgot %d %s(s): %s", count, side,
                     "idle past the TTL" if reason == "idle" else "over max_entities")

    def _maybe_sweep_soon(self, table_size: int) -> None:
        # A flood can outgrow the cap long before the next timed sweep: sweep now, in the
        # background, once a side is 10 % over.
        if table_size > self.settings.max_entities * 1.1 and not self.sweeping:
            self.sweep_task = asyncio.ensure_future(self.sweep_idle())

    # -- model reload -----------------------------------------------------------------
    async def reload_model(self) -> None:
        model = await asyncio.to_thread(self.watcher.poll)
        if model is not None:
            # Between two batches: scoring is synchronous, so no batch sees two models.
            self.pipeline.swap_model(model)

    def status(self) -> dict[str, Any]:
        return {
            "model_version": self.pipeline.model_version,
            "messages_in": self.events_in,
            "alerts_out": self.alerts_out,
            "principals": len(self.tables.principals),
            "resources": len(self.tables.resources),
        }


async def _forget_older(table: MutableMapping[bytes, bytes],
                        cache: dict[str, tuple[bytes, Any]], horizon: float,
                        limit: int | None = None) -> int:
    """Delete entities whose watermark is before ``horizon`` (at most ``limit``)."""
    forgotten = 0
    keys = list(table.keys())
    for start in range(0, len(keys), SWEEP_CHUNK):
        for key in keys[start : start + SWEEP_CHUNK]:
            raw = table.get(key)
            # Checked and deleted in one synchronous step: a batch that scored the entity
            # since the snapshot has moved its watermark past the horizon.
            if raw is not None and state_watermark(raw) < horizon:
                del table[key]
                cache.pop(key.decode(), None)
                forgotten += 1
                if limit is not None and forgotten >= limit:
                    return forgotten
        await asyncio.sleep(0)
    return forgotten


async def _oldest_watermarks_cutoff(table: MutableMapping[bytes, bytes], count: int) -> float:
    """A horizon below which lie (about) the ``count`` oldest watermarks of ``table``."""
    marks = array("d")
    for start, key in enumerate(list(table.keys())):
        raw = table.get(key)
        if raw is not None:
            marks.append(state_watermark(raw))
        if start % SWEEP_CHUNK == SWEEP_CHUNK - 1:
            await asyncio.sleep(0)
    if not marks:
        return -math.inf
    values = np.frombuffer(marks, dtype=np.float64)
    kth = float(np.partition(values, min(count, len(values)) - 1)[min(count, len(values)) - 1])
    return math.nextafter(kth, math.inf)  # "before the horizon" includes the k-th itself


def _highest_sensitivity(alert: dict[str, Any]) -> str:
    order = ("public", "internal", "confidential", "restricted")
    found = [
        item.get("sensitivity")
        for section in ("evidence", "sample")
        for item in alert.get(section) or ()
        if isinstance(item, dict)
    ]
    # Alert.to_json flattens its context: the triggering event's sensitivity is top-level.
    found.append(alert.get("sensitivity"))
    ranked = [order.index(s) for s in found if s in order]
    return order[max(ranked)] if ranked else "internal"


def register_agents(app: faust.App, worker: Worker) -> None:
    """Attach the worker's loops to ``app``."""
    topics = worker.topics
    app.agent(topics.inputs, name="reachwatch.ingest")(worker.ingest)
    app.agent(topics.by_principal, name="reachwatch.score_principals")(worker.score_principals)
    app.agent(topics.by_resource, name="reachwatch.score_resources")(worker.score_resources)
    app.timer(worker.settings.idle_sweep_interval, name="reachwatch.sweep_idle")(
        worker.sweep_idle
    )
    if worker.watcher.follows_promotions:
        app.timer(worker.settings.reload_poll_interval, name="reachwatch.reload_model")(
            worker.reload_model
        )

    @app.on_partitions_revoked.connect
    async def forget_decoded(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        # Entities of revoked partitions may move to another worker: drop their decoded
        # copies (the identity check would skip them anyway; this bounds memory).
        for cache in worker.decoded.values():
            cache.clear()

    @app.task
    async def declare_outputs() -> None:
        for topic in topics.declared_outputs():
            await topic.maybe_declare()
