"""Peak memory of the offline pipeline with many entities (bounded-state check).

    .venv/bin/python bench/memory.py [--principals 100000] [--resources 1000000]

Drives one read per resource (resources spread over principals, 10 teams, all
sensitivities) through ``run_replay`` with an untrained-but-valid model fitted on a small
history, and reports peak RSS. The worker keeps the same serialised states in its tables.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import SENSITIVITIES, AccessEvent
from reachwatch.models.registry import Registry
from reachwatch.models.tinyorg import START, history
from reachwatch.models.training import TrainingParams, fit
from reachwatch.streams.offline.replay import Tally, run_replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--principals", type=int, default=100_000)
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/out/memory-model"))
    args = parser.parse_args()
    fitted = fit(history(days=7), params=TrainingParams(n_estimators=50))
    registry = Registry(args.out)
    model = registry.load(registry.write(fitted.detectors, fitted.profiles, fitted.metadata))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = START + 30 * 86400

    def batches():
        chunk = []
        for i in range(args.resources):
            team = f"team{i % 10}"
            chunk.append(
                AccessEvent(
                    ts=t0 + i * 0.05,
                    principal=f"user{i % args.principals}",
                    resource=f"{team}/object-{i}",
                    principal_group=f"team{(i // 7) % 10}",
                    resource_group=team,
                    sensitivity=SENSITIVITIES[i % 4],
                )
            )
            if len(chunk) == 100_000:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    started = time.perf_counter()
    tally = Tally()
    run_replay(batches(), Pipeline(model), tally, lambda alert: None)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.principals:,} principals, {args.resources:,} resources: "
        f"peak RSS {peak:,.0f} MB (model and interpreter {base:,.0f} MB), "
        f"{args.resources / elapsed:,.0f} events/s"
    )


if __name__ == "__main__":
    main()
