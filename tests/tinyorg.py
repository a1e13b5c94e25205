"""A tiny hand-made organisation for tests.

Deliberately simpler than ``reachwatch simulate``: four teams of 12 people reading mostly
their own team's datasets during office hours for two weeks. Tests that need the full
simulated company use ``models.simulation`` directly.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from reachwatch.streams.records import AccessEvent

TEAMS = ("hr", "finance", "eng", "sales")
START = 1772409600.0  # 2026-03-02T00:00:00Z, a Monday
SENSITIVITY_MIX = ("internal", "internal", "confidential", "restricted")


def people(team: str) -> list[str]:
    return [f"{team}-{i}" for i in range(12)]


def datasets(team: str) -> list[tuple[str, str]]:
    return [(f"{team}/ds{i}", SENSITIVITY_MIX[i % 4]) for i in range(24)]


def office_day(rng: random.Random, day: int) -> list[AccessEvent]:
    events = []
    if day % 7 >= 5:  # weekend
        return events
    for team in TEAMS:
        for person in people(team):
            for _ in range(rng.randint(4, 20)):
                ts = START + day * 86400 + rng.uniform(8 * 3600, 18 * 3600)
                owner = team if rng.random() < 0.9 else rng.choice(TEAMS)
                resource, sensitivity = rng.choice(datasets(owner))
                events.append(
                    AccessEvent(
                        ts=ts,
                        principal=person,
                        resource=resource,
                        principal_group=team,
                        resource_group=owner,
                        sensitivity=sensitivity,
                    )
                )
    return events


def history(days: int = 14, seed: int = 1) -> list[AccessEvent]:
    rng = random.Random(seed)
    events = [e for day in range(days) for e in office_day(rng, day)]
    return sorted(events, key=lambda e: e.ts)


def write_jsonl(path: Path, events: list[AccessEvent]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e.to_json()) + b"\n" for e in events))
    return path


def write_wide_version(registry: Any, model: Any = None) -> str:
    """Write a correctly signed version whose forests were fitted on one column more than
    this code's features (a model from another feature code); return its version id."""
    import numpy as np
    from sklearn.ensemble import IsolationForest

    from reachwatch.models.features import FEATURE_NAMES

    model = model or registry.load()
    rng = np.random.default_rng(0)
    forests = {
        kind: IsolationForest(n_estimators=5, random_state=0).fit(
            rng.normal(size=(64, len(FEATURE_NAMES[kind]) + 1))
        )
        for kind in model.kinds
    }
    return registry.write(forests, model.profiles, {**model.metadata, "note": "wide"})


def flood(start: float, second: int, rate: int, datasets: int) -> list[AccessEvent]:
    """One second of a cardinality attack: ``rate`` reads, each by a principal never seen
    before, spread over ``datasets`` confidential datasets of one team."""
    return [
        AccessEvent(
            ts=start + second + i / rate,
            principal=f"flood-{second}-{i}",
            resource=f"hr/ds{i % datasets}",
            principal_group="hr",
            resource_group="hr",
            sensitivity="confidential",
        )
        for i in range(rate)
    ]
