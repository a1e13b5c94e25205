"""``make bench``: reachwatch's worker against the Python limit and the naive design, in one run.

    .venv/bin/python bench/run.py [--events 60000] [--rates 1,1000,10000] [--seconds 10]

Starts the embedded tansu broker on a free port, simulates a company (and trains a model
on it once, cached in ``bench/out/model``), preloads its events on fresh topics, and
measures side by side:

- ``aiokafka limit``: aiokafka ``getmany`` + orjson decode, nothing else;
- ``faust no-op``: a Faust agent doing a dict update per event (Faust's own cost);
- ``naive faust+sklearn``: a Faust agent calling ``IsolationForest.score_samples`` per event;
- ``reachwatch``: ``reachwatch run`` (both sides, repartition, tables, alerts, sensors);

each with events/s, CPU seconds per event and peak RSS; then reachwatch's event-to-alert
latency (p50/p99) and RSS at fixed offered rates (``bench/latency.py``), and the offline
core (``reachwatch replay``'s pipeline) in events/s. Prints a table with the ratios and
writes ``bench/out/bench.json`` and ``bench/out/bench.png``. Takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from harness import preload, run_baseline
from latency import Latency, measure, probe_model
from throughput import worker_throughput

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.registry import Registry
from reachwatch.models.simulation.reference import simulate
from reachwatch.models.training import TrainingParams, fit
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.local.broker import embedded_broker
from reachwatch.streams.offline.replay import Tally, collect_events, run_replay

OUT = Path(__file__).resolve().parent / "out"
SCALE = 0.3
SEED = 5
NAIVE_EVENTS = 1000  # ~10 ms per event: more would only make the bench longer


def company(out: Path) -> tuple[Path, list[bytes]]:
    """The simulated company's events (time-ordered) and a promoted model trained on them."""
    data = out / "company"
    if not (data / "history.jsonl").exists():
        simulate(data, seed=SEED, scale=SCALE, history_days=14)
    lines = [ln for name in ("history.jsonl", "test.jsonl")
             for ln in (data / name).read_bytes().splitlines() if ln.strip()]
    registry = out / "model"
    if not any(registry.glob("*/metadata.json")):
        from reachwatch.models.records import parse_event

        history = sorted((parse_event(orjson.loads(ln)) for ln in
                          (data / "history.jsonl").read_bytes().splitlines() if ln.strip()),
                         key=lambda e: e.ts)
        started = time.perf_counter()
        fitted = fit(history, params=TrainingParams(seed=0))
        print(f"trained the bench model on {len(history):,} events in "
              f"{time.perf_counter() - started:.0f} s (cached in {registry})")
        reg = Registry(registry)
        reg.promote(reg.write(fitted.detectors, fitted.profiles, fitted.metadata))
    return registry, lines


def offline_replay(registry: Path, data: Path, jobs: int = 1) -> dict[str, float]:
    """Events/s of the pure core over the company's history and test days (parsed
    beforehand), in one process or with the two sides in two (``--jobs 2``)."""
    tally = Tally()
    batches = list(collect_events([data / "history.jsonl", data / "test.jsonl"],
                                  Chain(get_adapter("native")), tally))
    pipeline = Pipeline(Registry(registry).load("current"))
    started = time.perf_counter()
    run_replay(iter(batches), pipeline, tally, lambda alert: None, jobs=jobs)
    seconds = time.perf_counter() - started
    return {"events": tally.accepted, "seconds": seconds, "per_second": tally.accepted / seconds,
            "jobs": jobs}


def _row(name: str, events: float, seconds: float, cpu: float, rss: float) -> dict[str, Any]:
    return {"design": name, "events": int(events), "per_second": events / seconds,
            "cpu_per_event": cpu / events, "peak_rss": rss}


