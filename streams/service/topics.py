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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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


def define_topics(app: faust.App, settings: Settings) -> ServiceTopics:
    # Input topics are declared "internal" only so Faust creates them when missing (handy
    # on a fresh embedded broker); an existing topic keeps its partitions and config.
    return ServiceTopics(
        inputs=app.topic(*settings.input_topics, internal=True,
                         partitions=settings.partitions, **RAW),
        by_principal=app.topic(settings.principal_topic, internal=True,
                               partitions=settings.partitions, **RAW),
        by_resource=app.topic(settings.resource_topic, internal=True,
                              partitions=settings.partitions, **RAW),
        alerts=app.topic(settings.alerts_topic, partitions=settings.partitions, **RAW),
        dead_letters=app.topic(settings.dlq_topic, partitions=settings.partitions,
                               retention=settings.dlq_retention, **RAW),
    )


def define_tables(app: faust.App, settings: Settings) -> ServiceTables:
    def table(name: str) -> TableT:
        table = app.Table(
            name,
            default=None,
            partitions=settings.partitions,
            use_partitioner=True,
            key_type=bytes,
            value_type=bytes,
        )
        # Table() takes no serializer arguments and derives "json" from bytes types; set
        # them before the changelog topic (created lazily) copies them.
        table.key_serializer = "raw"
        table.value_serializer = "raw"
        return table

    return ServiceTables(principals=table("principal-state"), resources=table("resource-state"))
