"""End offsets are where the log really ends, even when the broker's ListOffsets says less.

The embedded tansu broker reports the base offset of a partition's last record batch plus
one as its end (streams/service/logend.py); Faust's changelog recovery then stops short of
the last states written, and a restarted worker forgets what they held.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from reachwatch.streams.service.logend import log_ends

pytestmark = pytest.mark.integration


def _produce_batches(bootstrap: str, topic: str, batches: dict[int, int]) -> dict[int, int]:
    """Per partition, ``count`` records sent in one batch; the offset after the last."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=200, batch_size=1 << 20)
    ends: dict[int, int] = {}
    try:
        for partition, count in batches.items():
            futures = [producer.send(topic, value=b"v", partition=partition) for _ in range(count)]
            producer.flush(30)
            ends[partition] = futures[-1].get(30).offset + 1
    finally:
        producer.close()
    return ends


async def _ends(bootstrap: str, tps: list[TopicPartition]) -> tuple[dict, dict]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        listed = await consumer.end_offsets(tps)
        return listed, await log_ends(consumer._client, listed)
    finally:
        await consumer.stop()


def test_end_offsets_count_every_record_of_the_last_batch(broker):
    topic = f"logend-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    # Partition 0 ends with a batch of five records, partition 1 with a single one.
    _produce_batches(broker.bootstrap, topic, {0: 1, 1: 1})
    truth = _produce_batches(broker.bootstrap, topic, {0: 5, 1: 1})
    assert truth == {0: 6, 1: 2}

    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    listed, ends = asyncio.run(_ends(broker.bootstrap, tps))

    assert {tp.partition: end for tp, end in ends.items()} == truth
    # Never below what the broker listed (on tansu 0.1.2 the listing says 2 for partition 0).
    assert all(ends[tp] >= listed[tp] for tp in tps)
