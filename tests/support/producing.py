"""Producing a retained topic from outside the worker, keyed by principal (librdkafka)."""

from __future__ import annotations

import orjson


def produce_keyed(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    """Produce ``lines`` to ``topic`` keyed by their principal, as a log shipper would.

    One record per batch: the embedded tansu 0.6.0 reports a partition's end offset as the
    first offset of its last batch + 1, so with large batches a partition still holding most
    of a batch looks read to the end, and idle to the worker's alignment once quiet.
    """
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "batch.num.messages": 1, "queue.buffering.max.messages": 500_000})
    for line in lines:
        principal = orjson.loads(line)["principal"].encode()
        while True:
            try:
                producer.produce(topic, key=principal, value=line)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0, "messages still undelivered after 120 s"
