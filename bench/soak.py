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
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tinyorg import START, history

from reachwatch.models.registry import Registry
from reachwatch.models.training import TrainingParams, fit
from reachwatch.streams.broker import embedded_broker, free_port
from reachwatch.streams.records import SENSITIVITIES

TEAMS = 10
PRODUCE_CHUNK = 50_000


def proc_memory(pid: int) -> dict[str, float]:
    """Current and peak resident set of ``pid`` in MB (VmRSS, VmHWM from /proc)."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as response:
        return orjson.loads(response.read())


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
    registry.promote(registry.write(fitted.forests, fitted.profiles, fitted.metadata))

    with embedded_broker(data_dir=workdir / "broker") as broker:
        port = free_port()
        env = {
            **os.environ,
            "REACHWATCH_BROKER_URL": broker.url,
            "REACHWATCH_APP_ID": "soak",
            "REACHWATCH_INPUT_TOPICS": "soak-events",
            "REACHWATCH_ALERTS_TOPIC": "soak-alerts",
            "REACHWATCH_DLQ_TOPIC": "soak-dlq",
            "REACHWATCH_REGISTRY_DIR": str(workdir / "registry"),
            "REACHWATCH_WEB_PORT": str(port),
            "REACHWATCH_DATA_DIR": str(workdir / "worker"),
            "REACHWATCH_LOG_LEVEL": "warning",
        }
        with (workdir / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-c", "from reachwatch.streams.cli import main; main()", "run"],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        try:
            return soak(worker, port, broker.bootstrap, events, args, workdir)
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()


def soak(worker: subprocess.Popen[bytes], port: int, bootstrap: str, events: int,
         args: argparse.Namespace, workdir: Path) -> int:
    deadline = time.monotonic() + 120
    while True:
        if worker.poll() is not None or time.monotonic() > deadline:
            print(f"worker did not start; see {workdir / 'worker.log'}", file=sys.stderr)
            return 1
        try:
            if status(port).get("assigned"):
                break
        except OSError:
            pass
        time.sleep(0.5)
    base = proc_memory(worker.pid)["VmRSS"]
    started = time.monotonic()
    t0 = START + 30 * 86400
    produced = produce(bootstrap, "soak-events",
                       reads(events, args.principals, args.resources, t0))
    print(orjson.dumps({"produced": produced,
                        "produce_s": round(time.monotonic() - started, 1)}).decode())
    last: dict[str, Any] = {}
    while time.monotonic() - started < args.timeout:
        if worker.poll() is not None:
            print(f"worker exited ({worker.returncode}); see {workdir / 'worker.log'}",
                  file=sys.stderr)
            return 1
        time.sleep(1)
        try:
            last = status(port)
        except OSError:
            continue
        memory = proc_memory(worker.pid)
        print(orjson.dumps({
            "t": round(time.monotonic() - started, 1),
            "messages_in": last["messages_in"],
            "principals": last["principals"],
            "resources": last["resources"],
            "rss_mb": round(memory["VmRSS"]),
            "peak_mb": round(memory["VmHWM"]),
        }).decode(), flush=True)
        if last["messages_in"] >= produced and last["resources"] >= min(
            args.resources, produced
        ):
            break
    elapsed = time.monotonic() - started
    memory = proc_memory(worker.pid)
    done = last.get("messages_in", 0)
    print(
        f"soak: {done:,}/{produced:,} events, {last.get('principals', 0):,} principals and "
        f"{last.get('resources', 0):,} resources in state; worker peak RSS "
        f"{memory['VmHWM']:,.0f} MB (idle {base:,.0f} MB), {done / elapsed:,.0f} events/s "
        f"over {elapsed:,.0f} s"
    )
    return 0 if done >= produced else 2


if __name__ == "__main__":
    sys.exit(main())
