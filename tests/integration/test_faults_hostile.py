"""Hostile input through the live stream: the worker dead-letters it and never restarts.

The library side (every corpus line's exact reason, property-based fuzzing) is proven in
tests/streams/test_hostile_input.py. Here the same corpus (tests/fixtures/nasty/), plus
whole-message cases only Kafka can carry (an empty value, a tombstone, messages above the
worker's size limit), goes through a running worker with good events between them.
"""

from __future__ import annotations

import base64
import gzip
import re
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from reachwatch.streams.adapters import get_adapter
from reachwatch.streams.intake import admit

pytestmark = pytest.mark.integration

NASTY = Path(__file__).parents[1] / "fixtures" / "nasty"
MAX_MESSAGE_BYTES = 256 * 1024  # below the corpus's 1 MB lines, so they are "too_large"
CANARY = "zz-canary-principal-5e1f"  # a principal name that must never appear in the log
BIG_MESSAGE = 2 * 1024 * 1024


def corpus_messages() -> list[bytes]:
    """Every line of the nasty corpus (gzip files decompressed), in file order."""
    messages: list[bytes] = []
    for path in sorted(NASTY.glob("*.jsonl*")):
        if path.name in ("truncated.jsonl.gz", "corrupted.jsonl.gz"):
            continue  # damaged files test the file reader, not message intake
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        messages.extend(line for line in raw.split(b"\n") if line)
    return messages


def canary(n: int) -> bytes:
    return orjson.dumps({"ts": 1773738000 + 60 * n, "principal": CANARY,
                         "resource": f"hr/ds{n % 5}", "sensitivity": "confidential"})


def produce(broker, topic: str, values: list[bytes | None]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                         "message.max.bytes": BIG_MESSAGE + 65536})
    for value in values:
        producer.produce(topic, value=value)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still undelivered after 30 s"


def counter_value(metrics: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        found = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if found and ",".join(sorted(found.group(1).split(","))) == wanted:
            return float(found.group(2))
    return 0.0


def test_nasty_messages_are_dead_lettered_good_ones_scored_worker_never_restarts(
    service, start_worker, clients
):
    worker = start_worker(REACHWATCH_MAX_MESSAGE_BYTES=str(MAX_MESSAGE_BYTES),
                          REACHWATCH_LOG_LEVEL="info")
    worker.wait_assigned()
    pid = worker.pid
    nasty: list[bytes | None] = [
        *corpus_messages(),
        b"",  # empty value
        None,  # tombstone
        b'{"ts": 1773738000, "principal": "' + b"x" * BIG_MESSAGE + b'", "resource": "r"}',
    ]
    # Good canary events between every few nasty ones.
    stream: list[bytes | None] = []
    for index, message in enumerate(nasty):
        if index % 5 == 0:
            stream.append(canary(index))
        stream.append(message)
    stream.append(canary(len(nasty)))

    adapter = get_adapter("native")
    fates = [admit(message, adapter, MAX_MESSAGE_BYTES) for message in stream]
    rejected = [(m, f.rejected.code) for m, f in zip(stream, fates, strict=True) if f.rejected]
    accepted = sum(len(f.events) for f in fates)
    expected_reasons = Counter(code for _, code in rejected)
    # The corpus covers every class of hostile input the service promises to handle.
    assert {"not_utf8", "not_json", "too_large", "absurd_count", "negative_count",
            "bad_timestamp", "wrong_type", "missing_field", "bad_value", "not_object",
            "empty_field"} <= set(expected_reasons)

    produce(service.broker, service.input_topic, stream)
    letters = clients.read_topic(service.dlq_topic, lambda r: len(r) >= len(rejected),
                                 timeout=90)
    status = worker.wait_until(lambda s: s["messages_in"] >= len(stream), 90, "every message")

    assert Counter(letter["reason"] for letter in letters) == expected_reasons
    by_value = Counter(
        (None if letter["value"] is None else base64.b64decode(letter["value"]), letter["reason"])
        for letter in letters
    )
    assert by_value == Counter(rejected)  # verbatim, with the reason intake gives it
    assert all(letter["detail"] for letter in letters)

    # Good events around the bad ones are all scored (or counted late), none lost.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = worker.metrics()
        done = sum(counter_value(text, "reachwatch_events_consumed_total",
                                 topic=service.input_topic, outcome=outcome)
                   for outcome in ("scored", "late"))
        if done >= accepted:
            break
        time.sleep(0.5)
    assert done == accepted
    assert worker.pid == pid and worker.process.poll() is None
    assert status["messages_in"] == len(stream)

    # At INFO nothing of an event reaches the log: not a principal, not a rejected value.
    log = worker.log_path.read_bytes()
    assert CANARY.encode() not in log
    assert b"x" * 100 not in log and b"hr/ds" not in log
