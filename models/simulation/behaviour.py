"""What people read on an ordinary day: their habits, in their office's local time.

Employees mostly return to a few favourite datasets of their team, read some of their
division's and a few other teams' public/internal data, their projects' shared datasets
and the company-wide pages; now and then a read is denied or goes somewhere new.
Managers read their whole team, execs and analysts read confidential data across teams,
auditors sweep every team's sensitive data on working days, and on-call engineers are
paged at night during their rotation week.
"""

from __future__ import annotations

import math
import random

from reachwatch.models.simulation.organisation import Dataset, Person
from reachwatch.models.simulation.world import HOUR, World

KINDS = ("favourite", "own", "division", "cross", "public", "project", "denied", "novel")


def human_day(world: World, rng: random.Random, person: Person, day: int,
              *, volume: float = 1.0) -> None:
    """Emit one person's reads of one (local) day."""
    params = world.params
    if day < person.join_day:
        return
    # Nobody is off sick on their first day, so a joiner is seen from the day they join.
    if day != person.join_day and rng.random() < params.absence_rate:
        return
    office = person.office
    weekend = not world.is_workday(office, day)
    if weekend and not (person.weekend_worker and rng.random() < 0.35):
        return
    team = person.team_on(day)
    profile = person.profile_on(day)
    count = max(1, int(rng.lognormvariate(math.log(person.rate * volume), 0.35)))
    if weekend:
        count = max(1, count // 4)
    start = person.start_hour + rng.gauss(0.0, 0.4)
    length = max(2.0, person.day_hours + rng.gauss(0.0, 0.5))
    base = world.local_midnight(office, day)
    org = world.org
    own = org.teams[team].datasets
    projects = [d for p in person.projects if p.kickoff_day <= day for d in p.datasets
                if d.exists_before(day)]
    company = public_on(world, day)
    for _ in range(count):
        if person.late and rng.random() < 0.15:
            hour = rng.uniform(19.0, 23.5)
        else:
            hour = start + rng.random() * length
        kind = rng.choices(KINDS, weights=params.read_mix)[0]
        outcome = "allowed"
        dataset: Dataset
        if kind == "favourite" and profile.favourites:
            dataset = rng.choices(profile.favourites, weights=profile.weights)[0]
        elif kind == "division" and (pool := org.division_datasets(team, ("public", "internal"))):
            dataset = rng.choice(pool)
        elif kind == "cross" and profile.usual_cross:
            dataset = rng.choice(profile.usual_cross)
        elif kind == "project" and projects:
            dataset = rng.choice(projects)
        elif kind == "public":
            dataset = rng.choice(company)
        elif kind == "denied" and (pool := org.other_team_datasets(team, ("restricted",))):
            dataset = rng.choice(pool)
            outcome = "denied"
        elif kind == "novel" and (pool := org.other_team_datasets(team, ("public", "internal"))):
            dataset = rng.choice(pool)
        else:
            dataset = rng.choice(own)
        world.emit(rng, base + hour * HOUR, person.principal, "human", team, dataset,
                   person.address, outcome=outcome)
    if person.role == "auditor" and not weekend:
        audit_sweep(world, rng, person, team, base + start * HOUR, length)


def audit_sweep(world: World, rng: random.Random, person: Person, team: str, start: float,
                length: float) -> None:
    """An auditor reviews access across every team, sensitive data first."""
    pool = world.org.other_team_datasets(team, ("internal", "confidential", "restricted"))
    if not pool:
        return
    weights = [{"internal": 1.0, "confidential": 2.0, "restricted": 3.0}[d.sensitivity]
               for d in pool]
    wanted = min(len(pool), rng.randint(*world.params.audit_daily))
    chosen: dict[str, Dataset] = {}
    while len(chosen) < wanted:
        dataset = rng.choices(pool, weights=weights)[0]
        chosen[dataset.resource] = dataset
    for dataset in chosen.values():
        world.emit(rng, start + rng.random() * length * HOUR, person.principal, "human", team,
                   dataset, person.address)


def on_call_night(world: World, rng: random.Random, person: Person, day: int,
                  reads: tuple[int, int]) -> list[float]:
    """A page at night: the engineer digs through their team's and division's data."""
    team = person.team_on(day)
    org = world.org
    pool = org.teams[team].datasets + org.division_datasets(team, ("internal", "confidential"))
    start = world.at_local(person.office, day, rng.uniform(22.0, 28.5))
    minutes = rng.uniform(20.0, 150.0)
    times = []
    for dataset in rng.sample(pool, min(len(pool), rng.randint(*reads))):
        for _ in range(rng.choice((1, 1, 2, 3))):
            ts = start + rng.random() * minutes * 60.0
            world.emit(rng, ts, person.principal, "human", team, dataset, person.address)
            times.append(ts)
    return times


def on_call_rotation(world: World, rng: random.Random, *, skip: set[tuple[str, int]]) -> None:
    """Each rotating team has one engineer on call per week, paged on some nights."""
    by_team: dict[str, list[Person]] = {}
    for person in world.org.people:
        if person.on_call and person.move_day is None:
            by_team.setdefault(person.team, []).append(person)
    for members in by_team.values():
        for day in range(world.days):
            on_duty = members[(day // 7) % len(members)]
            if (on_duty.principal, day) in skip or day < on_duty.join_day:
                continue
            if rng.random() < world.params.on_call_page_rate:
                on_call_night(world, rng, on_duty, day, (3, 20))


def public_on(world: World, day: int) -> list[Dataset]:
    """Company-wide datasets people open on ``day``: a deck only in the week after its
    meeting, the handbook and wiki always."""
    return [d for d in world.org.company_datasets
            if d.created_day == 0 or 0 <= day - d.created_day < 7]
