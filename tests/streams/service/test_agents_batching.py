"""The worker's batch steps without Kafka: envelopes out of ingest, state cache in scoring."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import orjson
from support.tinyorg import history as tiny_history_events

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.sides import PRINCIPAL
from reachwatch.models.windows import decode_state, encode_state
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.service.agents import Worker
from reachwatch.streams.service.envelopes import decode_envelope
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.settings import Settings
from reachwatch.streams.service.topics import ServiceTables, ServiceTopics, partition_of


class RecordingTopic:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_soon(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


def _worker(model: Any, partitions: int = 3) -> Worker:
    settings = Settings(partitions=partitions)
    topics = ServiceTopics(*(RecordingTopic() for _ in range(5)))
    return Worker(settings=settings, pipeline=Pipeline(model), watcher=None,  # type: ignore[arg-type]
                  chain=Chain(get_adapter("native"), limits=settings.limits), topics=topics,
                  tables=ServiceTables({}, {}),  # type: ignore[arg-type]
                  metrics=Metrics(topics=settings.input_topics))


def _message(value: bytes, offset: int) -> SimpleNamespace:
    return SimpleNamespace(value=value, topic="access-events", partition=0, offset=offset,
                           key=None, timestamp=0.0)


def test_ingest_sends_each_event_once_per_side_on_its_entity_partition(tiny_model) -> None:
    worker = _worker(tiny_model)
    events = tiny_history_events()[:200]
    messages = [_message(orjson.dumps(e.to_json()), i) for i, e in enumerate(events)]
    messages.append(_message(b"{broken", len(messages)))
    worker.ingest_batch(messages)
    for topic, key_of in ((worker.topics.by_principal, lambda e: e.principal),
                          (worker.topics.by_resource, lambda e: e.resource)):
        got = []
        for sent in topic.sent:
            for item in decode_envelope(sent["value"]):
                assert partition_of(key_of(item.event).encode(), 3) == sent["partition"]
                got.append(item.event)
        assert sorted(got, key=lambda e: (e.ts, e.principal)) == sorted(
            events, key=lambda e: (e.ts, e.principal))
        # One envelope per partition, not one message per event.
        assert len(topic.sent) <= 3
    assert len(worker.topics.dead_letters.sent) == 1


def _score(worker: Worker, events: list[Any]) -> None:
    worker.ingest_batch([_message(orjson.dumps(e.to_json()), i) for i, e in enumerate(events)])
    batch = [sent["value"] for sent in worker.topics.by_principal.sent]
    worker.topics.by_principal.sent.clear()
    worker.topics.by_resource.sent.clear()
    asyncio.run(worker.score_batch(batch, "principal"))


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
    worker = _worker(tiny_model)
    worker.settings = Settings(partitions=3, max_id_length=8)
    worker.chain = Chain(get_adapter("native"), limits=worker.settings.limits)
    event = tiny_history_events()[0].to_json()
    short = {**event, "principal": "ana", "resource": "db/hr"}
    long = {**event, "principal": "ana", "resource": "db/hr/salaries"}  # 14 characters
    worker.ingest_batch([_message(orjson.dumps(short), 0), _message(orjson.dumps(long), 1)])
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
    assert "eng-3" not in worker.decoded["principal"]
    expired = worker.metrics.entities_expired.labels(side="principal", reason="idle")
    assert expired._value.get() == 1


def _one_read_each(count: int) -> list[Any]:
    """``count`` principals reading once, a minute apart (the later, the more recent)."""
    template = tiny_history_events()[0]
    return [dataclasses.replace(template, principal=f"flood-{i:03d}", ts=template.ts + 60.0 * i)
            for i in range(count)]


def test_over_max_entities_the_least_recently_active_are_forgotten(tiny_model) -> None:
    worker = _worker(tiny_model)
    worker.settings = Settings(partitions=3, max_entities=1000)  # no sweep on growth here
    _score(worker, _one_read_each(8))
    worker.settings = Settings(partitions=3, max_entities=3)
    asyncio.run(worker.sweep_idle())
    assert sorted(worker.tables.principals) == [b"flood-005", b"flood-006", b"flood-007"]
    evicted = worker.metrics.entities_expired.labels(side="principal", reason="cap")
    assert evicted._value.get() == 5


def test_a_flood_past_the_cap_starts_a_sweep_without_waiting_for_the_timer(tiny_model) -> None:
    worker = _worker(tiny_model)
    worker.settings = Settings(partitions=3, max_entities=10)

    async def flood() -> None:
        worker.ingest_batch([_message(orjson.dumps(e.to_json()), i)
                             for i, e in enumerate(_one_read_each(30))])
        await worker.score_batch([sent["value"] for sent in worker.topics.by_principal.sent],
                                 "principal")
        assert worker.sweep_task is not None
        await worker.sweep_task

    asyncio.run(flood())
    assert len(worker.tables.principals) == 10
    assert b"flood-029" in worker.tables.principals
