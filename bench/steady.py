"""Worker RSS over a long run at a constant offered rate and a constant entity count.

    .venv/bin/python bench/steady.py MODEL_DIR EVENTS.jsonl [--rate 1000] [--minutes 10]
                                     [--sample-every 10] [--lines 50000] [--json OUT]
                                     [--checkpoint-intervals 0 5]

Issue 5: "worker RSS reported at each rate; no growth over a 10-minute run at constant
entity count". One embedded broker, one ``reachwatch run`` worker; reads are offered at
``--rate`` for ``--minutes``, cycling over the first ``--lines`` events of EVENTS.jsonl (the
same principals and resources again and again), each re-timed to wall-clock now so the
windows roll in event time as in production. Every ``--sample-every`` seconds one JSON line:
elapsed, produced, scored, worker RSS and CPU, entities in the worker's tables. At the end a
summary JSON line and a table: RSS at each minute, peak RSS, the RSS slope over the second
half (least squares), entities at the start and end of the second half, produced vs scored,
CPU per event; and a PNG of RSS and entities over time (next to ``--json``, else
``bench/out/steady.png``). ``--checkpoint-intervals`` runs one worker after the other on the
same broker, one per ``REACHWATCH_CHECKPOINT_INTERVAL`` given, and ends with a table of
their CPU per event.

The worker and broker are stopped by the PIDs this script holds, also on Ctrl-C or SIGTERM
(the samples so far are still summarised).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from harness import (
    Subprocess,
    cpu_seconds,
    peak_rss_bytes,
    rss_bytes,
    scored_events,
    start_worker,
    wait_ready,
)

from reachwatch.streams.local.broker import BrokerProcess, embedded_broker

MB = 1024 * 1024
# After the offered period, how long the worker may take to score what is still queued.
DRAIN_S = 30.0


@dataclass
class Sample:
    elapsed: float
    produced: int
    scored: int
    rss_mb: float
    cpu_s: float
    principals: int
    resources: int


def take_sample(worker: Subprocess, elapsed: float, produced: int) -> Sample:
    """One reading of the worker: its counters, /proc figures and table sizes."""
    status = worker.status(timeout=3)
    return Sample(
        elapsed=round(elapsed, 2),
        produced=produced,
        scored=int(scored_events(worker.metrics())),
        rss_mb=round(rss_bytes(worker.pid) / MB, 1),
        cpu_s=round(cpu_seconds(worker.pid), 2),
        principals=int(status.get("principals", 0)),
        resources=int(status.get("resources", 0)),
    )


async def _offer(broker: BrokerProcess, topic: str, background: list[dict[str, Any]],
                 rate: float, seconds: float, sample_every: float,
                 record: Callable[[float, int], None]) -> int:
    """Produce at ``rate`` for ``seconds``; ``record(elapsed, produced)`` every
    ``sample_every`` seconds (in a thread, so a slow /metrics never stalls the pacing)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=2)
    await producer.start()
    sent = 0
    try:
        start = time.monotonic()
        await asyncio.to_thread(record, 0.0, 0)
        next_sample = sample_every
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate) + 1
            while sent < due:
                row = dict(background[sent % len(background)])
                row["ts"] = time.time()
                await producer.send(topic, orjson.dumps(row))
                sent += 1
            if elapsed >= next_sample:
                await asyncio.to_thread(record, elapsed, sent)
                next_sample += sample_every
            await asyncio.sleep(0.005)
        await producer.flush()
        await asyncio.to_thread(record, time.monotonic() - start, sent)
        return sent
    finally:
        await producer.stop()


def drain(worker: Subprocess, produced: int, timeout: float = DRAIN_S) -> int:
    """Events scored once the worker has had ``timeout`` s to catch up (or all of them)."""
    deadline = time.monotonic() + timeout
    scored = int(scored_events(worker.metrics()))
    while scored < produced and time.monotonic() < deadline:
        time.sleep(0.5)
        scored = int(scored_events(worker.metrics()))
    return scored


