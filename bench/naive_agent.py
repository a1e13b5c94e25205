"""The baselines reachwatch is compared with, as standalone processes.

    python bench/naive_agent.py faust-sklearn BROKER TOPIC N RESULT.json MODEL_DIR
    python bench/naive_agent.py faust-noop    BROKER TOPIC N RESULT.json
    python bench/naive_agent.py aiokafka      BROKER TOPIC N RESULT.json

- ``faust-sklearn``: what most demos do: a Faust agent that decodes each event, keeps a
  dict of counters and calls ``IsolationForest.score_samples`` once per event.
- ``faust-noop``: the same agent doing nothing but a dict update (Faust's own per-event
  cost). It also counts the consumer's fetches and the records each returned, to check
  the "one record per fetch" hypothesis of issue 5.
- ``faust-chunked-noop``: the no-op agent on reachwatch's transport with chunked input
  (``streams/service/chunks.py``): one Faust message per fetched run of up to 500
  records, each record decoded and counted as above.
- ``aiokafka``: the Python limit: ``getmany`` + orjson decode, nothing else.

Each writes ``{"events", "seconds", "cpu_seconds", "fetches", "records"}`` to RESULT.json,
timed from the first message to the N-th, then exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

FETCHES = {"fetches": 0, "records": 0}


def _count_fetches() -> None:
    # Wrap Faust's fetch in the consumer thread: one call per getmany round trip.
    from faust.transport.drivers import aiokafka as driver

    original = driver.AIOKafkaConsumerThread._fetch_records

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        records = await original(self, *args, **kwargs)
        FETCHES["fetches"] += 1
        FETCHES["records"] += sum(len(v) for v in records.values())
        return records

    driver.AIOKafkaConsumerThread._fetch_records = counted


def _write(result_path: Path, events: int, started: float, cpu_started: float) -> None:
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu_started
    result_path.write_bytes(orjson.dumps({"events": events, "seconds": elapsed,
                                          "cpu_seconds": cpu, **FETCHES}))


def run_faust(mode: str, broker: str, topic: str, total: int, result: Path,
              model_dir: str | None) -> None:
    import faust
    import numpy as np

    _count_fetches()
    app = faust.App(f"naive-{os.getpid()}", broker=broker, store="memory://",
                    web_enabled=False, broker_session_timeout=6.0,
                    broker_heartbeat_interval=1.5, autodiscover=False)
    if mode == "faust-chunked-noop":
        from reachwatch.streams.service.settings import DEFAULT_INPUT_CHUNK
        from reachwatch.streams.service.transport import use_short_fetch_wait

        use_short_fetch_wait(app, [topic], chunked=[topic], chunk=DEFAULT_INPUT_CHUNK)
    source = app.topic(topic, value_serializer="raw", key_serializer="raw")
    forest = None
    if mode == "faust-sklearn":
        from reachwatch.models.registry import Registry

        forest = Registry(Path(model_dir or "")).load("current").detectors["broad_reader"].forest_
    counts: dict[str, int] = {}
    seen = {"n": 0, "started": 0.0, "cpu": 0.0}

    def count(value: bytes) -> None:
        if seen["n"] == 0:
            seen["started"], seen["cpu"] = time.monotonic(), time.process_time()
        event = orjson.loads(value)
        principal = event.get("principal", "")
        counts[principal] = counts.get(principal, 0) + 1
        if forest is not None:
            row = np.full((1, forest.n_features_in_), float(counts[principal]))
            forest.score_samples(row)
        seen["n"] += 1
        if seen["n"] >= total:
            _write(result, seen["n"], seen["started"], seen["cpu"])
            os.kill(os.getpid(), signal.SIGTERM)

    if mode == "faust-chunked-noop":
        from reachwatch.streams.service.chunks import records_of

        @app.agent(source)
        async def consume_chunks(stream: Any) -> None:
            async for event in stream.events():
                for record in records_of(event.message):
                    count(record.value)
    else:
        @app.agent(source)
        async def consume(stream: Any) -> None:
            async for value in stream:
                count(value)

    from faust.worker import Worker

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


async def run_aiokafka(broker: str, topic: str, total: int, result: Path) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.removeprefix("kafka://"),
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=4 << 20, max_poll_records=5000)
    await consumer.start()
    try:
        events = 0
        started = cpu = 0.0
        while events < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if batches and not started:
                # The clock starts once the first batch is in (group join and the first
                # fetch are not throughput): that batch is not counted.
                started, cpu = time.monotonic(), time.process_time()
                total -= sum(len(r) for r in batches.values())
                continue
            for records in batches.values():
                FETCHES["fetches"] += 1
                FETCHES["records"] += len(records)
                for record in records:
                    orjson.loads(record.value)
                events += sum(len(r) for r in batches.values())
        _write(result, events, started, cpu)
    finally:
        await consumer.stop()


def main(argv: list[str]) -> None:
    mode, broker, topic, total, result = argv[:5]
    if mode == "aiokafka":
        asyncio.run(run_aiokafka(broker, topic, int(total), Path(result)))
    else:
        run_faust(mode, broker, topic, int(total), Path(result), argv[5] if len(argv) > 5 else None)


if __name__ == "__main__":
    main(sys.argv[1:])
