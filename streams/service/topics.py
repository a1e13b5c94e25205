"""The service's Kafka topics and tables, declared on a Faust app.

Everything on the wire is raw bytes (keys and values): input messages must reach the dead
letter topic exactly as they arrived, and reachwatch's own records are JSON it encodes
itself (``records`` for events, ``alerts`` for alerts, ``windows`` for table state).

Two internal topics repartition the validated events: one keyed by principal, one by
resource. Each feeds a changelog-backed table of the same partition count, keyed the same
way, so a principal's window state lives in the same partition number as its events and
moves with them on a rebalance. The tables write their changelog with the producer's key
partitioner (``use_partitioner``) rather than "the partition of the current event": a
micro-batch spans several partitions, and the key partitioner is the one the internal
topics were written with, so both agree.

Table writes are kept (``DurableTable.settle``): an envelope is acknowledged only after the
changelog writes of the states it changed are acknowledged by the broker, not after a
producer flush that may return with writes still queued (``streams.service.delivery``).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.types import TableT, TopicT

from reachwatch.streams.service.settings import Settings

RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


@dataclass(frozen=True, slots=True)
class ServiceTopics:
    """The topics one worker reads and writes."""

    inputs: TopicT
    by_principal: TopicT
    by_resource: TopicT
    alerts: TopicT
    dead_letters: TopicT

    def declared_outputs(self) -> tuple[TopicT, ...]:
        """Topics the worker creates if missing (Faust only creates topics it consumes)."""
        return (self.alerts, self.dead_letters)


@dataclass(frozen=True, slots=True)
class ServiceTables:
    """Per-principal and per-resource window state: ``encode_state`` bytes by entity."""

    principals: TableT
    resources: TableT


@lru_cache(maxsize=1 << 16)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition the producer's default (Java-compatible murmur2) partitioner gives ``key``.

    Envelopes are sent to an explicit partition: it must be the one a keyed message (and the
    table's changelog entry, ``use_partitioner``) for the same entity would get. Cached:
    aiokafka's murmur2 is pure Python and entities repeat.

    >>> partition_of(b"ana", 4) == partition_of(b"ana", 4) < 4
    True
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def input_buffer(app: faust.App, settings: Settings) -> int:
    """Input messages Faust buffers ahead of the ingest agent: its own bound counts messages,
    and a chunk (``chunks``) holds up to ``input_chunk`` records, so about as many records as
    with a message per record, and at least two ingest steps' worth."""
    return max(2 * settings.ingest_take,
               math.ceil(app.conf.stream_buffer_maxsize / settings.input_chunk))


def define_topics(app: faust.App, settings: Settings) -> ServiceTopics:
    # Input topics are declared "internal" only so Faust creates them when missing (handy
    # on a fresh embedded broker); an existing topic keeps its partitions and config.
    return ServiceTopics(
        inputs=app.topic(
            *settings.input_topics, internal=True, partitions=settings.partitions,
            maxsize=input_buffer(app, settings), **RAW
        ),
        by_principal=app.topic(
            settings.principal_topic, internal=True, partitions=settings.partitions, **RAW
        ),
        by_resource=app.topic(
            settings.resource_topic, internal=True, partitions=settings.partitions, **RAW
        ),
        alerts=app.topic(settings.alerts_topic, partitions=settings.partitions, **RAW),
        dead_letters=app.topic(settings.dlq_topic, partitions=settings.partitions,
                               retention=settings.dlq_retention, **RAW),
    )


class DurableTable(faust.Table):
    """A Faust table that keeps its changelog sends until ``settle`` awaits them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unsettled: list[tuple[Any, Any]] = []

    def send_changelog(
        self, partition: Any, key: Any, value: Any, *args: Any, **kwargs: Any
    ) -> Any:
        fut = super().send_changelog(partition, key, value, *args, **kwargs)
        self.unsettled.append((key, fut))
        return fut


async def changelogs_known(app: faust.App, timeout: float) -> bool:
    """Wait until the producer knows the partitions of every table's changelog topic.

    A table write picks its changelog partition at once, from the producer's metadata as it
    is: the first write to a changelog topic created moments ago raised ``TypeError`` inside
    aiokafka (no partition list yet), which crashed both scoring agents in a loaded run of
    ``test_faults_hostile.py`` (Faust restarts a crashed agent; that batch was never scored).
    False if some topic was still unknown after ``timeout`` seconds (asked again later).
    """
    producer = app.producer._ensure_producer()
    names = [table.changelog_topic.get_topic_name() for table in app.tables.values()]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(producer.partitions_for(name) for name in names)), timeout
        )
    except Exception:
        return False
    return True


async def settle(table: Any) -> None:
    """Wait until every change written to ``table`` so far is acknowledged by the broker.

    A write that failed is written again (with its current value) until it goes through.
    Plain mappings (tests) have nothing to settle.
    """
    unsettled = getattr(table, "unsettled", None)
    while unsettled:
        batch = list(unsettled)
        unsettled.clear()
        results = await asyncio.gather(*(fut for _, fut in batch), return_exceptions=True)
        failed = [
            key for (key, _), r in zip(batch, results, strict=True) if isinstance(r, BaseException)
        ]
        if failed:
            await asyncio.sleep(0.5)
            for key in dict.fromkeys(failed):
                value = table.get(key)
                if value is None:  # a deletion: its tombstone again
                    table.send_changelog(None, key, None, value_serializer="raw")
                else:
                    table[key] = value


def define_tables(app: faust.App, settings: Settings) -> ServiceTables:
    def table(name: str) -> TableT:
        table = app.tables.add(
            DurableTable(
                app,
                name=name,
                default=None,
                beacon=app.tables.beacon,
                partitions=settings.partitions,
                use_partitioner=True,
                key_type=bytes,
                value_type=bytes,
            )
        )
        # Table() takes no serializer arguments and derives "json" from bytes types; set
        # them before the changelog topic (created lazily) copies them.
        table.key_serializer = "raw"
        table.value_serializer = "raw"
        return table

    return ServiceTables(principals=table("principal-state"), resources=table("resource-state"))