def summarise(samples: list[Sample], minutes: float, rate: float, peak_rss: int,
              scored_after_drain: int | None) -> dict[str, Any]:
    """The figures issue 5 asks for, from the samples of one run."""
    elapsed = np.asarray([s.elapsed for s in samples])
    rss = np.asarray([s.rss_mb for s in samples])
    # The first sample at (or within a second before) each whole minute the run reached.
    at_minute: dict[str, float] = {}
    for minute in range(int(elapsed[-1] // 60 + 1e-9) + 1):
        index = int(np.searchsorted(elapsed, minute * 60.0 - 1.0))
        if index < len(samples):
            at_minute[str(minute)] = samples[index].rss_mb
    # The first half includes start-up growth (model, first pass over the entities, windows
    # filling); the second half is the steady state the issue is about.
    half = minutes * 60.0 / 2
    second = [s for s in samples if s.elapsed >= half] or samples[-1:]
    slope = (
        float(np.polyfit(elapsed[-len(second):] / 60.0, rss[-len(second):], 1)[0])
        if len(second) >= 2 else float("nan")
    )
    first, last = samples[0], samples[-1]
    scored_in_run = last.scored - first.scored
    return {
        "rate": rate,
        "minutes": round(last.elapsed / 60.0, 2),
        "achieved_rate": round(last.produced / last.elapsed, 1) if last.elapsed else 0.0,
        "rss_mb_at_minute": at_minute,
        "rss_mb_start": first.rss_mb,
        "rss_mb_end": last.rss_mb,
        "peak_rss_mb": round(peak_rss / MB, 1),
        "rss_slope_mb_per_min_second_half": round(slope, 3),
        "second_half_samples": len(second),
        "principals_second_half": [second[0].principals, second[-1].principals],
        "resources_second_half": [second[0].resources, second[-1].resources],
        "produced": last.produced,
        "scored_at_end": last.scored,
        "scored_after_drain": scored_after_drain,
        # None when the run was interrupted before the drain: unknown, not "fell behind".
        "kept_up": None if scored_after_drain is None else scored_after_drain >= last.produced,
        "interrupted": scored_after_drain is None,
        "cpu_s": round(last.cpu_s - first.cpu_s, 2),
        "cpu_s_per_event": (last.cpu_s - first.cpu_s) / scored_in_run if scored_in_run else None,
    }


def table(summary: dict[str, Any]) -> str:
    lines = ["minute  RSS MB"]
    lines += [f"{m:>6}  {v:7.1f}" for m, v in summary["rss_mb_at_minute"].items()]
    per_event = summary["cpu_s_per_event"]
    lines += [
        f"peak RSS (VmHWM)            {summary['peak_rss_mb']:.1f} MB",
        f"RSS slope, second half      {summary['rss_slope_mb_per_min_second_half']:+.3f} MB/min "
        f"({summary['second_half_samples']} samples)",
        "principals, second half     {} -> {}".format(*summary["principals_second_half"]),
        "resources, second half      {} -> {}".format(*summary["resources_second_half"]),
        f"offered / achieved rate     {summary['rate']:.0f} / {summary['achieved_rate']:.0f} ev/s",
        f"produced / scored at end    {summary['produced']:,} / {summary['scored_at_end']:,} "
        + (f"(after {DRAIN_S:.0f} s drain: {summary['scored_after_drain']:,})"
           if summary["scored_after_drain"] is not None else "(interrupted, not drained)"),
        "CPU per event               "
        + (f"{per_event * 1e6:.0f} µs" if per_event is not None else "n/a"),
    ]
    return "\n".join(lines)


def plot(samples: list[Sample], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.elapsed / 60.0 for s in samples]
    fig, (rss_axis, entity_axis) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    rss_axis.plot(minutes, [s.rss_mb for s in samples], color="tab:red", marker=".")
    rss_axis.set_ylabel("worker RSS (MB)")
    # Zero-based with headroom: a slow leak should look as small as it is, not fill the plot.
    rss_axis.set_ylim(0, max(s.rss_mb for s in samples) * 1.15)
    rss_axis.set_title(
        f"reachwatch worker at {summary['rate']:.0f} ev/s: second-half RSS slope "
        f"{summary['rss_slope_mb_per_min_second_half']:+.2f} MB/min"
    )
    entity_axis.plot(minutes, [s.principals for s in samples], label="principals")
    entity_axis.plot(minutes, [s.resources for s in samples], label="resources")
    entity_axis.set_ylabel("entities in state")
    entity_axis.set_ylim(0, max(max(s.principals, s.resources) for s in samples) * 1.15 + 1)
    entity_axis.set_xlabel("minutes")
    entity_axis.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(broker: BrokerProcess, registry: Path, background: list[dict[str, Any]],
        workdir: Path, args: argparse.Namespace, samples: list[Sample],
        extra_env: dict[str, str] | None = None, label: str = "") -> dict[str, Any]:
    """One worker at one rate; ``samples`` fills as the run goes (kept on interruption)."""
    tag = uuid.uuid4().hex[:6]
    topic = f"steady-{tag}"
    worker = start_worker(broker.url, registry, workdir, f"rw-steady-{tag}", topic,
                          f"steady-alerts-{tag}", extra_env=extra_env)

    def record(elapsed: float, produced: int) -> None:
        sample = take_sample(worker, elapsed, produced)
        samples.append(sample)
        print(orjson.dumps(asdict(sample)).decode(), flush=True)

    scored_after_drain: int | None = None
    summary: dict[str, Any] = {}
    try:
        wait_ready(worker)
        try:
            produced = asyncio.run(_offer(broker, topic, background, args.rate,
                                          args.minutes * 60.0, args.sample_every, record))
            scored_after_drain = drain(worker, produced)
        finally:
            peak = peak_rss_bytes(worker.pid) if worker.alive() else 0
            if samples:
                summary = summarise(samples, args.minutes, args.rate, peak, scored_after_drain)
                print(orjson.dumps(summary).decode(), flush=True)
                print(table(summary), flush=True)
                finish(samples, summary, args, label)
    finally:
        worker.stop()
    return summary


def finish(samples: list[Sample], summary: dict[str, Any], args: argparse.Namespace,
           label: str = "") -> None:
    picture = (args.json.with_name(f"{args.json.stem}{label}.png") if args.json
               else Path(__file__).with_name("out") / f"steady{label}.png")
    plot(samples, summary, picture)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {"summary": summary, "samples": [asdict(s) for s in samples]}
        args.json.with_name(f"{args.json.stem}{label}.json").write_bytes(
            orjson.dumps(record, option=orjson.OPT_INDENT_2))
    print(f"wrote {picture}" + (f" and {args.json}" if args.json else ""), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="registry directory with a promoted model")
    parser.add_argument("events", type=Path, help="JSON lines of access events")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered events/s")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--lines", type=int, default=50_000,
                        help="cycle over the first N events (the constant entity set)")
    parser.add_argument("--json", type=Path, help="write summary + samples here")
    parser.add_argument("--checkpoint-intervals", type=float, nargs="+", metavar="S",
                        help="one run per REACHWATCH_CHECKPOINT_INTERVAL, in this order")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the worker and broker are stopped by their PIDs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    background = []
    with args.events.open("rb") as handle:
        for line in handle:
            if line.strip():
                background.append(orjson.loads(line))
                if len(background) >= args.lines:
                    break
    if not background:
        parser.error(f"no events in {args.events}")
    if not args.checkpoint_intervals:
        samples: list[Sample] = []
        with tempfile.TemporaryDirectory() as tmp, embedded_broker() as broker:
            run(broker, args.model, background, Path(tmp), args, samples)
        return 0
    results: list[tuple[float, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp, embedded_broker() as broker:
        for interval in args.checkpoint_intervals:
            print(f"--- REACHWATCH_CHECKPOINT_INTERVAL={interval:g}", flush=True)
            summary = run(broker, args.model, background, Path(tmp), args, [],
                          {"REACHWATCH_CHECKPOINT_INTERVAL": f"{interval:g}"},
                          f"-checkpoint-{interval:g}")
            results.append((interval, summary))
    print(f"checkpoint interval  CPU µs/event  kept up  (steady {args.rate:.0f} ev/s, "
          f"{args.minutes:g} min each)")
    for interval, summary in results:
        per_event = summary.get("cpu_s_per_event")
        print(f"{interval:>17g} s  "
              + (f"{per_event * 1e6:12.0f}" if per_event is not None else f"{'n/a':>12}")
              + f"  {summary.get('kept_up')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
