"""Golden output of the pure core: alerts and every score of a replay, to prove speed-ups
change nothing.

    python bench/golden.py MODEL_DIR FILE... > digest.txt   # then diff two digests

Prints one line per alert (its JSON) and a final line with a digest of every batch's scores
(their exact float64 bytes), so a change in any score, not only in the alerts, shows up.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import orjson

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.registry import Registry
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.offline.replay import Tally, collect_events, run_replay


def main(argv: list[str]) -> None:
    model = Registry(Path(argv[0])).load("current")
    pipeline = Pipeline(model)
    digest = hashlib.sha256()
    observe = pipeline.observe

    def hashed(side, events, states):  # type: ignore[no-untyped-def]
        result = observe(side, events, states)
        digest.update(np.asarray(result.scores, dtype=np.float64).tobytes())
        return result

    pipeline.observe = hashed  # type: ignore[method-assign]
    tally = Tally()
    lines: list[bytes] = []
    files = [Path(p) for p in argv[1:]]
    batches = list(collect_events(files, Chain(get_adapter("native")), tally, keep_grants=True))
    started = time.perf_counter()
    run_replay(iter(batches), pipeline, tally, lambda a: lines.append(orjson.dumps(a.to_json())))
    elapsed = time.perf_counter() - started
    out = sys.stdout.buffer
    for line in lines:
        out.write(line + b"\n")
    out.write(f"scores {digest.hexdigest()}\n".encode())
    print(f"{tally.accepted} events, {elapsed:.2f} s core, {tally.accepted / elapsed:,.0f} ev/s",
          file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
