r"""The worker's agents: thin loops that move data between Kafka and the pure core.

    input topics --ingest (forwarding)--> dead-letter topic  (bad messages, verbatim)
                                     \--> events-by-principal  (envelopes, partitioned
                                     \--> events-by-resource    by principal / resource)
    events-by-X  --score (scoring)--> alerts topic  (keyed by entity)
                                 \--> X-state table (changelog-backed)

Each loop hands its messages to the module that owns the step (``forwarding``,
``scoring``), awaits what that step must deliver, and only then acknowledges the messages
the step says are done (``noack_take``: Faust's ``take`` would acknowledge a batch as soon
as the loop body returns, even for events still waiting for the aligned watermark).
Internal topics carry envelopes (``envelopes``): all events of one step bound for one
partition in one message, because Faust's cost is per message, not per byte.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP, StreamT

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.sides import PRINCIPAL, RESOURCE
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.service.ackorder import AckOrder
from reachwatch.streams.service.alertlog import AlertLog
from reachwatch.streams.service.delivery import deliver_all
from reachwatch.streams.service.followup import FollowUpStage
from reachwatch.streams.service.forwarding import IDLE_TICKS, Forwarder, source_of
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.publisher import AlertPublisher
from reachwatch.streams.service.recent import RecentAlerts
from reachwatch.streams.service.reload import ModelWatcher
from reachwatch.streams.service.rewind import Rewinds
from reachwatch.streams.service.scoring import SideScorer
from reachwatch.streams.service.settings import Settings
from reachwatch.streams.service.sweep import Sweeper
from reachwatch.streams.service.topics import ServiceTables, ServiceTopics, changelogs_known

log = logging.getLogger(__name__)

# An ingest step sends at most one envelope per partition of a side's topic, so a scoring
# batch of SCORING_ENVELOPES x partitions envelopes holds up to about that many ingest
# steps: under load each touched entity's state is written once per several steps.
SCORING_ENVELOPES = 4
WAITING_LOG_INTERVAL_S = 10.0
# A broker question between messages (start and end offsets) waits at most this long.
BROKER_PROBE_TIMEOUT_S = 5.0
# How long a stopping worker waits for the steps under way (a send retrying against an
# unreachable broker must not hold the stop forever).
DRAIN_TIMEOUT_S = 10.0
# Longest that forwarding waits after an assignment for the input's partition count.
SOURCES_WAIT_S = 30.0
CHANGELOG_RETRY_S = 0.5  # between two asks whether the producer knows the changelogs
STEP_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0)  # between tries of a scoring step that raised


async def _always_known() -> bool:
    return True


def _partition(event: Any) -> tuple[str, int]:
    message = event.message
    return message.topic, message.partition


def _message(event: Any) -> Any:
    return event.message


@dataclass
class Worker:
    """The agents' shared parts: forwarding, the two side scorers, publisher, sweeper."""

    settings: Settings
    pipeline: Pipeline
    watcher: ModelWatcher
    chain: Chain  # adapter → enrichment → pseudonyms, under the settings' limits
    topics: ServiceTopics
    tables: ServiceTables
    metrics: Metrics
    # What /alerts/recent serves: the alerts this worker published, as published (the
    # app puts the follow-up stage's changelog-backed AlertLog here, see ``attach``).
    recent: RecentAlerts | AlertLog = field(default_factory=RecentAlerts)
    # Lifecycle, exposure records, grants, alert log and pages (streams/service/followup.py).
    followup: FollowUpStage | None = None
    consumer: Any = None  # the app's consumer, for pausing partitions (None in unit tests)
    clock: Callable[[], float] = time.monotonic  # what checkpoint intervals are timed by

    def __post_init__(self) -> None:
        s = self.settings
        self.forwarder = Forwarder(s, self.chain, self.topics, self.metrics)
        self.publisher = AlertPublisher(
            self.topics.alerts, self.metrics, self.recent, retries=s.alert_publish_retries
        )
        self.principals = self._scorer(PRINCIPAL, self.tables.principals)
        self.resources = self._scorer(RESOURCE, self.tables.resources)
        self.sweeper = Sweeper((self.principals, self.resources), s.max_entities, self.metrics)
        self._ingest_stream: StreamT | None = None
        self._ingest_lock = asyncio.Lock()
        # One step at a time per loop; ``drain`` takes them all as the worker stops.
        self._score_locks = {side.name: asyncio.Lock() for side in (PRINCIPAL, RESOURCE)}
        # Acknowledgements in offset order per partition (streams/service/ackorder.py).
        self.ack_order = AckOrder()
        self._score_orders = {side.name: AckOrder() for side in (PRINCIPAL, RESOURCE)}
        # Per side: envelopes done (in offset order) that wait for the checkpoint covering
        # them to settle before they are acknowledged, and the stream to acknowledge them on.
        self._waiting: dict[str, list[Any]] = {side.name: [] for side in (PRINCIPAL, RESOURCE)}
        self._score_streams: dict[str, StreamT] = {}
        # Per agent: partitions read again from a message Faust never handed over.
        self.rewinds = {stage: self._rewinds(stage) for stage in ("ingest", PRINCIPAL.name,
                                                                   RESOURCE.name)}
        self._paused: dict[str, Any] = {}  # source -> TP
        self._tps: dict[str, Any] = {}
        self._described = -math.inf
        # First offset to read per source, asked once per assignment (for unseen sources'
        # backlogs, and logged: where a restarted worker resumed).
        self._starts: dict[str, int | None] = {}
        self._acked: dict[str, int] = {}  # highest input offset acknowledged, per source
        self._assigned_at: float | None = None  # when the last assignment came
        self._generation = 0  # assignments seen: broker answers from an older one are stale
        # Whether the producer knows every changelog's partitions (``topics.changelogs_known``:
        # a table write before it does raises); the app sets the question.
        self.changelogs_ready = False
        self.changelogs_known: Any = _always_known

    def _scorer(self, side: Any, table: Any) -> SideScorer:
        return SideScorer(
            side,
            lambda: self.pipeline,
            table,
            self.publisher,
            self.metrics,
            self.settings.decoded_state_cache,
            self.settings.input_topics[0],
            scored_log=self.settings.scored_log_file,
            followup=lambda: self.followup,
            checkpoint_interval=self.settings.checkpoint_interval,
            partitions=self.settings.partitions,
            now=self.clock,
        )

    def _rewinds(self, stage: str) -> Rewinds:
        metrics = self.metrics

        def no_records(key: tuple[str, int], start: int, end: int) -> bool:
            check = getattr(self.consumer, "no_records", None)
            return bool(check(key, start, end)) if check is not None else False

        def start(key: tuple[str, int]) -> int | None:
            starts_at = getattr(self.consumer, "starts_at", None)
            return starts_at(key) if starts_at is not None else None

        def generation() -> int | None:
            app = getattr(self.consumer, "app", None)
            return getattr(app, "consumer_generation_id", None)

        return Rewinds(
            no_records,
            start,
            generation,
            on_rewind=lambda topic: metrics.partitions_read_again.labels(stage=stage).inc(),
            on_lost=lambda topic, count: metrics.messages_never_handed.labels(
                stage=stage).inc(count),
        )

    def _acknowledged(self, holder: Any) -> None:
        """Tell the consumer, whose commit follows what the agents acknowledged."""
        acknowledged = getattr(self.consumer, "acknowledged", None)
        if acknowledged is not None:
            message = holder.message
            acknowledged(message.topic, message.partition, message.offset)

    def _end(self, key: tuple[str, int]) -> int | None:
        """The high watermark of partition ``key`` as the last fetch saw it."""
        try:
            return self.consumer.highwater(TP(*key)) if self.consumer is not None else None
        except Exception:  # revoked meanwhile, or never fetched
            return None

    async def _seek(self, seeks: dict[tuple[str, int], int]) -> None:
        """Read partitions again from the offsets in ``seeks`` (``rewind``)."""
        if not seeks or self.consumer is None:
            return
        try:
            await self.consumer.seek_wait({TP(*key): offset for key, offset in seeks.items()})
        except Exception as exc:  # revoked meanwhile, or the broker away: sought again later
            log.warning("seeking %s back failed: %r", sorted(seeks), exc)

    def attach(self, followup: FollowUpStage) -> None:
        """Run ``followup`` after every scoring batch; /alerts/recent becomes its log."""
        self.followup = followup
        self.recent = self.publisher.recent = followup.log

    # -- ingest -----------------------------------------------------------------------
    async def ingest(self, stream: StreamT) -> None:
        self._ingest_stream = stream
        rewinds = self.rewinds["ingest"]
        async for taken in stream.noack_take(self.ingest_take, self.stage_wait):
            async with self._ingest_lock:
                with rewinds.step():
                    await self._ingest_step(stream, rewinds, taken)

    async def _ingest_step(self, stream: StreamT, rewinds: Rewinds, taken: Any) -> None:
        events, seeks = rewinds.admit(taken, _message)
        for event in events:
            message = event.message
            self._tps[source_of(message)] = TP(message.topic, message.partition)
        self.ack_order.taken(events, _partition)
        dead_letters = self.forwarder.take(events, _message)
        await self._forward(stream, dead_letters)
        await self._seek(seeks)

    async def tick(self) -> None:
        """Between messages: idle partitions and backlogs move the frontier too."""
        held = {(tp.topic, tp.partition) for tp in self._paused.values()}
        for rewinds in self.rewinds.values():
            await self._seek(rewinds.due(self._end, held))
        stream = self._ingest_stream
        if stream is None:
            return
        # Asked of the broker outside the ingest lock: a broker round trip can take long
        # (a rebalance in progress, a slow coordinator), and ingest must not wait on it.
        backlogs = await self._probe_backlogs()
        async with self._ingest_lock:
            if self.forwarder.total_sources == 0 and self._assigned_at is not None:
                self._count_sources()
            self.forwarder.sources.tick(self._paused)
            for source, end in backlogs.items():
                upcoming = self._next_offset(source)
                if source in self._tps and upcoming is not None:  # not revoked while we asked
                    self.forwarder.sources.set_backlog(source, upcoming < end)
            await self._forward(stream, [])
            now = time.monotonic()
            if len(self.forwarder.held) and now - self._described >= WAITING_LOG_INTERVAL_S:
                # Events waiting on a slow partition is the alignment at work; one waiting
                # for long is worth seeing in the log, with whom it waits for.
                self._described = now
                log.info(
                    "%d event(s) wait for the aligned watermark %s; sources %s; paused %s",
                    len(self.forwarder.held),
                    self.forwarder.sources.frontier(),
                    self.forwarder.describe(),
                    sorted(self._paused),
                )

    async def _forward(self, stream: StreamT, dead_letters: list[Any]) -> None:
        out = self.forwarder.release()
        await deliver_all(dead_letters, self.metrics, "dead_letter")
        await deliver_all(out.envelopes, self.metrics, "envelope")
        acked = self._acked
        for holder in self.ack_order.finished(out.done, _partition):
            await stream.ack(holder)
            self._acknowledged(holder)
            message = holder.message
            source = source_of(message)
            if message.offset > acked.get(source, -1):
                acked[source] = message.offset
        self._align_partitions()

    async def _probe_backlogs(self) -> dict[str, int]:
        """Per source: its end offset (the start offsets are kept in ``_starts``).

        Each broker question is bounded by ``BROKER_PROBE_TIMEOUT_S`` and asked again on
        the next tick when it fails; answers from before a rebalance are dropped."""
        consumer = self.consumer
        if consumer is None or not hasattr(consumer, "start_offsets"):
            return {}
        generation = self._generation
        unseen = [tp for s, tp in self._tps.items() if s not in self._starts]
        if unseen:
            starts = await self._ask("start offsets", consumer.start_offsets(unseen))
            if starts is not None and generation == self._generation:
                found = {f"{tp.topic}:{tp.partition}": o for tp, o in starts.items()}
                self._starts.update(found)
                log.info("committed input offsets just after the assignment: %s",
                         dict(sorted(found.items())))
        ends: dict[str, int | None] = {}
        for source, tp in list(self._tps.items()):
            try:
                ends[source] = consumer.highwater(tp)
            except Exception:  # revoked meanwhile
                ends[source] = None
        clocks = self.forwarder.sources.clocks

        def drained(source: str) -> bool:
            end, next_offset = ends[source], self._next_offset(source)
            return end is None or next_offset is None or next_offset >= end

        # Not fetched from yet, or quiet and seemingly read to the end: ask the broker. A
        # fetch's high watermark is only as recent as the partition's last fetch, and the
        # embedded broker can starve a partition's fetches for seconds while the producer
        # still appends to it: taken for idle on that stale end, the partition's next
        # reads would come behind a frontier that ran past them.
        ask = [
            self._tps[s]
            for s in ends
            if s in self._tps and (
                ends[s] is None
                or (s in clocks and clocks[s].silent and s not in self._paused and drained(s))
            )
        ]
        if ask:
            asked = await self._ask("end offsets", consumer.end_offsets(ask))
            for tp, offset in (asked or {}).items():
                source = f"{tp.topic}:{tp.partition}"
                known = ends.get(source)
                ends[source] = offset if known is None else max(known, offset)
        if generation != self._generation:
            return {}
        return {s: end for s, end in ends.items() if end is not None}

    def _next_offset(self, source: str) -> int | None:
        """The input offset ``source`` is to deliver next: after the last one read, else
        where reading started (None while neither is known)."""
        seen = self.forwarder.last_offset.get(source)
        return seen + 1 if seen is not None else self._starts.get(source)

    @staticmethod
    async def _ask(what: str, question: Any) -> Any:
        try:
            return await asyncio.wait_for(question, BROKER_PROBE_TIMEOUT_S)
        except Exception as exc:  # asked again on the next tick
            log.info("%s unavailable (asked again): %r", what, exc)
            return None

    def _align_partitions(self) -> None:
        ahead = self.forwarder.ahead()
        self.metrics.watermark_skew.set(self.forwarder.skew())
        if self.consumer is None:
            return
        pause = [s for s in ahead if s not in self._paused and s in self._tps]
        resume = [s for s in self._paused if s not in ahead]
        # Logged: a paused partition is the alignment at work, and a stuck one a bug.
        if pause or resume:
            log.debug("pausing %s, resuming %s", pause, resume)
        if pause:
            self.consumer.hold([self._tps[s] for s in pause])
            self._paused.update((s, self._tps[s]) for s in pause)
        if resume:
            self.consumer.release([self._paused.pop(s) for s in resume])
        self.metrics.partitions_paused.set(len(self._paused))

    # -- scoring ----------------------------------------------------------------------
    async def score_principals(self, stream: StreamT) -> None:
        await self._score(stream, self.principals)

    async def score_resources(self, stream: StreamT) -> None:
        await self._score(stream, self.resources)

    async def _score(self, stream: StreamT, scorer: SideScorer) -> None:
        lock = self._score_locks[scorer.name]
        rewinds = self.rewinds[scorer.name]
        self._score_streams[scorer.name] = stream
        async for taken in stream.noack_take(self.scoring_take, self.stage_wait):
            async with lock:
                with rewinds.step():
                    events, seeks = rewinds.admit(taken, _message)
                    while not self.changelogs_ready:
                        self.changelogs_ready = await self.changelogs_known()
                        if not self.changelogs_ready:
                            log.info("table changelog partitions not known to the producer yet")
                            await asyncio.sleep(CHANGELOG_RETRY_S)
                    order = self._score_orders[scorer.name]
                    order.taken(events, _partition)
                    scorer.take(events, _message)
                    released, watermark, done = scorer.release()
                    await self._score_until_done(scorer, released, watermark)
                    self._waiting[scorer.name].extend(order.finished(done, _partition))
                    if scorer.checkpoint_due():
                        await self._checkpoint(scorer)
                    await self._seek(seeks)
            self.sweeper.maybe_soon(len(scorer.table), self.ttl)

    async def _score_until_done(self, scorer: SideScorer, released: Any, watermark: Any) -> None:
        """Score ``released``; a step that raises is tried again, never abandoned.

        An agent that raised would be restarted by Faust with its taken messages never
        acknowledged, and the offset-order acknowledgements would then hold back every later
        one of their partitions. The try again starts from the table: a batch takes its
        states out of the decoded cache (``statecache``), so none is left half-applied, and
        the table holds whole states that record what they applied, so the events they
        already hold are skipped as repeats (``scoring``)."""
        await self._until_done(scorer.name, "scoring step",
                               lambda: scorer.score(released, watermark))

    async def _until_done(self, stage: str, what: str, call: Callable[[], Any]) -> None:
        """Await ``call()`` until it does not raise, with back-off, counting each failure."""
        attempt = 0
        while True:
            try:
                await call()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                attempt += 1
                self.metrics.step_failures.labels(stage=stage).inc()
                delay = STEP_RETRY_S[min(attempt, len(STEP_RETRY_S)) - 1]
                log.exception("%s %s failed (attempt %d), trying it again in %.1fs",
                              stage, what, attempt, delay)
                await asyncio.sleep(delay)

    async def _checkpoint(self, scorer: SideScorer) -> None:
        """Checkpoint ``scorer``'s states, then acknowledge the envelopes it covers.

        Called with the side's lock held, so every envelope waiting was applied before the
        checkpoint began. One that raised is tried again (what is still dirty, then the
        settle); envelopes of partitions revoked meanwhile left the waiting list (their new
        owner reads them again) and are never acknowledged."""
        await self._until_done(scorer.name, "checkpoint", scorer.checkpoint)
        covered, self._waiting[scorer.name] = self._waiting[scorer.name], []
        stream = self._score_streams.get(scorer.name)
        for holder in covered:
            if stream is not None:
                await stream.ack(holder)
            self._acknowledged(holder)

    async def checkpoint_quiet(self) -> None:
        """From a timer: checkpoint a side whose input went quiet with states still dirty
        or envelopes waiting (a busy side checkpoints after its steps)."""
        for scorer in (self.principals, self.resources):
            lock = self._score_locks[scorer.name]
            if lock.locked() or not (scorer.cache.dirty or self._waiting[scorer.name]):
                continue
            if scorer.checkpoint_due():
                async with lock:
                    await self._checkpoint(scorer)

    async def drain(self, timeout: float) -> bool:
        """Let the steps under way finish, then start no more (the worker is stopping).

        Faust cancels the agents as it stops and commits what was acknowledged after that:
        a step cancelled between its sends and its acks would leave its output delivered
        but its input uncommitted, read again by the next worker (duplicates, judged late
        against states that already hold them). The locks are kept: a loop waiting for one
        holds messages it never started on, which the next worker reads again.
        False if a step did not finish within ``timeout`` seconds.
        """
        locks = [self._ingest_lock, *self._score_locks.values()]
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(*(lock.acquire() for lock in locks)), timeout)
        except TimeoutError:
            log.warning("a step was still under way %.0fs after the stop began", timeout)
            return False
        # What this reading of each input partition has sent, as of its last step (whose
        # sends were all acknowledged): a claim otherwise goes out with the next step, and
        # the next owner, reading the input again from a commit that lags it (a chunk is
        # acknowledged only once all its events are out), would judge those reads late
        # instead of skipping them as repeats (seen in test_stream_parity's stop/restart).
        try:
            await asyncio.wait_for(
                deliver_all(self.forwarder.final_claims(), self.metrics, "envelope"),
                max(0.0, timeout - (time.monotonic() - started)),
            )
        except TimeoutError:
            log.warning("the last claims were not sent %.0fs after the stop began", timeout)
        # The last checkpoint: what the steps applied is written and its envelopes acked.
        try:
            await asyncio.wait_for(
                asyncio.gather(*(self._checkpoint(s) for s in (self.principals, self.resources))),
                max(0.0, timeout - (time.monotonic() - started)),
            )
        except TimeoutError:
            log.warning("the last checkpoint had not settled %.0fs after the stop began", timeout)
            return False
        log.info(
            "steps finished; input acknowledged through offsets %s, read through %s",
            dict(sorted(self._acked.items())),
            dict(sorted(self.forwarder.last_offset.items())),
        )
        return True

    @property
    def ingest_take(self) -> int:
        return self.settings.ingest_take

    @property
    def scoring_take(self) -> int:
        return SCORING_ENVELOPES * self.settings.partitions

    @property
    def stage_wait(self) -> float:
        # Faust's take() waits its whole timeout unless the batch fills, and an event
        # passes two batching stages (ingest, scoring): each gets half the allowed wait.
        return self.settings.batch_max_wait / 2

    @property
    def ttl(self) -> float:
        return self.pipeline.model.config.idle_ttl_days * 86400.0

    # -- idle expiry, the entity cap, model reload -------------------------------------
    async def sweep_idle(self) -> None:
        await self.sweeper.sweep(self.ttl)
        if self.followup is not None and self.resources.clock is not None:
            self.followup.sweep(self.resources.clock)  # stale exposure records

    async def reload_model(self) -> None:
        model = await asyncio.to_thread(self.watcher.poll)
        if model is not None:
            # After a checkpoint of each side: a dirty state is rebuilt (``statecache``) by
            # the model its steps were scored with. One lock at a time (``drain`` takes
            # them all); scoring is synchronous, so no batch sees two models.
            for scorer in (self.principals, self.resources):
                async with self._score_locks[scorer.name]:
                    await self._checkpoint(scorer)
            self.pipeline.swap_model(model)

    def on_revoked(self, revoked: Any) -> None:
        self._generation += 1
        input_topics = set(self.settings.input_topics)
        gone = {f"{tp.topic}:{tp.partition}" for tp in revoked if tp.topic in input_topics}
        revoked_keys = {(tp.topic, tp.partition) for tp in revoked}
        self.ack_order.forget(revoked_keys)
        for rewinds in self.rewinds.values():
            rewinds.forget(revoked_keys)
        if gone:
            self.forwarder.forget(lambda event: source_of(event.message) not in gone)
            self.forwarder.leave(gone)  # read again later: a new epoch
            self.forwarder.sources.assign(set(self.forwarder.sources.clocks) - gone)
            for source in gone:
                self._paused.pop(source, None)
                self._tps.pop(source, None)
        for scorer, topic in (
            (self.principals, self.settings.principal_topic),
            (self.resources, self.settings.resource_topic),
        ):
            scorer.forget({tp.partition for tp in revoked if tp.topic == topic})
            self._score_orders[scorer.name].forget(revoked_keys)
            self._waiting[scorer.name] = [
                h for h in self._waiting[scorer.name] if _partition(h) not in revoked_keys
            ]

    def on_assigned(self, assigned: Any) -> None:
        input_topics = set(self.settings.input_topics)
        # Faust's TP, not the driver's: resume_partitions adds what it is given as is.
        mine = {
            f"{tp.topic}:{tp.partition}": TP(tp.topic, tp.partition)
            for tp in assigned
            if tp.topic in input_topics
        }
        self._generation += 1
        # A new assignment starts unpaused in our view, and in the consumer too: a hold
        # asked for before the rebalance may reach the consumer's thread after it, so the
        # new partitions are released explicitly (in that thread's order, after any hold).
        self._paused.clear()
        self._starts.clear()
        if mine:
            self._tps.update(mine)
            if self.consumer is not None and hasattr(self.consumer, "release"):
                self.consumer.release(mine.values())
            self.forwarder.sources.assign(set(self.forwarder.sources.clocks) | set(mine))
        self._assigned_at = time.monotonic()
        self._count_sources()
        log.info("input partitions in all: %s", self.forwarder.total_sources or "not known yet")

    def _count_sources(self) -> None:
        """How many input partitions there are in all, reported with every envelope: a scorer
        trusts the frontier of the reports it has only when it knows it has them all.

        Right after the first assignment the consumer's metadata may not know the input
        topics yet. Until it does (asked again every tick), nothing is released: a worker
        sharing the input with another would otherwise report its own partitions' frontier
        as everyone's, and the scorers would run ahead of the other worker's reads (seen
        with chunked input in test_faults_takeover: 26-80 reads judged late on each
        side). After ``SOURCES_WAIT_S`` the reports at hand are trusted, with a warning.
        """
        counts: list[int] = []
        if self.consumer is not None:
            try:
                counts = [self.consumer.topic_partitions(t) for t in self.settings.input_topics]
            except Exception:  # no metadata yet
                counts = []
        if counts and all(counts):  # None for a topic the metadata does not know yet
            self.forwarder.total_sources = sum(counts)
        # Without a consumer (tests driving the agents) nobody can tell: trust the reports.
        known = self.forwarder.total_sources > 0 or self.consumer is None
        waited = time.monotonic() - (self._assigned_at or 0.0)
        if not known and waited >= SOURCES_WAIT_S and self.forwarder.await_assignment:
            log.warning("the input topics' partition count is still unknown %.0fs after the "
                        "assignment: scoring trusts the frontiers reported so far", waited)
        self.forwarder.await_assignment = not known and waited < SOURCES_WAIT_S

    def tracked(self) -> dict[str, int]:
        """Entities per side, those not checkpointed yet included."""
        return {"principals": self.principals.cache.tracked(self.tables.principals),
                "resources": self.resources.cache.tracked(self.tables.resources)}

    def status(self) -> dict[str, Any]:
        return {
            "model_version": self.pipeline.model_version,
            "messages_in": self.forwarder.messages_in,
            "alerts_out": self.publisher.published,
            **self.tracked(),
        }


