"""How many entity-state writes a checkpoint interval would save: measured before building.

    python bench/checkpoints.py FILE... [--rate 1000] [--batch-wait 0.125] [--every 1 5 15]

The worker writes every touched entity's state to its changelog after every scoring batch.
At a steady ``--rate`` (events/s) a scoring batch closes after ``--batch-wait`` seconds
(half of ``batch_max_wait``: the other half is the ingest's), so it holds ``rate * wait``
events. With write-behind checkpoints every ``T`` seconds a state touched several times
within ``T`` is written once. For the events of FILE (native JSON lines, in time order, as
the stream would see them at that rate), prints per side the state writes per event for
batch-by-batch writing and for each ``T`` of ``--every``: multiply by the encode time per
state (``bench/statecodec.py``) plus the producer's cost per message for CPU per event.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from reachwatch.models.records import parse_event
from reachwatch.models.sides import SIDES


def writes_per_event(events: list, window: int) -> list[float]:
    """Per side: distinct entities per ``window`` consecutive events, over all events."""
    out = []
    for side in SIDES:
        entity = side.entity
        writes = sum(
            len({entity(e) for e in events[start : start + window]})
            for start in range(0, len(events), window)
        )
        out.append(writes / len(events))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--batch-wait", type=float, default=0.125)
    parser.add_argument("--every", type=float, nargs="+", default=[1.0, 5.0, 15.0, 60.0])
    args = parser.parse_args()
    events = []
    for path in args.files:
        with path.open("rb") as lines:
            events.extend(parse_event(orjson.loads(line)) for line in lines)
    events.sort(key=lambda e: e.ts)
    print(f"{len(events)} events, {len({e.principal for e in events})} principals, "
          f"{len({e.resource for e in events})} resources, at {args.rate:,.0f} events/s")
    rows = [("every batch", args.batch_wait)] + [(f"every {t:g} s", t) for t in args.every]
    base = None
    for label, seconds in rows:
        window = max(1, round(args.rate * seconds))
        per_side = writes_per_event(events, window)
        total = sum(per_side)
        base = base or total
        print(f"{label:12s} ({window:6d} events): writes per event principal {per_side[0]:.3f} "
              f"resource {per_side[1]:.3f} total {total:.3f} ({base / total:.1f}x fewer)")


if __name__ == "__main__":
    main()
