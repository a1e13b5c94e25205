"""Entity-state codec: time and size per state, and whether a round trip changes anything.

    python bench/statecodec.py MODEL_DIR FILE... [--events N] [--then M] [--repeat R]

Replays the first ``N`` events of the files (native JSON lines) through the pipeline, then
encodes and decodes every principal and resource state (``windows.encode_state`` /
``decode_state``) ``R`` times: encode and decode µs per state, and bytes per state. Then
scores the next ``M`` events twice, once on the states as they are and once on states that
went through a round trip, and counts the feature vectors and scores that differ (the
codec should store what a state holds verbatim: zero).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import parse_event
from reachwatch.models.registry import Registry
from reachwatch.models.sides import SIDES
from reachwatch.models.windows import decode_state, encode_state

BATCH = 2000


def _events(paths: list[Path], limit: int) -> list[Any]:
    events = []
    for path in paths:
        with path.open("rb") as lines:
            for line in lines:
                events.append(parse_event(orjson.loads(line)))
                if len(events) >= limit:
                    return sorted(events, key=lambda e: e.ts)
    return sorted(events, key=lambda e: e.ts)


def _scored(
    pipeline: Pipeline, side: Any, events: list[Any], states: dict[str, Any]
) -> tuple[list[Any], list[float]]:
    """(every feature vector built, every score) of ``events`` over ``states``."""
    seen: list[Any] = []
    scores: list[float] = []
    view = pipeline.features.view

    def recorded(event: Any, state: Any) -> Any:
        built = view(event, state)
        if built is not None:
            seen.append(tuple(built.vector))
        return built

    pipeline.features.view = recorded  # type: ignore[method-assign]
    try:
        for start in range(0, len(events), BATCH):
            scores.extend(pipeline.observe(side, events[start : start + BATCH], states).scores)
    finally:
        pipeline.features.view = view  # type: ignore[method-assign]
    return seen, scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--then", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pipeline = Pipeline(Registry(args.model_dir).load("current"))
    events = _events(args.files, args.events + args.then)
    warm, then = events[: args.events], events[args.events :]
    print(f"{len(warm)} events, then {len(then)}")
    for side in SIDES:
        states: dict[str, Any] = {}
        for start in range(0, len(warm), BATCH):
            pipeline.observe(side, warm[start : start + BATCH], states)
        encode_s, decode_s = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            encoded = {key: encode_state(state) for key, state in states.items()}
            encode_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            decoded = {key: decode_state(raw) for key, raw in encoded.items()}
            decode_s.append(time.perf_counter() - started)
        sizes = sorted(len(raw) for raw in encoded.values())
        n = len(states)
        print(
            f"{side.name:9s} {n:6d} states: encode {min(encode_s) / n * 1e6:7.1f} µs, "
            f"decode {min(decode_s) / n * 1e6:7.1f} µs per state; bytes mean "
            f"{statistics.fmean(sizes):7.0f} p50 {sizes[n // 2]:6d} p99 {sizes[n * 99 // 100]:6d}"
        )
        live, live_scores = _scored(pipeline, side, then, states)
        tripped, tripped_scores = _scored(pipeline, side, then, decoded)
        vectors = sum(1 for a, b in zip(live, tripped, strict=True) if a != b)
        scores = sum(1 for a, b in zip(live_scores, tripped_scores, strict=True) if a != b)
        print(f"{'':9s} after one round trip, of the next {len(live)} reads: {vectors} vectors "
              f"({vectors / max(len(live), 1):.1%}) and {scores} scores differ")


if __name__ == "__main__":
    main()
