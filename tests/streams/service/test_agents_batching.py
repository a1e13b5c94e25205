"""The worker's steps without Kafka: forwarding (alignment, envelopes), scoring, sweeps."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import orjson
from support.tinyorg import history as tiny_history_events
from support.topics import RecordingTopic

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.sides import PRINCIPAL
from reachwatch.models.windows import decode_state, encode_state
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.service.agents import Worker
from reachwatch.streams.service.delivery import deliver_all
from reachwatch.streams.service.envelopes import decode_envelope, read_envelope
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.settings import Settings
from reachwatch.streams.service.topics import ServiceTables, ServiceTopics, partition_of


def _worker(model: Any, partitions: int = 3, **settings: Any) -> Worker:
    config = Settings(partitions=partitions, **settings)
    topics = ServiceTopics(*(RecordingTopic() for _ in range(5)))
    return Worker(settings=config, pipeline=Pipeline(model), watcher=None,  # type: ignore[arg-type]
                  chain=Chain(get_adapter("native"), limits=config.limits), topics=topics,
                  tables=ServiceTables({}, {}),  # type: ignore[arg-type]
                  metrics=Metrics(topics=config.input_topics))


def _message(value: bytes, offset: int, partition: int = 0) -> SimpleNamespace:
    return SimpleNamespace(value=value, topic="access-events", partition=partition,
                           offset=offset, key=None, timestamp=0.0)


def _forward(worker: Worker, messages: list[Any]) -> list[Any]:
    """One ingest step; returns the messages it says are done (to acknowledge)."""

    async def step() -> list[Any]:
        dead_letters = worker.forwarder.take(messages)
        out = worker.forwarder.release()
        await deliver_all(dead_letters, worker.metrics, "dead_letter")
        await deliver_all(out.envelopes, worker.metrics, "envelope")
        return out.done

    return asyncio.run(step())


def _sent_events(topic: RecordingTopic) -> list[Any]:
    return [item.event for sent in topic.sent for item in decode_envelope(sent["value"])]


def test_ingest_sends_each_event_once_per_side_on_its_entity_partition(tiny_model) -> None:
    worker = _worker(tiny_model)
    events = tiny_history_events()[:200]
    messages = [_message(orjson.dumps(e.to_json()), i) for i, e in enumerate(events)]
    messages.append(_message(b"{broken", len(messages)))
    done = _forward(worker, messages)
    assert sorted(m.offset for m in done) == list(range(len(messages)))  # nothing waits
    for topic, key_of in ((worker.topics.by_principal, lambda e: e.principal),
                          (worker.topics.by_resource, lambda e: e.resource)):
        got = []
        for sent in topic.sent:
            envelope = read_envelope(sent["value"])
            assert envelope.frontiers == {"access-events:0": max(e.ts for e in events)}
            for item in envelope.items:
                assert partition_of(key_of(item.event).encode(), 3) == sent["partition"]
                got.append(item.event)
        assert sorted(got, key=lambda e: (e.ts, e.principal)) == sorted(
            events, key=lambda e: (e.ts, e.principal))
        # One envelope per partition, not one message per event.
        assert len(topic.sent) == 3
    assert len(worker.topics.dead_letters.sent) == 1


def _score(worker: Worker, events: list[Any]) -> None:
    asyncio.run(_score_async(worker, events))


async def _score_async(worker: Worker, events: list[Any]) -> None:
    messages = [_message(orjson.dumps(e.to_json()), i) for i, e in enumerate(events)]
    worker.forwarder.take(messages)
    await deliver_all(worker.forwarder.release().envelopes, worker.metrics, "envelope")
    batch = [SimpleNamespace(value=sent["value"], partition=sent["partition"])
             for sent in worker.topics.by_principal.sent]
    worker.topics.by_principal.sent.clear()
    worker.topics.by_resource.sent.clear()
    worker.principals.take(batch)
    released, watermark, _ = worker.principals.release()
    await worker.principals.score(released, watermark)
    await worker.principals.checkpoint()  # the states in the table, as after a checkpoint


def test_scoring_uses_the_table_state_when_the_table_changed_under_the_cache(tiny_model) -> None:
    worker = _worker(tiny_model)
    events = [e for e in tiny_history_events() if e.principal == "eng-3"][:40]
    _score(worker, events[:20])
    table = worker.tables.principals
    assert decode_state(table[b"eng-3"]).events == 20
    # A changelog recovery (or another worker) replaces the bytes: the decoded copy this
    # worker holds is stale and must not be used.
    table[b"eng-3"] = encode_state(worker.pipeline.features.new_state(PRINCIPAL))
    _score(worker, events[20:25])
    assert decode_state(table[b"eng-3"]).events == 5


def test_scoring_carries_state_across_batches_through_the_cache(tiny_model) -> None:
    worker = _worker(tiny_model)
    events = [e for e in tiny_history_events() if e.principal == "eng-3"][:40]
    _score(worker, events[:20])
    _score(worker, events[20:40])
    assert decode_state(worker.tables.principals[b"eng-3"]).events == 40


def test_ingest_dead_letters_ids_over_the_configured_limit(tiny_model) -> None:
    worker = _worker(tiny_model, max_id_length=8)
    event = tiny_history_events()[0].to_json()
    short = {**event, "principal": "ana", "resource": "db/hr"}
    long = {**event, "principal": "ana", "resource": "db/hr/salaries"}  # 14 characters
    _forward(worker, [_message(orjson.dumps(short), 0), _message(orjson.dumps(long), 1)])
    (letter,) = worker.topics.dead_letters.sent
    body = orjson.loads(letter["value"])
    assert body["reason"] == "too_large"
    assert "resource is 14 characters, limit 8" in body["detail"]
    forwarded = [item.event.resource for sent in worker.topics.by_principal.sent
                 for item in decode_envelope(sent["value"])]
    assert forwarded == ["db/hr"]


def test_idle_sweep_forgets_entities_idle_past_the_ttl_in_event_time(tiny_model) -> None:
    worker = _worker(tiny_model)
    asyncio.run(worker.sweep_idle())  # nothing scored yet: no clock, nothing to judge
    history = tiny_history_events()
    old = [e for e in history if e.principal == "eng-3"][:10]
    ttl = tiny_model.config.idle_ttl_days * 86400.0
    later = [dataclasses.replace(e, ts=e.ts + ttl + 86400.0)
             for e in history if e.principal == "eng-4"][:10]
    _score(worker, old)
    _score(worker, later)
    table = worker.tables.principals
    assert {b"eng-3", b"eng-4"} <= set(table)
    asyncio.run(worker.sweep_idle())
    assert b"eng-4" in table
    assert b"eng-3" not in table
    assert "eng-3" not in worker.principals.cache
    expired = worker.metrics.entities_expired.labels(side="principal", reason="idle")
    assert expired._value.get() == 1


def _one_read_each(count: int) -> list[Any]:
    """``count`` principals reading once, a minute apart (the later, the more recent)."""
    template = tiny_history_events()[0]
    return [dataclasses.replace(template, principal=f"flood-{i:03d}", ts=template.ts + 60.0 * i)
            for i in range(count)]


def test_over_max_entities_the_least_recently_active_are_forgotten(tiny_model) -> None:
    worker = _worker(tiny_model, max_entities=1000)  # no sweep on growth here
    _score(worker, _one_read_each(8))
    worker.sweeper.max_entities = 3
    asyncio.run(worker.sweep_idle())
    assert sorted(worker.tables.principals) == [b"flood-005", b"flood-006", b"flood-007"]
    evicted = worker.metrics.entities_expired.labels(side="principal", reason="cap")
    assert evicted._value.get() == 5


def test_a_flood_past_the_cap_starts_a_sweep_without_waiting_for_the_timer(tiny_model) -> None:
    worker = _worker(tiny_model, max_entities=10)

    async def flood() -> None:
        await _score_async(worker, _one_read_each(30))
        worker.sweeper.maybe_soon(len(worker.tables.principals), worker.ttl)
        assert worker.sweeper.task is not None
        await worker.sweeper.task

    asyncio.run(flood())
    assert len(worker.tables.principals) == 10
    assert b"flood-029" in worker.tables.principals


class _SlowBrokerConsumer:
    """A consumer whose broker never answers offset questions (a rebalance in progress)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any]]] = []

    async def start_offsets(self, tps: Any) -> dict[Any, int]:
        await asyncio.Event().wait()  # never answers
        return {}

    async def end_offsets(self, tps: Any) -> dict[Any, int]:
        await asyncio.Event().wait()
        return {}

    def highwater(self, tp: Any) -> None:
        return None  # nothing fetched yet

    def hold(self, tps: Any) -> None:
        self.calls.append(("hold", list(tps)))

    def release(self, tps: Any) -> None:
        self.calls.append(("release", list(tps)))

    def topic_partitions(self, topic: str) -> int:
        return 3


