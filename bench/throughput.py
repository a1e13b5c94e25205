"""Sustained throughput of one reachwatch worker: preload a topic, start the worker, time
how long it takes to finish every event (scored, late or rejected).

    .venv/bin/python bench/throughput.py MODEL_DIR EVENTS.jsonl [--events N] [--profile OUT]

``--profile`` runs the worker under py-spy (``.venv/bin/pip install py-spy``) and writes a
flame graph SVG and the top functions (``--format raw``) next to it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness import (
    committed_offsets,
    completed_events,
    cpu_seconds,
    peak_rss_bytes,
    preload,
    start_worker,
    wait_ready,
)

from reachwatch.streams.local.broker import BrokerProcess, embedded_broker


@dataclass
class Throughput:
    """Workers draining a preloaded topic, measured from the first sample in which any of
    them had finished an event to the sample in which all events were scored on both sides
    and their input offsets committed (alerts, envelopes, changelog flushed before it)."""

    events: int
    seconds: float
    cpu_seconds: float
    peak_rss: int
    batch_sizes: dict[str, float]
    workers: int = 1
    load: float = 0.0
    # Seconds from the last event scored to its input offsets committed.
    commit_lag: float = 0.0

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_event(self) -> float:
        return self.cpu_seconds / self.events if self.events else 0.0


SAMPLE_S = 0.5  # a /metrics scrape costs the worker ~ms: often enough, not too often


def worker_throughput(
    broker: BrokerProcess,
    registry: Path,
    lines: list[bytes],
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    profile: Path | None = None,
    timeout: float = 600.0,
    workers: int = 1,
    command: list[str] | None = None,
    topic: str | None = None,
) -> Throughput:
    """Events/s of ``workers`` workers (one consumer group) draining ``lines`` preloaded on a
    fresh topic (or on ``topic``, already holding exactly ``lines``)."""
    tag = uuid.uuid4().hex[:6]
    if topic is None:
        topic = f"bench-{tag}"
        preload(broker.bootstrap, topic, lines)
    group = f"rw-{tag}"
    started_workers = [start_worker(broker.url, registry, workdir, group, topic,
                                    f"alerts-{tag}", extra_env, command, f"-{index}")
                       for index in range(workers)]
    # One app id = one consumer group; each worker needs its own web port and data dir.
    spy = None
    total = len(lines)
    try:
        for worker in started_workers:
            wait_ready(worker, timeout=120)
        if profile is not None:
            spy = subprocess.Popen(
                [shutil.which("py-spy") or str(Path(__file__).resolve().parents[1]
                                                / ".venv/bin/py-spy"),
                 "record", "--pid", str(started_workers[0].pid), "--rate", "200",
                 "--format", "raw", "--output", str(profile), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        first: tuple[float, float, float] | None = None  # (time, done, cpu)
        done = 0.0
        load = os.getloadavg()[0]
        while time.monotonic() < deadline:
            now = time.monotonic()
            done = completed_events(*(w.metrics() for w in started_workers))
            if first is None and done > 0:
                first = (now, done, sum(cpu_seconds(w.pid) for w in started_workers))
                load = os.getloadavg()[0]
            if done >= total:
                break
            for worker in started_workers:
                if not worker.alive():
                    raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
            time.sleep(SAMPLE_S)
        scored_at = time.monotonic()
        while (committed_offsets(broker.bootstrap, group, topic) < total
               and time.monotonic() < deadline):
            time.sleep(0.2)
        end = time.monotonic()
        cpu = sum(cpu_seconds(w.pid) for w in started_workers)
        if first is None:
            raise RuntimeError(f"no event scored in {timeout:.0f} s:\n"
                               f"{started_workers[0].log_tail()}")
        metrics = [w.metrics() for w in started_workers]
        sizes = {}
        for side in ("principal", "resource"):
            summed = sum(m.get(f'reachwatch_batch_size_sum{{side="{side}"}}', 0.0)
                         for m in metrics)
            count = sum(m.get(f'reachwatch_batch_size_count{{side="{side}"}}', 0.0)
                        for m in metrics)
            sizes[side] = summed / max(1.0, count)
        return Throughput(int(done - first[1]), end - first[0], cpu - first[2],
                          max(peak_rss_bytes(w.pid) for w in started_workers), sizes,
                          workers, load, end - scored_at)
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
        for worker in started_workers:
            worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("events", type=Path)
    parser.add_argument("--events", dest="count", type=int, default=100_000)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the worker")
    args = parser.parse_args()
    lines = [ln for ln in args.events.read_bytes().splitlines() if ln.strip()][: args.count]
    extra = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory() as tmp, embedded_broker() as broker:
        result = worker_throughput(broker, args.model, lines, Path(tmp), extra, args.profile,
                                   workers=args.workers)
    print(f"{result.events} events in {result.seconds:.1f} s: {result.per_second:,.0f} ev/s, "
          f"{result.cpu_per_event * 1e6:.0f} µs CPU/event, peak RSS "
          f"{result.peak_rss / 2**20:.0f} MiB, mean scoring batch {result.batch_sizes}")


if __name__ == "__main__":
    main()
