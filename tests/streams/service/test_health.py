"""Health gauges: broker reachability, consumer lag per input topic, tracked entities."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from reachwatch.streams.service.health import HealthProbe, lag_by_topic
from reachwatch.streams.service.metrics import Metrics

EVENTS = "access-events"


def test_lag_sums_uncommitted_messages_per_input_topic() -> None:
    ends = {TP(EVENTS, 0): 100, TP(EVENTS, 1): 50, TP("internal", 0): 999}
    committed = {TP(EVENTS, 0): 90, TP(EVENTS, 1): 50}
    assert lag_by_topic(ends, committed, [EVENTS]) == {EVENTS: 10}


def test_partition_without_commit_counts_from_the_start() -> None:
    assert lag_by_topic({TP(EVENTS, 0): 7}, {TP(EVENTS, 0): None}, [EVENTS]) == {EVENTS: 7}


def test_offset_beyond_end_never_makes_negative_lag() -> None:
    # A committed offset can briefly lead a stale end offset.
    assert lag_by_topic({TP(EVENTS, 0): 5}, {TP(EVENTS, 0): 6}, [EVENTS]) == {EVENTS: 0}


class FakeConsumer:
    def __init__(self, ends: dict[TP, int], committed: dict[TP, int]) -> None:
        self.ends = ends
        self._committed_offset = committed

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}


def _probe(metadata: Any, consumer: Any) -> tuple[HealthProbe, Metrics]:
    metrics = Metrics(CollectorRegistry(), topics=(EVENTS,))

    async def force_metadata_update() -> bool:
        if isinstance(metadata, Exception):
            raise metadata
        if metadata == "hang":
            await asyncio.sleep(10)
        return bool(metadata)

    client = SimpleNamespace(force_metadata_update=force_metadata_update)
    app = SimpleNamespace(
        producer=SimpleNamespace(_producer=SimpleNamespace(client=client)), consumer=consumer
    )
    tables = SimpleNamespace(principals={b"a": 1, b"b": 2}, resources={b"r": 3})
    return HealthProbe(app, tables, metrics, timeout=0.05), metrics  # type: ignore[arg-type]


def _gauge(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_sample_sets_broker_up_lag_and_table_sizes() -> None:
    consumer = FakeConsumer({TP(EVENTS, 0): 40, TP(EVENTS, 1): 5}, {TP(EVENTS, 0): 30})
    probe, metrics = _probe(True, consumer)
    asyncio.run(probe.sample())
    assert _gauge(metrics, "reachwatch_broker_up") == 1
    assert _gauge(metrics, "reachwatch_consumer_lag_messages", topic=EVENTS) == 15
    assert _gauge(metrics, "reachwatch_tracked_entities", side="principal") == 2
    assert _gauge(metrics, "reachwatch_tracked_entities", side="resource") == 1


def test_broker_is_down_when_metadata_fails_or_hangs() -> None:
    for metadata in (False, ConnectionError("refused"), "hang"):
        probe, metrics = _probe(metadata, FakeConsumer({}, {}))
        metrics.broker_up.set(1)
        asyncio.run(probe.sample())
        assert _gauge(metrics, "reachwatch_broker_up") == 0, metadata


def test_lag_keeps_its_last_value_when_offsets_are_unavailable() -> None:
    class Rebalancing(FakeConsumer):
        async def highwaters(self, *tps: TP) -> dict[TP, int]:
            raise RuntimeError("rebalance in progress")

    probe, metrics = _probe(True, Rebalancing({TP(EVENTS, 0): 9}, {}))
    metrics.consumer_lag.labels(topic=EVENTS).set(4)
    asyncio.run(probe.sample())
    assert _gauge(metrics, "reachwatch_consumer_lag_messages", topic=EVENTS) == 4
