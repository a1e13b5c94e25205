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

from reachwatch.models.records import Limits
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.messages import read_message

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

    chain = Chain(get_adapter("native"), limits=Limits(max_message_bytes=MAX_MESSAGE_BYTES))
    fates = [read_message(message, chain) for message in stream]
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
    # Verbatim with the reason intake gives it; above the size limit only a prefix is kept
    # (a whole copy would exceed the producer's request size and crash the worker).
    assert by_value == Counter(
        (None if m is None else m[:MAX_MESSAGE_BYTES], code) for m, code in rejected
    )
    truncated = [letter for letter in letters if letter.get("value_truncated")]
    assert len(truncated) == sum(1 for m, _ in rejected if m and len(m) > MAX_MESSAGE_BYTES)
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


ATTACK_RATE = 10_000  # new principals per second
FLOOD_CAP = 20_000
ATTACK_SECONDS = 30
RSS_BOUND_MB = 1536


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set of ``pid`` in MB, from /proc."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


@pytest.mark.slow
def test_cardinality_attack_keeps_worker_memory_bounded_and_alive(service, start_worker):
    from confluent_kafka import Producer

    # A cap far below the flood, so the test also shows the cap at work on a live worker.
    worker = start_worker(REACHWATCH_LOG_LEVEL="warning", REACHWATCH_MAX_ENTITIES=str(FLOOD_CAP))
    worker.wait_assigned()
    pid = worker.pid
    producer = Producer({"bootstrap.servers": service.broker.bootstrap, "linger.ms": 20,
                         "queue.buffering.max.messages": 500_000})
    started = time.monotonic()
    samples = []
    for second in range(ATTACK_SECONDS):
        for i in range(ATTACK_RATE):
            n = second * ATTACK_RATE + i
            producer.produce(service.input_topic, value=orjson.dumps({
                "ts": 1773738000 + n * 0.0001, "principal": f"flood-{n}",
                "resource": f"hr/ds{n % 50}", "sensitivity": "internal"}))
        producer.poll(0)
        samples.append((worker.status()["messages_in"], *rss_mb(pid)))
        time.sleep(max(0.0, started + second + 1 - time.monotonic()))
    assert producer.flush(60) == 0
    # Then let it work through the backlog for as long as the flood lasted.
    for _ in range(ATTACK_SECONDS):
        time.sleep(1)
        samples.append((worker.status()["messages_in"], *rss_mb(pid)))
    consumed, _, peak = samples[-1]
    print(f"\ncardinality attack: {ATTACK_RATE * ATTACK_SECONDS:,} new principals in "
          f"{ATTACK_SECONDS}s; worker read {consumed:,} in {2 * ATTACK_SECONDS}s, "
          f"peak RSS {peak:,.0f} MB")
    assert worker.pid == pid and worker.process.poll() is None, worker.log_tail()
    assert peak < RSS_BOUND_MB
    assert consumed > samples[ATTACK_SECONDS - 1][0]  # still making progress after the flood
    held = worker.status()["principals"]
    evicted = next(float(line.rsplit(" ", 1)[1]) for line in worker.metrics().splitlines()
                   if line.startswith('reachwatch_entities_expired_total{reason="cap",'
                                      'side="principal"}'))
    print(f"principals held {held:,} (cap {FLOOD_CAP:,}), evicted {evicted:,.0f}")
    # Over the cap only by what arrived since the last sweep (sweeps start at +10 %).
    assert held <= FLOOD_CAP * 1.1 + 2 * ATTACK_RATE
    assert evicted > 0  # (ingested is ahead of scored, so no tighter bound from counts)