def table(rows: list[dict[str, Any]], latencies: list[Latency],
          replays: list[dict[str, float]]) -> str:
    ours = next(r for r in rows if r["design"] == "reachwatch")
    lines = [f"{'design':<22}{'events/s':>11}{'CPU µs/ev':>11}{'peak RSS':>10}{'ours/it':>9}",
             "-" * 63]
    for row in rows:
        lines.append(f"{row['design']:<22}{row['per_second']:>11,.0f}"
                     f"{row['cpu_per_event'] * 1e6:>11,.0f}"
                     f"{row['peak_rss'] / 2**20:>8,.0f}Mi"
                     f"{ours['per_second'] / row['per_second']:>9.2f}")
    lines += ["", f"{'offered ev/s':>12}{'achieved':>10}{'probes':>10}{'p50 s':>8}{'p99 s':>8}"
              f"{'RSS':>8}", "-" * 56]
    for lat in latencies:
        lines.append(f"{lat.rate:>12,.0f}{lat.achieved_rate:>10,.0f}"
                     f"{lat.probes_seen:>5}/{lat.probes_sent:<4}{lat.p50:>8.2f}{lat.p99:>8.2f}"
                     f"{lat.rss / 2**20:>6,.0f}Mi")
    for replay in replays:
        lines.append(f"offline core (replay pipeline, {replay['jobs']:.0f} job(s)): "
                     f"{replay['per_second']:,.0f} events/s over {replay['events']:,} events")
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], latencies: list[Latency], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [r["design"] for r in rows]
    left.barh(names, [r["per_second"] for r in rows], color="#4477aa")
    left.set_xscale("log")
    left.set_xlabel("events/s, one process (log scale)")
    left.set_title("Throughput on preloaded events")
    for index, row in enumerate(rows):
        left.text(row["per_second"], index, f" {row['per_second']:,.0f}", va="center")
    rates = [lat.rate for lat in latencies]
    right.plot(rates, [lat.p50 for lat in latencies], "o-", label="p50")
    right.plot(rates, [lat.p99 for lat in latencies], "s--", label="p99")
    right.set_xscale("log")
    right.set_xlabel("offered events/s")
    right.set_ylabel("event-to-alert latency, s")
    right.set_title("reachwatch latency")
    right.axhline(1.0, color="grey", linewidth=0.8)
    right.legend()
    fig.suptitle(f"reachwatch bench on {platform.node()} ({os.cpu_count()} CPUs), one worker")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rates", default="1,1000,10000")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    registry, lines = company(OUT)
    lines = lines[: args.events]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, embedded_broker() as broker:
        work = Path(tmp)
        topic = f"bench-base-{uuid.uuid4().hex[:6]}"
        preload(broker.bootstrap, topic, lines)
        for mode, name, count in (("aiokafka", "aiokafka limit", len(lines)),
                                  ("faust-noop", "faust no-op agent", len(lines)),
                                  ("faust-sklearn", "naive faust+sklearn", NAIVE_EVENTS)):
            result = run_baseline(mode, broker.url, topic, count, work, registry)
            rows.append(_row(name, result["events"], result["seconds"],
                             result["cpu_seconds"], result["peak_rss"]))
            print(f"{name}: {rows[-1]['per_second']:,.0f} events/s")
        ours = worker_throughput(broker, registry, lines, work)
        rows.append(_row("reachwatch", ours.events, ours.seconds, ours.cpu_seconds,
                         ours.peak_rss))
        print(f"reachwatch: {ours.per_second:,.0f} events/s")
        latencies = measure(broker, probe_model(registry, work / "probe-model"), lines, work,
                            [float(r) for r in args.rates.split(",")], args.seconds)
    replays = [offline_replay(registry, OUT / "company", jobs) for jobs in (1, 2)]
    report = table(rows, latencies, replays)
    print()
    print(report)
    (OUT / "bench.json").write_bytes(orjson.dumps(
        {"machine": {"node": platform.node(), "python": platform.python_version()},
         "throughput": rows, "latency": [lat.__dict__ for lat in latencies],
         "offline_replay": replays}, option=orjson.OPT_INDENT_2))
    chart(rows, latencies, OUT / "bench.png")
    print(f"\nwrote {OUT / 'bench.json'} and {OUT / 'bench.png'}")


if __name__ == "__main__":
    main()
