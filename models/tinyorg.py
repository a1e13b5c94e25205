"""A tiny hand-made organisation: the smallest realistic input, for tests and load benchmarks.

Deliberately simpler than ``reachwatch simulate``: four teams of 12 people reading mostly
their own team's datasets during office hours for two weeks, plus ``flood``, one second of
a cardinality attack. Tests that need a full simulated company use ``models.simulation``.
"""

from __future__ import annotations

import random

from reachwatch.models.records import AccessEvent

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
