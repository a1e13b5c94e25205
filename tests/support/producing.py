"""Producing a retained topic from outside the worker (librdkafka): keyed by principal, or
round-robin over the partitions, as log shippers without a key spread their records."""

from __future__ import annotations

import orjson


def produce_keyed(
    bootstrap: str, topic: str, lines: list[bytes], round_robin: int = 0
) -> None:
    """Produce ``lines`` to ``topic`` keyed by their principal, as a log shipper would, or
    without a key to partitions 0, 1, ... ``round_robin - 1`` in turn (if given).

    One record per batch: the embedded tansu 0.6.0 reports a partition's end offset as the
    first offset of its last batch + 1, so with large batches a partition still holding most
    of a batch looks read to the end, and idle to the worker's alignment once quiet.
    """
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "batch.num.messages": 1, "queue.buffering.max.messages": 500_000})
    for index, line in enumerate(lines):
        principal = orjson.loads(line)["principal"].encode()
        where = {"partition": index % round_robin} if round_robin else {"key": principal}
        while True:
            try:
                producer.produce(topic, value=line, **where)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0, "messages still undelivered after 120 s"
