"""How early can an exposure be seen, and what does seeing it earlier cost?

    .venv/bin/python bench/exposure_arrivals.py bench/out/quality/company-001 [...]

For each company folder that ``bench/quality.py`` left behind (``labels.json``,
``history.jsonl``, ``test.jsonl``), a rough, detector-free view of restricted data:

- per labelled exposure of restricted data, the minutes from its first out-of-audience
  read to the arrival of the 2nd and 3rd *first-time outside team*, and reader (a reader
  of another team who never read the dataset in history nor earlier in the test days).
  A detector that, like reachwatch's "beyond a pair" tails, needs three such arrivals
  cannot alert on them before the 3rd; one that needs two, before the 2nd.
- on every other restricted dataset of the test days, how often two (and three)
  first-time outside teams arrive within 30 min, 1 h and 6 h: the alerts an
  "alert at a pair" rule would add, per company-day.

"Outside" here is "another team than the owner", "first-time" "never read it before":
the simulator's exposed readers include outsiders who read the dataset once in history
(they count as no arrival here, so a small exposure can show none: ``inf``), and its
usual audience holds project members and auditors (counted here as outsiders). The bound is
what the logs allow, not a tuning target: it reads the test days of both halves.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

import orjson

from reachwatch.models.records import parse_timestamp

WINDOWS = {"30m": 1800.0, "1h": 3600.0, "6h": 6 * 3600.0}


def _restricted(path: Path) -> list[dict]:
    return [e for e in (orjson.loads(line) for line in path.read_bytes().splitlines()
                        if b'"restricted"' in line)
            if e.get("sensitivity") == "restricted"]


def _most_teams(arrivals: list[tuple[float, str]], span: float) -> int:
    best = 0
    for i, (start, _) in enumerate(arrivals):
        teams = {team for ts, team in arrivals[i:] if ts - start <= span}
        best = max(best, len(teams))
    return best


def _nth(arrivals: list[float]) -> tuple[float, float]:
    """Minutes to the 2nd and 3rd arrival (inf: never came)."""
    return tuple(arrivals[k] / 60.0 if len(arrivals) > k else float("inf")  # type: ignore
                 for k in (1, 2))


Bound = tuple[str, float, float, float, float]  # variant, 2nd/3rd team, 2nd/3rd reader


def company(folder: Path) -> tuple[list[Bound], dict[str, int], float]:
    """(per exposure its bounds), pair/triple counts on other datasets, test days."""
    labels = orjson.loads((folder / "labels.json").read_bytes())
    exposures = {i["entity"]: i for i in labels["incidents"]
                 if i["type"] == "exposure" and i["variant"]["sensitivity"] == "restricted"}
    incident_entities = {i["entity"] for i in labels["incidents"]}
    seen: dict[str, set[str]] = defaultdict(set)
    for e in _restricted(folder / "history.jsonl"):
        seen[e["resource"]].add(e["principal"])
    first: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for e in sorted(_restricted(folder / "test.jsonl"), key=lambda e: e["ts"]):
        resource, principal = e["resource"], e["principal"]
        if (e["principal_group"] != e["resource_group"] and e.get("outcome") != "denied"
                and principal not in seen[resource]):
            seen[resource].add(principal)
            first[resource].append((e["ts"], e["principal_group"]))
    bounds = []
    for resource, incident in exposures.items():
        t0 = parse_timestamp(incident["first_outside_read"])
        teams: dict[str, float] = {}
        readers: list[float] = []
        for ts, team in first[resource]:
            if ts >= t0 - 1.0:
                teams.setdefault(team, ts - t0)
                readers.append(ts - t0)
        variant = incident["variant"]
        bounds.append((f"{variant['speed']}/{variant['size']}",
                       *_nth(sorted(teams.values())), *_nth(readers)))
    counts: dict[str, int] = defaultdict(int)
    for resource, arrivals in first.items():
        if resource in incident_entities:
            continue
        for name, span in WINDOWS.items():
            most = _most_teams(arrivals, span)
            counts[f"{name}>=2"] += most >= 2
            counts[f"{name}>=3"] += most >= 3
    days = (parse_timestamp(labels["test_end"]) - parse_timestamp(labels["test_start"])) / 86400
    return bounds, counts, days


def _minutes(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.0f}/{max(values):.0f}"


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    bounds: list[Bound] = []
    totals: dict[str, int] = defaultdict(int)
    company_days = 0.0
    for arg in argv:
        b, counts, days = company(Path(arg))
        bounds += b
        company_days += days
        for key, value in counts.items():
            totals[key] += value
    print(f"{len(argv)} companies, {company_days:.0f} company-days, "
          f"{len(bounds)} restricted exposures; minutes from the first outside read, "
          "median/worst (inf: never came)")
    for variant in [*sorted({b[0] for b in bounds}), "all"]:
        rows = [b for b in bounds if variant in ("all", b[0])]
        teams2, teams3, readers2, readers3 = (_minutes([r[k] for r in rows]) for k in (1, 2, 3, 4))
        print(f"  {variant:<11} n={len(rows):<3} 2nd team {teams2}, 3rd team {teams3};"
              f" 2nd reader {readers2}, 3rd {readers3}")
    print("other restricted datasets, first-time outside teams arriving together:")
    for name in WINDOWS:
        two, three = totals[f"{name}>=2"], totals[f"{name}>=3"]
        print(f"  within {name:>3}: >=2 teams {two} ({two / company_days:.2f}/company-day), "
              f">=3 teams {three} ({three / company_days:.2f}/company-day)")


if __name__ == "__main__":
    main(sys.argv[1:])