def register_agents(app: faust.App, worker: Worker) -> None:
    """Attach the worker's loops to ``app``."""
    topics = worker.topics
    worker.consumer = None  # set once the app has one (below)
    worker.changelogs_known = lambda: changelogs_known(app, BROKER_PROBE_TIMEOUT_S)
    worker.forwarder.await_assignment = True
    app.agent(topics.inputs, name="reachwatch.ingest")(worker.ingest)
    app.agent(topics.by_principal, name="reachwatch.score_principals")(worker.score_principals)
    app.agent(topics.by_resource, name="reachwatch.score_resources")(worker.score_resources)
    app.timer(worker.settings.idle_sweep_interval, name="reachwatch.sweep_idle")(worker.sweep_idle)
    if worker.settings.checkpoint_interval > 0:
        app.timer(
            max(0.05, worker.settings.checkpoint_interval / 5), name="reachwatch.checkpoint"
        )(worker.checkpoint_quiet)
    app.timer(
        max(0.05, worker.settings.alignment_idle_timeout / IDLE_TICKS), name="reachwatch.align"
    )(worker.tick)
    if worker.watcher.follows_promotions:
        app.timer(worker.settings.reload_poll_interval, name="reachwatch.reload_model")(
            worker.reload_model
        )

    @app.on_partitions_revoked.connect
    async def forget_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        # Held events of revoked partitions are replayed by their next owner from the
        # committed offsets; decoded copies of entities that may move are dropped too.
        worker.on_revoked(revoked)

    @app.on_before_shutdown.connect
    async def finish_steps(app: faust.App, **kwargs: Any) -> None:
        # Sent once the consumer is paused and before the agents are cancelled.
        await worker.drain(DRAIN_TIMEOUT_S)
        # Faust commits once more as its consumer stops, but a commit that finds another
        # under way (its timer's, its offsets taken before the steps above acknowledged)
        # only waits for that one: the first call may be such a wait, the second then
        # commits what the finished steps acknowledged.
        for _ in range(2):
            try:
                await app.consumer.commit()
            except Exception as exc:  # the stop goes on; the next worker reads again
                log.warning("commit after the last steps failed: %r", exc)
                break

    @app.on_partitions_assigned.connect
    async def track_assigned(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        worker.consumer = app.consumer
        worker.on_assigned(assigned)

    @app.task
    async def declare_outputs() -> None:
        for topic in topics.declared_outputs():
            await topic.maybe_declare()
