"""Write-behind checkpoints: states written when they must be, envelopes acked only after.

A step leaves the states it changed decoded and dirty; a checkpoint writes them all and
waits for the broker, and only then are the envelopes it covers acknowledged (so the commit
of the internal topics never passes a state that is not durable). A step that failed is
rebuilt from the table's bytes and the steps since; revoked partitions' dirty states and
waiting envelopes are dropped, never written.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.types import TP
from support.tinyorg import history as tiny_history_events
from support.topics import RecordingTopic

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.sides import PRINCIPAL
from reachwatch.models.windows import EntityState, decode_state, encode_state
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.service.agents import Worker
from reachwatch.streams.service.delivery import deliver_all
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.settings import Settings
from reachwatch.streams.service.statecache import DecodedStates
from reachwatch.streams.service.sweep import forget_older
from reachwatch.streams.service.topics import ServiceTables, ServiceTopics, partition_of

SPANS = (900.0, 3600.0, 86400.0)
TOPIC = Settings().principal_topic


class SettlingTable(dict[bytes, bytes]):
    """A table whose changelog writes the broker acknowledges only on ``acknowledge``."""

    def __init__(self) -> None:
        super().__init__()
        self.unsettled: list[tuple[bytes, asyncio.Future[None]]] = []  # what settle awaits
        self.pending: list[asyncio.Future[None]] = []
        self.writes = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        super().__setitem__(key, value)
        self.writes += 1
        future = asyncio.get_running_loop().create_future()
        self.unsettled.append((key, future))
        self.pending.append(future)

    def acknowledge(self) -> None:
        for future in self.pending:
            if not future.done():
                future.set_result(None)


class Stream:
    """Hands out the given batches; records what the agent acknowledges."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches = batches
        self.acked: list[Any] = []

    async def noack_take(self, n: int, wait: float) -> Any:
        for batch in self.batches:
            yield batch
        await asyncio.Event().wait()

    async def ack(self, holder: Any) -> None:
        self.acked.append(holder)


class Consumer:
    """What the commit guard learns: the highest offset acknowledged per partition."""

    def __init__(self) -> None:
        self.committable: dict[tuple[str, int], int] = {}

    def acknowledged(self, topic: str, partition: int, offset: int) -> None:
        self.committable[(topic, partition)] = offset


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _worker(model: Any, interval: float = 5.0, cache: int = 10_000) -> tuple[Worker, Clock]:
    config = Settings(partitions=2, checkpoint_interval=interval, decoded_state_cache=cache)
    topics = ServiceTopics(*(RecordingTopic() for _ in range(5)))
    clock = Clock()
    worker = Worker(settings=config, pipeline=Pipeline(model), watcher=None,  # type: ignore[arg-type]
                    chain=Chain(get_adapter("native"), limits=config.limits), topics=topics,
                    tables=ServiceTables(SettlingTable(), SettlingTable()),  # type: ignore[arg-type]
                    metrics=Metrics(topics=config.input_topics), clock=clock)
    worker.consumer = Consumer()
    return worker, clock


def _envelopes(worker: Worker, events: list[Any], first_offset: int = 0) -> list[Any]:
    """``events`` (input offsets from ``first_offset``) forwarded by one ingest step: the
    principal side's new envelopes as holders."""

    async def forward() -> None:
        messages = [SimpleNamespace(value=orjson.dumps(e.to_json()), topic="access-events",
                                    partition=0, offset=first_offset + i, key=None,
                                    timestamp=0.0)
                    for i, e in enumerate(events)]
        worker.forwarder.sources.assign({"access-events:0"})
        worker.forwarder.sources.set_backlog("access-events:0", False)
        worker.forwarder.take(messages)
        await deliver_all(worker.forwarder.release().envelopes, worker.metrics, "envelope")

    before = len(worker.topics.by_principal.sent)
    asyncio.run(forward())
    offsets: dict[int, int] = {}
    holders = []
    for index, envelope in enumerate(worker.topics.by_principal.sent):
        partition = envelope["partition"]
        offsets[partition] = offsets.get(partition, -1) + 1
        if index >= before:
            holders.append(SimpleNamespace(message=SimpleNamespace(
                value=envelope["value"], topic=TOPIC, partition=partition,
                offset=offsets[partition])))
    return holders


