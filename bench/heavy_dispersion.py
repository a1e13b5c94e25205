"""Are a person's heavy reads Poisson per day, or do they come in bursts?

    .venv/bin/python bench/heavy_dispersion.py bench/out/quality/company-001 [...]

For each company folder that ``bench/quality.py`` left behind, reads ``history.jsonl``:
a heavy read is a person's non-public read of more records than that person's own p99
hour (all of history, undecayed: a rough stand-in for ``heavy_24h``'s usual). Prints per
company the share of heavy reads in an hour that already held one, and over the person's
active days the variance/mean of heavy reads per day and the days with two or more
against what a Poisson of the same mean predicts; then the same for heavy reads that
also took the table whole (at least 95 % of the most records any read of the dataset
returned in the history, as ``heavy_24h`` counts them since session 12). Read it on the
tuning half only.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import orjson


def dispersion(folder: Path, whole_share: float | None = None) -> str:
    events = [orjson.loads(line) for line in (folder / "history.jsonl").read_bytes().splitlines()
              if line.strip()]
    largest: dict[str, int] = defaultdict(int)
    for e in events:
        if e.get("outcome") != "denied":
            largest[e["resource"]] = max(largest[e["resource"]], e.get("records") or 0)
    events = [e for e in events
              if e.get("principal_type") == "human" and e.get("sensitivity") != "public"]
    hours: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for e in events:
        hours[e["principal"]][int(e["ts"] // 3600)] += e.get("records") or 0
    usual = {}
    for person, per_hour in hours.items():
        values = sorted(per_hour.values())
        usual[person] = values[int(0.99 * (len(values) - 1))]
    per_day: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    seen_hours: set[tuple[str, int]] = set()
    heavy = shared = 0
    for e in events:
        person = e["principal"]
        records = e.get("records") or 0
        if records > usual[person] and (
                whole_share is None or records >= whole_share * largest[e["resource"]]):
            heavy += 1
            hour = (person, int(e["ts"] // 3600))
            shared += hour in seen_hours
            seen_hours.add(hour)
            per_day[person][int(e["ts"] // 86400)] += 1
    counts = [per_day[person].get(day, 0) for person, per_hour in hours.items()
              for day in {hour * 3600 // 86400 for hour in per_hour}]
    mean = statistics.mean(counts)
    ratio = statistics.pvariance(counts) / mean if mean else math.nan
    two = sum(c >= 2 for c in counts)
    poisson_two = len(counts) * (1 - math.exp(-mean) * (1 + mean))
    what = "heavy reads" if whole_share is None else "heavy whole-table reads"
    return (f"{folder.name}: {heavy} {what}, {shared / max(heavy, 1):.0%} in an hour "
            f"already holding one; {len(counts)} person-days, mean {mean:.3f}, "
            f"variance/mean {ratio:.2f}, days with two or more {two} vs Poisson "
            f"{poisson_two:.1f}")


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    for folder in map(Path, argv):
        if not (folder / "history.jsonl").is_file():
            sys.exit(f"{folder}: no history.jsonl (a company folder of bench/quality.py)")
        print(dispersion(folder))
        print(dispersion(folder, whole_share=0.95))


if __name__ == "__main__":
    main(sys.argv[1:])
