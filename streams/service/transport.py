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
from collections.abc import Iterable
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as driver

from reachwatch.streams.service.logend import log_ends

FETCH_MAX_WAIT_MS = 100


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
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