def _positions(holders: list[Any]) -> list[tuple[int, int]]:
    return sorted((h.message.partition, h.message.offset) for h in holders)


async def _until(condition: Any) -> None:
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


def test_envelopes_are_acknowledged_only_after_the_checkpoint_covering_them_settled(
        tiny_model) -> None:
    worker, clock = _worker(tiny_model)
    events = tiny_history_events()[:60]
    holders = _envelopes(worker, events)
    stream = Stream([holders])
    table = worker.tables.principals

    async def scenario() -> None:
        agent = asyncio.create_task(worker.score_principals(stream))  # type: ignore[arg-type]
        await _until(lambda: worker.principals.cache.dirty)
        await asyncio.sleep(0)
        # Scored, within the interval: states only in the cache, nothing acknowledged.
        assert table.writes == 0 and not stream.acked
        clock.now = 5.0  # the interval passed; the input is quiet: the timer checkpoints
        checkpoint = asyncio.create_task(worker.checkpoint_quiet())
        await _until(lambda: table.writes > 0)
        await asyncio.sleep(0)
        assert not stream.acked  # written, not yet acknowledged by the broker
        assert worker.consumer.committable == {}
        table.acknowledge()
        await checkpoint
        agent.cancel()

    asyncio.run(scenario())
    assert _positions(stream.acked) == _positions(holders)
    assert worker.consumer.committable == {
        (TOPIC, p): max(h.message.offset for h in holders if h.message.partition == p)
        for p in {h.message.partition for h in holders}
    }
    principals = {e.principal for e in events}
    assert {k.decode() for k in table} == principals
    assert sum(decode_state(table[p.encode()]).events for p in principals) == len(events)
    assert worker.metrics.checkpoints.labels(side="principal")._value.get() == 1


def test_a_step_reads_the_dirty_state_not_the_tables_older_bytes(tiny_model) -> None:
    worker, _ = _worker(tiny_model, interval=3600.0)
    events = [e for e in tiny_history_events() if e.principal == "eng-3"][:40]
    first, second = _envelopes(worker, events[:20]), _envelopes(worker, events[20:], 20)
    stream = Stream([first, second])

    async def scenario() -> None:
        agent = asyncio.create_task(worker.score_principals(stream))  # type: ignore[arg-type]
        await _until(lambda: worker.principals.cache.dirty
                     and worker.principals.cache.cache.get("eng-3").events == 40)
        assert worker.tables.principals.writes == 0
        drained = asyncio.create_task(worker.drain(timeout=5.0))
        await _until(lambda: worker.tables.principals.pending)
        worker.tables.principals.acknowledge()
        worker.tables.resources.acknowledge()
        assert await drained
        agent.cancel()

    asyncio.run(scenario())
    assert decode_state(worker.tables.principals[b"eng-3"]).events == 40
    assert _positions(stream.acked) == _positions(first + second)  # by the stop's checkpoint


def test_more_dirty_states_than_half_the_cache_make_a_checkpoint_due(tiny_model) -> None:
    worker, _ = _worker(tiny_model, interval=3600.0, cache=4)
    scorer = worker.principals
    assert not scorer.checkpoint_due()
    for key in ("a", "b"):
        scorer.cache.keep({}, {key: EntityState(PRINCIPAL, SPANS, 10, 10)}, [key], {})
    assert not scorer.checkpoint_due()
    scorer.cache.keep({}, {"c": EntityState(PRINCIPAL, SPANS, 10, 10)}, ["c"], {})
    assert scorer.checkpoint_due()


