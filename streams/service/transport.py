"""The worker's Kafka transport: Faust's aiokafka driver with a short fetch wait and safe holds.

Faust creates its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to
change it. A broker answers a waiting fetch as soon as data arrives, so that wait costs
nothing on Apache Kafka, but the embedded tansu broker holds every fetch for the whole
wait: measured on this machine, a message produced into an idle partition reached a
consumer after up to the full wait (0.38 s at 1.5 s, 0.02 s at 0.1 s). The worker pays
it twice (input, then internal topic), which alone made event-to-alert latency ~1.4 s
at 1 event/s. A short wait costs a few more fetch round trips per second when idle.

Holding partitions (event-time alignment pauses the ones running ahead): Faust's
``pause_partitions`` only takes a partition out of the set it passes to ``getmany``, and that
same set is consulted while a fetched batch is handed out, so the rest of a batch of a
partition paused meanwhile is skipped after aiokafka already moved past it (messages lost to
this worker, and the partition stalls). ``hold``/``release`` pause in aiokafka itself, on the
consumer's own thread: a paused partition's fetched records are discarded unconsumed and
fetched again after the resume, and records Faust already took are still delivered.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as driver
from intervaltree import IntervalTree

from reachwatch.streams.service.chunks import ChunkMessage, Run, runs
from reachwatch.streams.service.logend import log_ends

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 100
# Fault injection, for tests only: this many of the first records fetched of each guarded
# partition are dropped once per worker process (tests/integration/test_faults_first_commit.py).
FAULT_DROP_FIRST_FETCHED = "REACHWATCH_FAULT_DROP_FIRST_FETCHED"
# Asking where the readings start must not hold an assignment up for long.
START_TIMEOUT_S = 10.0


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the constructor argument here until start() builds its fetcher.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def _highwaters(self, partitions: list[Any]) -> Any:
        # Faust's changelog recovery reads up to these: checked (streams/service/logend.py).
        ends = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return ends
        return await log_ends(self._ensure_consumer()._client, ends)


class _Consumer(driver.Consumer):
    # Topics whose commits follow the agents' own acknowledgements, and per partition the
    # highest offset an agent acknowledged since the assignment (``_new_offset``).
    _guarded: frozenset[str] = frozenset()
    _chunked: frozenset[str] = frozenset()  # topics read in runs (``chunks``), and their size
    _chunk: int = 1
    _acknowledged: dict[tuple[str, int], int]

    def __init__(self, transport: Any, *args: Any, **kwargs: Any) -> None:
        # Known from the start: the first assignment's seek to the commits (where readings
        # start) can come before the app's assignment signal (seen on a new group).
        self._guarded = frozenset(getattr(transport, "guarded", ()))
        self._drop_first = int(os.environ.get(FAULT_DROP_FIRST_FETCHED, "0") or 0)
        self._dropped: set[tuple[str, int]] = set()
        self._acknowledged = {}
        # Per partition: the last offset fetched, and the offsets fetches skipped.
        self._fetched_last: dict[tuple[str, int], int] = {}
        self._holes: dict[tuple[str, int], IntervalTree] = {}
        self._starts: dict[tuple[str, int], int] = {}  # where each reading started
        # Topics whose records reach the agents in runs (streams/service/chunks.py).
        self._chunked = frozenset(getattr(transport, "chunked", ()))
        self._chunk = max(1, int(getattr(transport, "chunk", 1)))
        super().__init__(transport, *args, **kwargs)

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def guard(self, topics: Iterable[str]) -> None:
        """Commit ``topics`` no further than their agents acknowledged (``_new_offset``)."""
        self._guarded = frozenset(topics)

    def acknowledged(self, topic: str, partition: int, offset: int) -> None:
        """An agent acknowledged ``offset`` (in offset order, every one before it too)."""
        key = (topic, partition)
        if offset > self._acknowledged.get(key, -1):
            self._acknowledged[key] = offset

    def starts_at(self, key: tuple[str, int]) -> int | None:
        """Where the reading of partition ``key`` started: the commit Faust sought to as the
        assignment began (held there until an agent acknowledges, ``_new_offset``)."""
        return self._starts.get(key)

    async def seek_to_committed(self) -> Any:
        committed = await super().seek_to_committed()
        for tp, offset in committed.items():  # where the starts could not be asked
            if offset is not None and offset >= 0:
                self._starts.setdefault((tp.topic, tp.partition), offset)
        return committed

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        self._acknowledged.clear()  # a new assignment reads again from the commits
        self._fetched_last.clear()
        self._holes.clear()
        self._starts.clear()
        await self._note_starts(assigned)
        await super().on_partitions_assigned(assigned, generation_id)

    async def _note_starts(self, assigned: Any) -> None:
        """Where the reading of each guarded partition starts: its commit, else its log start
        (the group reads from the earliest offset), so a first message Faust dropped is a
        hole too (``streams/service/rewind.py``). Asked before Faust makes the partitions
        active: it hands messages as soon as they are, and its own seek to the commits comes
        later, after the changelog recovery (seen: a new worker's scorers took offset 2 as
        their start, 0-1 fetched and dropped, and the commit passed them)."""
        guarded = [tp for tp in assigned if tp.topic in self._guarded]
        if not guarded:
            return
        try:
            starts = await asyncio.wait_for(self.start_offsets(guarded), START_TIMEOUT_S)
        except Exception as exc:  # the broker away: Faust's seek gives the commits later
            log.warning("start offsets unavailable (%r): the first message of %d partition(s) "
                        "is taken as it comes until Faust's seek to the commits",
                        exc, len(guarded))
            return
        self._starts.update({(tp.topic, tp.partition): offset
                             for tp, offset in starts.items() if offset is not None})

    def _new_offset(self, tp: Any) -> int | None:
        """Faust's next commit of ``tp``, never past what the agents acknowledged.

        Faust acknowledges a message its stream skipped (one of an older consumer
        generation, or arriving while flow control is suspended: faust-streaming 0.15.3,
        ``streams.py``/``streams.pyx``), and its commit counts that acknowledgement, so a
        commit could pass a message no agent ever saw. The agents take each partition's
        messages in offset order without a hole (``streams/service/rewind.py``) and
        acknowledge them in that order (``ackorder``), so their highest acknowledged offset
        bounds what may be committed. Nothing is committed for a partition before an agent
        acknowledged one of its messages since the assignment."""
        if tp.topic in self._chunked:
            return self._chunked_offset(tp)
        offset = super()._new_offset(tp)
        if offset is None or tp.topic not in self._guarded:
            return offset
        ours = self._acknowledged.get((tp.topic, tp.partition))
        if ours is None:
            return None
        holes = self._holes.get((tp.topic, tp.partition))
        if holes:
            holes.chop(0, min(offset, ours + 1))  # behind the commit: never asked about again
        if offset <= ours + 1:
            return offset
        # Offsets Faust took off its list up to ``offset`` come back when an agent
        # acknowledges them.
        committed = self._committed_offset[tp]
        return ours + 1 if committed is None or ours + 1 > committed else None

    def _chunked_offset(self, tp: Any) -> int | None:
        """The next commit of a chunked topic's partition: after the highest offset an agent
        acknowledged. Faust's own record of acknowledged offsets knows a chunk only by its
        last offset (the ones inside would look like a gap, and its gap record, kept as
        records are fetched, also holds runs fetched and never handed over), so it is not
        consulted, only emptied; the agents acknowledge each partition's offsets in order
        and without a hole since the assignment (``rewind``, ``ackorder``)."""
        self._acked[tp].clear()
        self._acked_index[tp].clear()
        self._gap.pop(tp, None)
        ours = self._acknowledged.get((tp.topic, tp.partition))
        if ours is None:
            return None
        committed = self._committed_offset[tp]
        return ours + 1 if committed is None or ours + 1 > committed else None

    def hold(self, tps: Iterable[Any]) -> None:
        """Stop fetching ``tps`` until ``release`` (see the module docstring)."""
        self._in_thread("pause", tps)

    def release(self, tps: Iterable[Any]) -> None:
        self._in_thread("resume", tps)

    async def start_offsets(self, tps: Iterable[Any]) -> dict[Any, int | None]:
        """Where reading ``tps`` starts: the committed offset, else the log start."""
        partitions = {TopicPartition(tp.topic, tp.partition): tp for tp in tps}
        thread = self._thread

        async def read() -> dict[Any, int | None]:
            consumer = thread._consumer
            if consumer is None:
                return {}
            found: dict[Any, int | None] = {}
            for tp, faust_tp in partitions.items():
                found[faust_tp] = await consumer.committed(tp)
            missing = [tp for tp, faust_tp in partitions.items() if found[faust_tp] is None]
            if missing:
                for tp, offset in (await consumer.beginning_offsets(missing)).items():
                    found[partitions[tp]] = offset
            return found

        future = asyncio.run_coroutine_threadsafe(read(), thread.thread_loop)
        return await asyncio.wrap_future(future)

    async def end_offsets(self, tps: Iterable[Any]) -> dict[Any, int]:
        """The broker's end offsets of ``tps`` (for partitions not fetched from yet)."""
        partitions = {TopicPartition(tp.topic, tp.partition): tp for tp in tps}
        thread = self._thread

        async def read() -> dict[Any, int]:
            consumer = thread._consumer
            if consumer is None:
                return {}
            ends = await log_ends(consumer._client, await consumer.end_offsets(list(partitions)))
            return {partitions[tp]: offset for tp, offset in ends.items()}

        future = asyncio.run_coroutine_threadsafe(read(), thread.thread_loop)
        return await asyncio.wrap_future(future)

    def no_records(self, key: tuple[str, int], start: int, end: int) -> bool:
        """Whether the client's fetches returned no records of partition ``key`` in
        [start, end) where it returned records on both sides (offsets taken by transaction
        markers or compaction): a hole there is the log's, not a message Faust dropped
        (``streams/service/rewind.py``). Faust's own gap record is no guide: it also holds
        the records its ``getmany`` skipped for a partition it had paused."""
        holes = self._holes.get(key)
        if not holes:
            return False
        at = start
        for interval in sorted(holes.overlap(start, end), key=lambda i: i.begin):
            if interval.begin > at:
                return False
            at = max(at, interval.end)
            if at >= end:
                return True
        return at >= end

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active = await super()._wait_next_records(timeout)
        if records:
            if self._drop_first:
                self._inject_drops(records)
            self._note_holes(records)
            if self._chunked and self._chunk > 1:
                await self._cut_runs(records)
        return records, active

    async def _cut_runs(self, records: Any) -> None:
        """Each chunked partition's records as runs of at most ``_chunk`` (``chunks``)."""
        for tp, batch in records.items():
            if batch and tp.topic in self._chunked:
                records[tp] = list(runs(batch, self._chunk))

    def _to_message(self, tp: Any, record: Any) -> Any:
        if isinstance(record, Run):
            return ChunkMessage(tp, record, self.app.consumer_generation_id)
        return super()._to_message(tp, record)

    def _inject_drops(self, records: Any) -> None:
        """Fault injection for tests (``FAULT_DROP_FIRST_FETCHED``): the first records fetched
        of each guarded partition vanish, as a message Faust fetched and never handed over."""
        for tp, batch in records.items():
            key = (tp.topic, tp.partition)
            if batch and tp.topic in self._guarded and key not in self._dropped:
                self._dropped.add(key)
                records[tp] = batch[self._drop_first:]
                log.warning("fault injection: offsets %d-%d of %s:%d dropped", batch[0].offset,
                            batch[min(self._drop_first, len(batch)) - 1].offset, *key)

    def _note_holes(self, records: Any) -> None:
        """Offsets the fetched records skip, per partition (see ``no_records``)."""
        last = self._fetched_last
        for tp, batch in records.items():
            if not batch:
                continue
            key = (tp.topic, tp.partition)
            previous = last.get(key)
            first, final = batch[0].offset, batch[-1].offset
            if final - first + 1 == len(batch) and (previous is None or first == previous + 1):
                last[key] = final  # the common case: one run, no hole (no loop per record)
                continue
            for record in batch:
                offset = record.offset
                if previous is not None and offset > previous + 1:
                    holes = self._holes.get(key)
                    if holes is None:
                        holes = self._holes[key] = IntervalTree()
                    holes.addi(previous + 1, offset)
                previous = offset  # a seek back starts a new run
            last[key] = previous

    def fetch_states(self, topics: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Per assigned partition of ``topics``: whether the client holds it, whether Faust
        hands its records on, the fetch position and the highwater. For /status: a
        partition that stops moving is then visible without a debugger. Read from the
        client's thread state without its lock: a snapshot for people, not for decisions."""
        wanted = set(topics)
        consumer = self._thread._consumer
        if consumer is None:
            return {}
        states: dict[str, dict[str, Any]] = {}
        try:
            held = consumer.paused()
            assigned = [tp for tp in consumer.assignment() if tp.topic in wanted]
            active = {(tp.topic, tp.partition) for tp in self._get_active_partitions()}
            for tp in sorted(assigned):
                state = consumer._subscription.subscription.assignment.state_value(tp)
                states[f"{tp.topic}:{tp.partition}"] = {
                    "held": tp in held,
                    "active": (tp.topic, tp.partition) in active,
                    "position": state.position if state is not None and state.has_valid_position
                    else None,
                    "awaiting_reset": state is not None and state.awaiting_reset,
                    "highwater": consumer.highwater(tp),
                }
        except Exception as exc:  # a rebalance under way: say so, don't fail /status
            return {"unavailable": {"reason": repr(exc)}}
        return states

    def _in_thread(self, method: str, tps: Iterable[Any]) -> None:
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        thread = self._thread

        def call() -> None:
            consumer = thread._consumer
            if consumer is None:
                return
            assigned = consumer.assignment()
            mine = [tp for tp in partitions if tp in assigned]  # a rebalance may have moved them
            if mine:
                getattr(consumer, method)(*mine)

        loop: asyncio.AbstractEventLoop = thread.thread_loop
        loop.call_soon_threadsafe(call)


class Transport(driver.Transport):
    """``kafka://`` as Faust knows it, with ``FETCH_MAX_WAIT_MS``."""

    Consumer = _Consumer
    guarded: frozenset[str] = frozenset()  # topics its consumer commits as agents acknowledge
    chunked: frozenset[str] = frozenset()  # topics whose records come in runs of ``chunk``
    chunk: int = 1


def use_short_fetch_wait(
    app: faust.App, guarded: Iterable[str] = (), chunked: Iterable[str] = (), chunk: int = 1
) -> None:
    """Give ``app`` the transport above; call right after creating it, before topics.
    ``guarded``: topics committed no further than their agents acknowledged (``guard``);
    ``chunked``: topics whose records reach the agents in runs of up to ``chunk``
    (``streams/service/chunks.py``; each must be guarded too)."""
    chunked = frozenset(chunked)
    if not chunked <= frozenset(guarded):
        raise ValueError("chunked topics must be guarded (their commits follow the runs)")
    app.transport = Transport(app.conf.broker_consumer, app)
    app.transport.guarded = frozenset(guarded)
    app.transport.chunked = chunked
    app.transport.chunk = chunk
