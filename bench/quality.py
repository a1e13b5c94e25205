"""Detection quality on simulated companies: reachwatch vs a plain threshold rule.

    .venv/bin/python bench/quality.py [--seeds 7 11 23] [--scale 1.0] [--out bench/out] [--jobs 2]

For every seed: simulate a company, train on its history, replay history + test period
through the streaming logic, and judge the alerts against the labels; then fit the plain
rule ("distinct resources per principal per hour, distinct readers per resource per hour,
above the history's 99.9th percentile") on the same history and judge it the same way.
Prints one table per seed and a side-by-side summary; writes JSON next to it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson

from reachwatch.models.evaluation import evaluate
from reachwatch.models.forked import default_jobs
from reachwatch.models.pipeline import Pipeline
from reachwatch.models.registry import Registry
from reachwatch.models.simulation import simulate
from reachwatch.models.threshold_rule import fit_threshold_rule
from reachwatch.models.training import fit
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.offline.replay import Tally, collect_events, run_replay


def one_seed(seed: int, scale: float, out: Path, jobs: int) -> dict:
    folder = out / f"seed{seed}"
    simulate(folder, seed=seed, scale=scale)
    labels = orjson.loads((folder / "labels.json").read_bytes())
    adapter = get_adapter("native")
    history = [
        e for b in collect_events([folder / "history.jsonl"], Chain(adapter), Tally()) for e in b
    ]
    test = [e for b in collect_events([folder / "test.jsonl"], Chain(adapter), Tally()) for e in b]
    started = time.perf_counter()
    fitted = fit(history, jobs=jobs)
    train_s = time.perf_counter() - started
    registry = Registry(folder / "models")
    version = registry.write(fitted.forests, fitted.profiles, fitted.metadata)
    model = registry.load(version)
    alerts: list[dict] = []
    tally = Tally()
    started = time.perf_counter()
    run_replay(iter([history, test]), Pipeline(model), tally, lambda a: alerts.append(a.to_json()),
               jobs=jobs)
    replay_s = time.perf_counter() - started
    (folder / "alerts.jsonl").write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts))
    ours = evaluate(labels, alerts)
    rule = fit_threshold_rule(history)
    rule_alerts = rule.alerts(test)
    theirs = evaluate(labels, rule_alerts)
    print(
        f"== seed {seed}: {len(history):,} history + {len(test):,} test reads; "
        f"train {train_s:.1f}s, replay {replay_s:.1f}s "
        f"({(len(history) + len(test)) / replay_s:,.0f} ev/s)"
    )
    print("-- reachwatch")
    print(ours.render())
    print("-- threshold rule (p99.9 distinct per hour)")
    print(theirs.render())
    return {
        "seed": seed,
        "reachwatch": ours.to_json(),
        "threshold_rule": theirs.to_json(),
        "train_seconds": train_s,
        "replay_seconds": replay_s,
        "events": len(history) + len(test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 23])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/quality"))
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="processes for training and replay (one per side)")
    args = parser.parse_args()
    results = [one_seed(seed, args.scale, args.out, args.jobs) for seed in args.seeds]
    print("\n== summary (caught / incidents, false-positive entities)")
    print(f"{'seed':>6} | {'reachwatch':>22} | {'threshold rule':>22}")
    for r in results:
        cells = []
        for name in ("reachwatch", "threshold_rule"):
            e = r[name]
            total = len(e["caught"]) + len(e["missed"])
            cells.append(f"{len(e['caught'])}/{total} caught, {len(e['false_positives'])} FP")
        print(f"{r['seed']:>6} | {cells[0]:>22} | {cells[1]:>22}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
