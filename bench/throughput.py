"""Sustained throughput of one reachwatch worker: preload a topic, start the worker, time
how long it takes to finish every event (scored, late or rejected).

    .venv/bin/python bench/throughput.py MODEL_DIR EVENTS.jsonl [--events N] [--profile OUT]

``--profile`` runs the worker under py-spy (``.venv/bin/pip install py-spy``) and writes a
flame graph SVG and the top functions (``--format raw``) next to it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness import (
    cpu_seconds,
    peak_rss_bytes,
    preload,
    scored_events,
    start_worker,
    wait_ready,
)

from reachwatch.streams.local.broker import BrokerProcess, embedded_broker


@dataclass
class Throughput:
    events: int
    seconds: float
    cpu_seconds: float
    peak_rss: int
    batch_sizes: dict[str, float]

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_event(self) -> float:
        return self.cpu_seconds / self.events if self.events else 0.0


def worker_throughput(
    broker: BrokerProcess,
    registry: Path,
    lines: list[bytes],
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    profile: Path | None = None,
    timeout: float = 300.0,
) -> Throughput:
    """Events/s of a worker draining ``lines`` preloaded on a fresh topic."""
    tag = uuid.uuid4().hex[:6]
    topic = f"bench-{tag}"
    preload(broker.bootstrap, topic, lines)
    worker = start_worker(broker.url, registry, workdir, f"rw-{tag}", topic, f"alerts-{tag}",
                          extra_env)
    spy = None
    try:
        wait_ready(worker)
        if profile is not None:
            spy = subprocess.Popen(
                [shutil.which("py-spy") or str(Path(__file__).resolve().parents[1]
                                                / ".venv/bin/py-spy"),
                 "record", "--pid", str(worker.pid), "--rate", "200", "--format", "raw",
                 "--output", str(profile), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        started, cpu_start = time.monotonic(), cpu_seconds(worker.pid)
        done = 0.0
        while done < len(lines) and time.monotonic() - started < timeout:
            time.sleep(0.25)
            done = scored_events(worker.metrics())
        elapsed = time.monotonic() - started
        metrics = worker.metrics()
        sizes = {side: metrics.get(f'reachwatch_batch_size_sum{{side="{side}"}}', 0.0)
                 / max(1.0, metrics.get(f'reachwatch_batch_size_count{{side="{side}"}}', 0.0))
                 for side in ("principal", "resource")}
        return Throughput(int(done), elapsed, cpu_seconds(worker.pid) - cpu_start,
                          peak_rss_bytes(worker.pid), sizes)
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("events", type=Path)
    parser.add_argument("--events", dest="count", type=int, default=100_000)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the worker")
    args = parser.parse_args()
    lines = [ln for ln in args.events.read_bytes().splitlines() if ln.strip()][: args.count]
    extra = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory() as tmp, embedded_broker() as broker:
        result = worker_throughput(broker, args.model, lines, Path(tmp), extra, args.profile)
    print(f"{result.events} events in {result.seconds:.1f} s: {result.per_second:,.0f} ev/s, "
          f"{result.cpu_per_event * 1e6:.0f} µs CPU/event, peak RSS "
          f"{result.peak_rss / 2**20:.0f} MiB, mean scoring batch {result.batch_sizes}")


if __name__ == "__main__":
    main()
