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

Committing: Faust (faust-streaming 0.15.3, ``Consumer._new_offset``) commits the first run
of consecutive acknowledged offsets, and its check that the run starts at the committed
offset lets one missing offset pass (``min(acked) - committed > 1``). Faust also drops
fetched messages without handing them to an agent, by design, around a rebalance: the
stream skips a message of an older consumer generation or one that arrives while flow
control is suspended, and ``getmany`` skips the rest of a batch of a partition paused
meanwhile. The recovery that ends every rebalance seeks back to the committed offsets, so
such a message is read again, unless a commit passed it first: seen in loaded SIGKILL
runs (one internal message of 85, one input message of 577, never scored). The worker
acknowledges each partition's messages in offset order (``ackorder``), so an offset
acknowledged after the committed one while the committed one is not means Faust never
handed that message on: ``_new_offset`` here commits nothing then, and the next seek to
the commit reads it again. Offsets the client saw missing from the log (compaction,
transaction markers: Faust's "gaps") count as acknowledged, as in Faust.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as driver

from reachwatch.streams.service.logend import log_ends

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 100
HELD_LOG_INTERVAL_S = 10.0  # at most one log line per partition whose commit waits


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


def unacknowledged_head(committed: int | None, acked: list[int], gaps: Any) -> int | None:
    """The first offset from ``committed`` on that is neither acknowledged nor a known gap,
    when a later one is acknowledged (None: the acknowledged offsets start at the commit,
    or nothing is committed yet, or nothing is acknowledged).

    >>> unacknowledged_head(26, [27, 28], None)
    26
    >>> unacknowledged_head(26, [26, 27, 28], None) is None
    True
    """
    if committed is None or not acked:
        return None
    covered = committed
    while gaps:
        # Faust records a gap from the offset after the last one read, and after a seek it
        # takes the committed offset for the last one read: a gap from ``committed + 1``
        # (the log starts later than the commit) covers the committed offset too.
        spans = gaps.at(covered) or (gaps.at(covered + 1) if covered == committed else ())
        if not spans:
            break
        covered = max(span.end for span in spans)
    return covered if min(acked) > covered else None


class _Consumer(driver.Consumer):
    # When each partition's waiting commit was last logged.
    _held_logged: dict[Any, float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._held_logged = {}
        super().__init__(*args, **kwargs)

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: Any) -> int | None:
        # Faust's own rule, less the one offset it lets pass (the module docstring).
        head = unacknowledged_head(self._committed_offset[tp], self._acked[tp], self._gap[tp])
        if head is not None:
            self._report_held(tp, head)
            return None
        return driver.Consumer._new_offset(self, tp)

    def _report_held(self, tp: Any, head: int) -> None:
        held = self._held_logged
        now = time.monotonic()
        if now - held.get(tp, -HELD_LOG_INTERVAL_S) >= HELD_LOG_INTERVAL_S:
            held[tp] = now
            log.warning(
                "commit of %s:%s waits at offset %d: a later offset is acknowledged but this "
                "one was never handed to an agent (Faust skips messages fetched around a "
                "rebalance); it is read again from the commit after the next seek",
                tp.topic, tp.partition, head,
            )

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


def use_short_fetch_wait(app: faust.App) -> None:
    """Give ``app`` the transport above; call right after creating it, before topics."""
    app.transport = Transport(app.conf.broker_consumer, app)