def test_a_broker_that_does_not_answer_never_blocks_ingest(tiny_model, monkeypatch) -> None:
    from reachwatch.streams.service import agents

    monkeypatch.setattr(agents, "BROKER_PROBE_TIMEOUT_S", 0.2)
    worker = _worker(tiny_model)
    worker.consumer = _SlowBrokerConsumer()
    worker.on_assigned([SimpleNamespace(topic="access-events", partition=p) for p in range(3)])
    worker._ingest_stream = SimpleNamespace()  # tick only needs one to exist

    async def run() -> tuple[bool, bool]:
        ticking = asyncio.create_task(worker.tick())
        await asyncio.sleep(0.05)
        # While the broker is being asked, the ingest lock is free for the next batch.
        free_while_asking = not worker._ingest_lock.locked()
        await asyncio.wait_for(ticking, 2.0)  # bounded: the question timed out
        return free_while_asking, ticking.done()

    free_while_asking, finished = asyncio.run(run())
    assert free_while_asking
    assert finished


def test_a_new_assignment_is_released_in_the_consumer_after_any_earlier_hold(tiny_model) -> None:
    worker = _worker(tiny_model)
    consumer = worker.consumer = _SlowBrokerConsumer()
    assigned = [SimpleNamespace(topic="access-events", partition=p) for p in range(3)]
    worker.consumer.hold([assigned[0]])  # asked before the rebalance, applied after it
    worker.on_assigned(assigned)
    assert consumer.calls[-1][0] == "release"
    assert {(tp.topic, tp.partition) for tp in consumer.calls[-1][1]} == {
        ("access-events", p) for p in range(3)
    }
    assert worker._paused == {}


def test_a_state_of_another_layout_starts_afresh_instead_of_failing_the_batch(tiny_model) -> None:
    from reachwatch.models.windows import STATE_LAYOUT, StateLayoutError, state_watermark
    from reachwatch.streams.service.statecache import DecodedStates

    states: dict[str, Any] = {}
    Pipeline(tiny_model).observe(PRINCIPAL, tiny_history_events()[:300], states, None)
    key, state = next(iter(states.items()))
    encoded = encode_state(state)
    older = encoded[:2] + bytes([STATE_LAYOUT - 1]) + encoded[3:]  # as an older version wrote
    try:
        decode_state(older)
    except StateLayoutError:
        pass
    else:
        raise AssertionError("a state of another layout was decoded")
    assert state_watermark(older) == state.watermark  # the idle sweep still reads it
    cache = DecodedStates(8)
    table = {key.encode(): older}
    assert cache.load(table, [key]) == {}  # a new entity, not an error
    assert cache.discarded == 1
    assert set(cache.load({key.encode(): encoded}, [key])) == {key}
