"""Soak a live worker: many principals and resources through Kafka, peak RSS of the worker.

    .venv/bin/python bench/soak.py [--principals 100000] [--resources 1000000]
                                   [--events N] [--timeout 1800] [--workdir DIR]

Starts the embedded tansu broker and one ``reachwatch run`` worker (a separate process, as
in production), produces ``--events`` reads (default: one per resource) over
``--principals`` principals and ``--resources`` resources with librdkafka, and samples the
worker's RSS from /proc every second until it has ingested and scored everything. Prints
one JSON line per sample and a summary line: peak RSS (the kernel's VmHWM), throughput,
entities held in the worker's state tables. ``bench/memory.py`` measures the same state
offline (``Pipeline``, no Kafka); this one includes Faust, the changelog tables and the
producer buffers. Target from issue 6: peak RSS under 1.5 GB at 100k x 1M.

Processes are stopped by the PIDs this script holds, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from harness import Subprocess, peak_rss_bytes, rss_bytes, start_worker, wait_ready

from reachwatch.models.records import SENSITIVITIES
from reachwatch.models.registry import Registry
from reachwatch.models.tinyorg import START, history
from reachwatch.models.training import TrainingParams, fit
from reachwatch.streams.local.broker import embedded_broker

TEAMS = 10
PRODUCE_CHUNK = 50_000
MB = 2**20


def reads(events: int, principals: int, resources: int, t0: float):
    """One read per step: resource i (cycling), by a principal striding over all of them."""
    for i in range(events):
        team = i % TEAMS
        yield orjson.dumps({
            "ts": t0 + i * 0.05,
            "principal": f"user{(i * 7919) % principals}",
            "resource": f"team{team}/object-{i % resources}",
            "principal_group": f"team{(i // 7) % TEAMS}",
            "resource_group": f"team{team}",
            "sensitivity": SENSITIVITIES[i % len(SENSITIVITIES)],
        })


def produce(bootstrap: str, topic: str, lines) -> int:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "queue.buffering.max.messages": 500_000})
    count = 0
    for line in lines:
        while True:
            try:
                producer.produce(topic, value=line)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % PRODUCE_CHUNK == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("messages still undelivered after 120 s")
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--principals", type=int, default=100_000)
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, help="default: --resources (one read each)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the worker and broker are stopped by their PIDs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    events = args.events or args.resources
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="reachwatch-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)

    fitted = fit(history(days=7), params=TrainingParams(n_estimators=50))
    registry = Registry(workdir / "registry")
    registry.promote(registry.write(fitted.detectors, fitted.profiles, fitted.metadata))

    with embedded_broker(data_dir=workdir / "broker") as broker:
        worker = start_worker(broker.url, workdir / "registry", workdir, "soak", "soak-events",
                              "soak-alerts")
        try:
            return soak(worker, broker.bootstrap, events, args)
        finally:
            worker.stop(timeout=30)


def soak(worker: Subprocess, bootstrap: str, events: int, args: argparse.Namespace) -> int:
    try:
        wait_ready(worker, timeout=120)
    except RuntimeError as exc:
        print(f"worker did not start; see {worker.log_path}: {exc}", file=sys.stderr)
        return 1
    base = rss_bytes(worker.pid) / MB
    started = time.monotonic()
    t0 = START + 30 * 86400
    produced = produce(bootstrap, "soak-events",
                       reads(events, args.principals, args.resources, t0))
    print(orjson.dumps({"produced": produced,
                        "produce_s": round(time.monotonic() - started, 1)}).decode())
    last: dict[str, Any] = {}
    while time.monotonic() - started < args.timeout:
        if not worker.alive():
            print(f"worker exited ({worker.process.returncode}); see {worker.log_path}",
                  file=sys.stderr)
            return 1
        time.sleep(1)
        try:
            last = worker.status()
        except OSError:
            continue
        print(orjson.dumps({
            "t": round(time.monotonic() - started, 1),
            "messages_in": last["messages_in"],
            "principals": last["principals"],
            "resources": last["resources"],
            "rss_mb": round(rss_bytes(worker.pid) / MB),
            "peak_mb": round(peak_rss_bytes(worker.pid) / MB),
        }).decode(), flush=True)
        if (last["messages_in"] >= produced
                and last["resources"] >= min(args.resources, produced)
                and last["principals"] >= min(args.principals, produced)):
            break
    elapsed = time.monotonic() - started
    done = last.get("messages_in", 0)
    print(
        f"soak: {done:,}/{produced:,} events, {last.get('principals', 0):,} principals and "
        f"{last.get('resources', 0):,} resources in state; worker peak RSS "
        f"{peak_rss_bytes(worker.pid) / MB:,.0f} MB (idle {base:,.0f} MB), "
        f"{done / elapsed:,.0f} events/s over {elapsed:,.0f} s"
    )
    return 0 if done >= produced else 2


if __name__ == "__main__":
    sys.exit(main())
