"""Event-to-alert latency of one worker at fixed offered rates.

Alerts are rare by design, so latency is measured with *probes*: the worker runs a copy
of the model whose thresholds let every read qualify, and every probe is a read by a
principal never seen before, so each probe raises exactly one "new" ``broad_reader``
alert. Background reads (the simulated company's, re-timed to now) fill the rest of the
offered rate. Latency is wall time from handing the probe to the producer to reading its
alert back from the alerts topic: what a SIEM behind the alerts topic would see.

    .venv/bin/python bench/latency.py MODEL_DIR EVENTS.jsonl --rates 1,1000,10000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from harness import Subprocess, peak_rss_bytes, rss_bytes, start_worker, wait_ready

from reachwatch.models.registry import Registry
from reachwatch.streams.local.broker import BrokerProcess, embedded_broker

PROBES_PER_SECOND = 20.0  # at most; at 1 ev/s every event is a probe


@dataclass
class Latency:
    rate: float
    achieved_rate: float
    probes_sent: int
    probes_seen: int
    p50: float
    p99: float
    rss: int
    peak_rss: int
    load: float = 0.0


def probe_model(source: Path, target: Path) -> Path:
    """A promoted copy of ``source``'s model in which every scored read qualifies."""
    if (target / "current").exists() or any(target.glob("*/metadata.json")):
        return target
    model = Registry(source).load("current")
    detectors = model.detectors  # loaded just for this copy: changed in place
    for detector in detectors.values():
        detector.score_threshold_, detector.breadth_threshold_ = 0.0, -1e9
    registry = Registry(target)
    registry.promote(registry.write(detectors, model.profiles, model.metadata))
    return target


def _templates(background: list[dict]) -> list[bytes]:
    """Each background read as JSON without its ``ts``, so re-timing it to now costs a byte
    concatenation, not a re-encode: the offering process must keep up with 30k ev/s."""
    return [orjson.dumps({k: v for k, v in row.items() if k != "ts"})[1:] for row in background]


async def _offer(broker: BrokerProcess, topic: str, alerts_topic: str, templates: list[bytes],
                 rate: float, seconds: float, tag: str) -> tuple[float, list[float], int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from confluent_kafka import Producer

    # librdkafka: a produce() call is a few µs, so the offered rate is the one asked for.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 2,
                         "queue.buffering.max.messages": 1_000_000})
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    try:
        # The worker declares its alerts topic with its default partition count (4).
        consumer.assign([TopicPartition(alerts_topic, p) for p in range(4)])
        await consumer.seek_to_end()

        async def read_alerts() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                now = time.monotonic()
                for records in batches.values():
                    for record in records:
                        entity = orjson.loads(record.value).get("entity", "")
                        started = sent_at.pop(entity, None)
                        if started is not None:
                            latencies.append(now - started)

        reader = asyncio.create_task(read_alerts())
        probe_every = max(1, round(rate / PROBES_PER_SECOND))
        start = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate) + 1
            stamp = b'{"ts":%.3f,' % time.time()
            while sent < due:
                body = templates[sent % len(templates)]
                if sent % probe_every == 0:
                    principal = f"probe-{tag}-{sent}"
                    row = orjson.loads(b"{" + body)
                    row["principal"] = principal
                    body = orjson.dumps(row)[1:]
                    sent_at[principal] = time.monotonic()
                while True:
                    try:
                        producer.produce(topic, stamp + body)
                        break
                    except BufferError:
                        producer.poll(0.01)
                sent += 1
            producer.poll(0)
            await asyncio.sleep(0.005)
        achieved = sent / (time.monotonic() - start)
        producer.flush(30)
        probes = sent // probe_every + (1 if sent % probe_every else 0)
        deadline = time.monotonic() + 10.0
        while sent_at and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        reader.cancel()
        return achieved, latencies, probes
    finally:
        producer.flush(10)
        await consumer.stop()


def measure(broker: BrokerProcess, registry: Path, lines: list[bytes], workdir: Path,
            rates: list[float], seconds: float) -> list[Latency]:
    """One worker, the offered rates in turn (lowest first)."""
    tag = uuid.uuid4().hex[:6]
    topic, alerts_topic = f"lat-{tag}", f"lat-alerts-{tag}"
    background = _templates([orjson.loads(line) for line in lines[:50_000]])
    worker: Subprocess = start_worker(broker.url, registry, workdir, f"rw-lat-{tag}", topic,
                                      alerts_topic)
    results = []
    try:
        wait_ready(worker)
        # Let the alerts topic exist before the reader assigns it.
        asyncio.run(_offer(broker, topic, alerts_topic, background, 5.0, 2.0, f"warm{tag}"))
        for rate in rates:
            achieved, latencies, probes = asyncio.run(
                _offer(broker, topic, alerts_topic, background, rate,
                       max(seconds, 20.0) if rate < 5 else seconds, f"{int(rate)}x{tag}")
            )
            values = np.asarray(latencies) if latencies else np.asarray([np.nan])
            results.append(Latency(rate, achieved, probes, len(latencies),
                                   float(np.percentile(values, 50)),
                                   float(np.percentile(values, 99)),
                                   rss_bytes(worker.pid), peak_rss_bytes(worker.pid),
                                   os.getloadavg()[0]))
    finally:
        worker.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("events", type=Path)
    parser.add_argument("--rates", default="1,1000,10000")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    lines = [ln for ln in args.events.read_bytes().splitlines() if ln.strip()]
    with tempfile.TemporaryDirectory() as tmp, embedded_broker() as broker:
        registry = probe_model(args.model, Path(tmp) / "probe-model")
        for row in measure(broker, registry, lines, Path(tmp),
                           [float(r) for r in args.rates.split(",")], args.seconds):
            print(row)


if __name__ == "__main__":
    main()