def _reference(model: Any, events: list[Any], steps: int) -> dict[str, Any]:
    worker, _ = _worker(model, interval=0.0)
    scorer = worker.principals
    holders = _envelopes(worker, events)

    async def run() -> None:
        scorer.take([h.message for h in holders])
        released, watermark, _ = scorer.release()
        size = -(-len(released) // steps)
        for start in range(0, len(released), size):
            await scorer.score(released[start : start + size], watermark)
            await scorer.checkpoint()
    asyncio.run(_acknowledging(worker, run()))
    return {k.decode(): decode_state(v).to_obj() for k, v in worker.tables.principals.items()}


async def _acknowledging(worker: Worker, work: Any) -> None:
    async def broker() -> None:
        while True:
            worker.tables.principals.acknowledge()
            await asyncio.sleep(0)

    acking = asyncio.create_task(broker())
    try:
        await work
    finally:
        acking.cancel()


@pytest.mark.parametrize("failure", ["scoring", "alert publish"])
def test_a_step_that_failed_is_rebuilt_from_the_table_and_the_journal_and_applied_once(
        tiny_model, monkeypatch, failure) -> None:
    events = tiny_history_events()[:300]
    expected = _reference(tiny_model, events, steps=3)
    worker, _ = _worker(tiny_model, interval=3600.0)
    scorer = worker.principals
    holders = _envelopes(worker, events)
    pipeline = worker.pipeline
    observe = pipeline.observe
    failed: list[int] = []
    failing: list[int] = []  # set for the third step

    def failing_observe(side: Any, reads: Any, states: Any, watermark: Any = None) -> Any:
        result = observe(side, reads, states, watermark)  # applied to the states taken...
        if failing and failure == "scoring" and not failed:
            failed.append(1)
            raise RuntimeError("killed half-way")  # ...then the step fails
        if failing and failure == "alert publish":
            result.alerts = [SimpleNamespace()]  # one to publish, and its publish fails
        return result

    async def publish(alerts: Any, forwarded: Any) -> None:
        if not failed:
            failed.append(1)
            raise ConnectionError("alerts topic away")

    monkeypatch.setattr(pipeline, "observe", failing_observe)
    if failure == "alert publish":
        monkeypatch.setattr(scorer.publisher, "publish", publish)

    async def run() -> None:
        scorer.take([h.message for h in holders])
        released, watermark, _ = scorer.release()
        size = -(-len(released) // 3)
        await scorer.score(released[:size], watermark)
        await scorer.checkpoint()  # the first step's states in the table
        await scorer.score(released[size : 2 * size], watermark)  # dirty, in the journal
        failing.append(1)
        await worker._score_until_done(scorer, released[2 * size :], watermark)
        await scorer.checkpoint()

    monkeypatch.setattr("reachwatch.streams.service.agents.STEP_RETRY_S", (0.0,))
    asyncio.run(_acknowledging(worker, run()))
    assert failed and scorer.cache.rebuilt > 0
    got = {k.decode(): decode_state(v).to_obj() for k, v in worker.tables.principals.items()}
    assert got == expected
    assert worker.metrics.events_repeated.labels(side="principal")._value.get() == 0


def test_revoked_partitions_dirty_states_and_waiting_envelopes_are_dropped_not_written(
        tiny_model) -> None:
    worker, clock = _worker(tiny_model)
    events = tiny_history_events()[:200]
    holders = _envelopes(worker, events)
    assert {h.message.partition for h in holders} == {0, 1}
    stream = Stream([holders])
    table = worker.tables.principals

    async def scenario() -> None:
        agent = asyncio.create_task(worker.score_principals(stream))  # type: ignore[arg-type]
        await _until(lambda: worker._waiting["principal"])
        worker.on_revoked({TP(TOPIC, 0)})
        clock.now = 10.0
        checkpoint = asyncio.create_task(worker.checkpoint_quiet())
        await _until(lambda: table.pending)
        table.acknowledge()
        await checkpoint
        agent.cancel()

    asyncio.run(scenario())
    kept = {e.principal for e in events if partition_of(e.principal.encode(), 2) == 1}
    assert kept and {k.decode() for k in table} == kept  # none of partition 0 written
    assert _positions(stream.acked) == _positions(
        [h for h in holders if h.message.partition == 1])
    assert set(worker.consumer.committable) == {(TOPIC, 1)}


def test_an_evicted_dirty_state_is_written_before_it_leaves_the_cache() -> None:
    table: dict[bytes, bytes] = {}
    cache = DecodedStates(capacity=1)
    ana, bob = (EntityState(PRINCIPAL, SPANS, 10, 10) for _ in range(2))
    ana.events = 7
    cache.keep(table, {"ana": ana}, ["ana"], {})
    assert table == {}
    cache.keep(table, {"bob": bob}, ["bob"], {})
    assert decode_state(table[b"ana"]).events == 7  # written as it was evicted
    assert set(cache.dirty) == {"bob"}
    assert cache.load(table, ["ana"])["ana"].events == 7


def test_a_lost_dirty_state_is_rebuilt_from_its_table_bytes_and_its_journal() -> None:
    seen: list[Any] = []

    def rebuild(key: str, state: Any, steps: list[Any]) -> Any:
        seen.append((key, state.events, steps))
        state.events += sum(steps)
        return state

    table = {b"ana": encode_state(EntityState(PRINCIPAL, SPANS, 10, 10))}
    cache = DecodedStates(capacity=8, rebuild=rebuild)
    for step in (3, 4):
        state = cache.load(table, ["ana"])["ana"]
        state.events += step
        cache.keep(table, {"ana": state}, ["ana"], {"ana": step})
    assert cache.load(table, ["ana"])["ana"].events == 7  # taken from the cache: dirty
    # That step failed: the state it took is gone, the table holds the first bytes.
    assert cache.load(table, ["ana"])["ana"].events == 7
    assert seen == [("ana", 0, [3, 4])]


def test_the_idle_sweep_skips_a_dirty_entity_whatever_its_table_bytes_say() -> None:
    old = EntityState(PRINCIPAL, SPANS, 10, 10)
    table = {b"ana": encode_state(old), b"bob": encode_state(old)}
    cache = DecodedStates(capacity=8)
    states = cache.load(table, ["ana"])
    cache.keep(table, states, ["ana"], {})  # ana read again since: newer than her bytes
    forgotten = asyncio.run(forget_older(table, cache, horizon=float("inf")))
    assert forgotten == 1 and set(table) == {b"ana"}


def test_entities_not_checkpointed_yet_are_counted_as_tracked() -> None:
    # The tracked-entities gauge and /status read 0 for a new worker until its first
    # checkpoint when they counted the table alone (seen in the paging end-to-end test).
    old = EntityState(PRINCIPAL, SPANS, 10, 10)
    table = {b"ana": encode_state(old)}
    cache = DecodedStates(capacity=8)
    states = cache.load(table, ["ana", "cem"])
    states["cem"] = EntityState(PRINCIPAL, SPANS, 20, 20)  # new: only in the cache yet
    cache.keep(table, states, ["ana", "cem"], {})
    assert len(table) == 1 and cache.tracked(table) == 2
    cache.write(table)
    assert cache.tracked(table) == 2 == len(table)


def test_interval_zero_writes_and_settles_after_every_step(tiny_model) -> None:
    worker, _ = _worker(tiny_model, interval=0.0)
    holders = _envelopes(worker, tiny_history_events()[:60])
    stream = Stream([holders])
    table = worker.tables.principals

    async def scenario() -> None:
        agent = asyncio.create_task(worker.score_principals(stream))  # type: ignore[arg-type]
        await _until(lambda: table.pending)
        await asyncio.sleep(0)
        assert not stream.acked
        table.acknowledge()
        await _until(lambda: stream.acked)
        agent.cancel()

    asyncio.run(scenario())
    assert _positions(stream.acked) == _positions(holders)
    assert not worker.principals.cache.dirty

