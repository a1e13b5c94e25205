"""Cardinality attack: a flood of never-seen principals through the scoring pipeline.

    .venv/bin/python bench/cardinality.py [--rate 10000] [--seconds 30] [--ttl 5] [--no-sweep]

Trains a small model on a simulated company, then pushes ``--rate`` distinct new
principals per second of event time for ``--seconds`` through ``Pipeline`` (both sides,
micro-batches of 500, a sweep with ``Pipeline.expire_idle`` every event-time second, the
model's idle TTL replaced by ``--ttl`` seconds). Prints one JSON line per event-time second
(states held, RSS) and a summary with peak RSS and bytes per principal state, so the
bound (rate x (TTL + sweep) x bytes per state) can be checked against the default TTL.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.simulation.reference import simulate
from reachwatch.models.tinyorg import flood
from reachwatch.models.training import TrainingParams, fit
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.offline.replay import Tally, collect_events

BATCH = 500
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def small_model() -> Any:
    from reachwatch.models.registry import Registry

    with tempfile.TemporaryDirectory() as tmp:
        simulate(Path(tmp), seed=3, scale=0.3, history_days=7)
        events = [
            e
            for batch in collect_events(
                [Path(tmp) / "history.jsonl"], Chain(get_adapter("native")), Tally()
            )
            for e in batch
        ]
        fitted = fit(events, params=TrainingParams(n_estimators=50))
        registry = Registry(Path(tmp) / "models")
        version = registry.write(fitted.detectors, fitted.profiles, fitted.metadata)
        return registry.load(version), events[-1].ts + 3600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--ttl", type=float, default=5.0, help="idle TTL, event-time seconds")
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()

    model, start = small_model()
    pipeline = Pipeline(
        replace(model, config=replace(model.config, idle_ttl_days=args.ttl / 86400))
    )
    principals: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    baseline_rss = rss_bytes()
    peak_states = expired = scored = 0
    next_sweep = start
    started = time.perf_counter()
    for second in range(args.seconds):
        events = flood(start, second, args.rate, datasets=40)
        for offset in range(0, len(events), BATCH):
            chunk = events[offset : offset + BATCH]
            now = chunk[-1].ts
            if not args.no_sweep and now >= next_sweep:
                expired += len(pipeline.expire_idle(principals, now))
                expired += len(pipeline.expire_idle(resources, now))
                next_sweep = now + 1.0
            scored += pipeline.observe_principals(chunk, principals).scored
            pipeline.observe_resources(chunk, resources)
            peak_states = max(peak_states, len(principals))
        row = {
            "second": second + 1,
            "principal_states": len(principals),
            "rss_mb": rss_bytes() >> 20,
        }
        print(orjson.dumps(row).decode(), flush=True)
    elapsed = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    per_state = (peak_rss - baseline_rss) / max(peak_states, 1)
    summary = {
        "rate_per_s": args.rate,
        "event_seconds": args.seconds,
        "ttl_s": args.ttl,
        "sweep": not args.no_sweep,
        "events": args.rate * args.seconds,
        "scored": scored,
        "expired": expired,
        "peak_principal_states": peak_states,
        "rss_before_mb": baseline_rss >> 20,
        "peak_rss_mb": peak_rss >> 20,
        "bytes_per_state": round(per_state),
        "events_per_s": round(args.rate * args.seconds / elapsed),
        # What the same flood costs with the shipped 35-day TTL: nothing expires in time.
        "projected_mb_per_attack_minute_at_default_ttl": round(per_state * args.rate * 60 / 2**20),
    }
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
