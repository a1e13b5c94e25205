"""The labelled incidents of a company's test period, each drawn as a variant.

Every company gets two exposures (the first of restricted data, the second of
confidential or restricted data), a departing employee taking their own team's data, an
account takeover at night from a new address, slow-and-low collection, a service account
scraping, and an insider broad read. Each is drawn within wide ranges: how fast, how large,
on a weekday, at night or at the weekend, in which office.
"""

from __future__ import annotations

import random

from reachwatch.models.simulation.family import Office
from reachwatch.models.simulation.labels import Labels
from reachwatch.models.simulation.organisation import COMPANY, Dataset, Person
from reachwatch.models.simulation.services import Service, run_once
from reachwatch.models.simulation.world import DAY, HOUR, MINUTE, World

SENSITIVE = ("confidential", "restricted")


def slot(world: World, rng: random.Random, office: Office, when: str, minutes: float) -> float:
    """A start time in the test period: local office hours on a workday, night, or weekend."""
    days = list(range(world.history_days, world.days))
    workdays = [d for d in days if world.is_workday(office, d)]
    weekends = [d for d in days if not world.is_workday(office, d)]
    if when == "weekend" and weekends:
        start = world.at_local(office, rng.choice(weekends), rng.uniform(9.0, 20.0))
    elif when == "night" or (when == "weekend" and not weekends):
        start = world.at_local(office, rng.choice(days), rng.uniform(0.5, 5.0))
    else:
        start = world.at_local(office, rng.choice(workdays or days), rng.uniform(9.5, 16.0))
    # Local days of far-off offices straddle the UTC test period: keep the incident inside.
    low, high = world.test_start + 10 * MINUTE, world.test_end - (minutes + 10) * MINUTE
    return min(max(start, low), max(low, high))


def whens(world: World, rng: random.Random, office: Office) -> str:
    options = ["office_hours", "office_hours", "night"]
    if any(not world.is_workday(office, d) for d in range(world.history_days, world.days)):
        options.append("weekend")
    return rng.choice(options)


def present(world: World, day: int, labels: Labels, roles: tuple[str, ...] = ("employee",)
            ) -> list[Person]:
    return [p for p in world.org.people if p.join_day <= day and p.move_day is None
            and p.role in roles and p.principal not in labels.used]


def awake(world: World, person: Person, ts: float) -> float:
    """Weight of a person reading at ``ts``: high in their office hours, low otherwise."""
    day = int((ts - world.t0) // DAY)
    hour = world.local_hour(person.office, ts)
    if world.is_workday(person.office, day) and 8.0 <= hour <= 20.0:
        return 1.0
    return 0.3 if person.late and 19.0 <= hour <= 24.0 else 0.08


def exposure(world: World, rng: random.Random, labels: Labels, sensitivity: str) -> None:
    """A sensitive dataset becomes readable by all, and people outside its audience open it."""
    org = world.org
    project_sets = {d.resource for p in org.projects for d in p.datasets}
    candidates = [d for d in org.datasets if d.sensitivity == sensitivity and d.labelled
                  and d.owner in org.teams and d.resource not in project_sets
                  and d.resource not in labels.used]
    if sensitivity == "restricted":
        people_data = [d for d in candidates if org.teams[d.owner].function == "people"]
        candidates = people_data or candidates
    if not candidates:
        return
    dataset = rng.choice(candidates)
    office = org.teams[dataset.owner].office
    speed = rng.choice(("fast", "slow"))
    size = rng.choice(("small", "large"))
    when = whens(world, rng, office)
    minutes = rng.uniform(10.0, 45.0) if speed == "fast" else rng.uniform(90.0, 360.0)
    start = slot(world, rng, office, when, minutes)
    day = int((start - world.t0) // DAY)
    audience = org.usual_audience(dataset, day)
    outsiders = [p for p in org.people if p.principal not in audience and p.join_day <= day
                 and p.principal not in labels.used]
    if size == "small":
        wanted = rng.randint(5, 12)
    else:
        wanted = max(15, min(250, round(len(outsiders) * rng.uniform(0.2, 0.6))))
    wanted = min(wanted, len(outsiders))
    times: list[float] = []
    readers: list[Person] = []
    # Front-loaded: most people click in the first minutes after the link goes round.
    offsets = sorted([0.0] + [rng.betavariate(1.0, 2.5) for _ in range(wanted - 1)])
    for offset in offsets:
        ts = start + offset * minutes * MINUTE
        weights = [awake(world, p, ts) for p in outsiders]
        person = rng.choices(outsiders, weights=weights)[0]
        outsiders.remove(person)
        readers.append(person)
        for repeat in range(rng.choice((1, 1, 2, 3))):
            at = ts + repeat * rng.uniform(5.0, 300.0)
            world.emit(rng, at, person.principal, "human", person.team_on(day), dataset,
                       person.address)
            times.append(at)
    teams = len({p.team_on(day) for p in readers})
    grant = exposure_grant(world, dataset, start, day)
    labels.incident(
        "exposure", "broad_audience", dataset.resource, times,
        f"{sensitivity} {dataset.resource} made readable by all; {len(readers)} people of "
        f"{teams} other teams open it within {minutes:.0f} min ({when})",
        {"sensitivity": sensitivity, "speed": speed, "size": size, "when": when,
         "readers": len(readers), "minutes": round(minutes), "grant": grant},
        first_outside_read=start,
    )


# How the access-control mistake is made, as the log names it (``models.grants``), with
# weights: a company-wide link most often, then a group of everyone added to the data's
# access list, the list edited, inheritance broken, a resource policy, an anonymous link.
EXPOSURE_GRANTS = (("share-organization", 4), ("group-add", 2), ("acl-change", 1),
                   ("inheritance-broken", 1), ("policy-change", 1), ("share-anonymous", 1))


def exposure_grant(world: World, dataset: Dataset, start: float, day: int) -> str | None:
    """The permission change that opened ``dataset``, minutes before its first outside
    read, by one of its team; its action if the logs recorded it, else None."""
    rng = world.rng(f"grant-exposure:{dataset.resource}")
    people = world.org.people
    team = [p for p in people if p.team_on(day) == dataset.owner and p.join_day <= day] or [
        p for p in people if p.team == dataset.owner] or people
    changer = rng.choice(team)
    actions, weights = zip(*EXPOSURE_GRANTS, strict=True)
    action = rng.choices(actions, weights=weights)[0]
    ts = start - rng.uniform(1.0, 30.0) * MINUTE
    logged = world.emit_grant(ts, changer.principal, changer.team_on(day), dataset, action,
                              changer.address)
    return action if logged else None


def departing_employee(world: World, rng: random.Random, labels: Labels) -> None:
    """Before leaving, someone exports most of their own team's data, whole tables."""
    org = world.org
    day = world.history_days
    people = [p for p in present(world, day, labels) if len(org.teams[p.team].datasets) >= 6]
    if not people:
        return
    person = rng.choice(people)
    team = org.teams[person.team]
    when = rng.choice(("office_hours", "office_hours", "evening"))
    minutes = rng.uniform(45.0, 240.0)
    start = slot(world, rng, person.office, "office_hours", minutes)
    if when == "evening":
        start = min(start + rng.uniform(4.0, 7.0) * HOUR, world.test_end - (minutes + 10) * MINUTE)
    own = [d for d in team.datasets if d.exists_before(day)]
    chosen = rng.sample(own, max(3, round(len(own) * rng.uniform(0.5, 1.0))))
    chosen += [d for p in person.projects for d in p.datasets if d not in chosen]
    times = sorted(start + rng.random() * minutes * MINUTE for _ in chosen)
    times[0] = start
    for ts, dataset in zip(times, chosen, strict=True):
        world.emit(rng, ts, person.principal, "human", person.team, dataset, person.address,
                   full=True)
    labels.incident(
        "departing_employee", "broad_reader", person.principal, times,
        f"{person.principal} ({person.team}) exports {len(chosen)} of their own team's "
        f"datasets, whole tables, in {minutes:.0f} min ({when})",
        {"when": when, "datasets": len(chosen), "minutes": round(minutes),
         "sensitive": sum(d.sensitivity in SENSITIVE for d in chosen)},
    )


def account_takeover(world: World, rng: random.Random, labels: Labels) -> None:
    """A stolen login at night, from an address never seen, reads across teams."""
    org = world.org
    people = present(world, world.history_days, labels, ("employee", "manager", "analyst"))
    if not people:
        return
    person = rng.choice(people)
    minutes = rng.uniform(15.0, 90.0)
    start = slot(world, rng, person.office, "night", minutes)
    address = f"203.0.113.{rng.randint(1, 254)}"
    pool = org.other_team_datasets(person.team, ("internal", *SENSITIVE))
    pool += org.teams[person.team].datasets
    weights = [{"public": 0.5, "internal": 1.0, "confidential": 2.0, "restricted": 3.0}[
        d.sensitivity] for d in pool]
    wanted = min(len(pool), rng.randint(25, 120))
    chosen: dict[str, Dataset] = {}
    while len(chosen) < wanted:
        dataset = rng.choices(pool, weights=weights)[0]
        chosen[dataset.resource] = dataset
    datasets = list(chosen.values())
    times = sorted(start + rng.random() * minutes * MINUTE for _ in datasets)
    times[0] = start
    denied_share = rng.uniform(0.0, 0.4)
    for ts, dataset in zip(times, datasets, strict=True):
        denied = dataset.owner != person.team and dataset.sensitivity == "restricted" and \
            rng.random() < denied_share * 2
        world.emit(rng, ts, person.principal, "human", person.team, dataset, address,
                   outcome="denied" if denied else "allowed", full=rng.random() < 0.5)
    labels.incident(
        "account_takeover", "broad_reader", person.principal, times,
        f"{person.principal}'s login used at night from {address}: {len(datasets)} datasets "
        f"of {len({d.owner for d in datasets})} teams in {minutes:.0f} min",
        {"datasets": len(datasets), "minutes": round(minutes), "address": address},
    )


def slow_collection(world: World, rng: random.Random, labels: Labels) -> None:
    """A few extra sensitive datasets of other teams per hour, for a working day."""
    org = world.org
    people = present(world, world.history_days, labels)
    if not people:
        return
    person = rng.choice(people)
    hours = rng.randint(5, 9)
    per_hour = (rng.randint(1, 3), rng.randint(3, 6))
    start = slot(world, rng, person.office, "office_hours", hours * 60.0)
    pool = org.other_team_datasets(person.team, SENSITIVE)
    rng.shuffle(pool)
    times: list[float] = []
    for hour in range(hours):
        for _ in range(rng.randint(*per_hour)):
            if pool:
                ts = start + (hour + rng.random()) * HOUR
                world.emit(rng, ts, person.principal, "human", person.team, pool.pop(),
                           person.address)
                times.append(ts)
    if times:
        labels.incident(
            "slow_collection", "broad_reader", person.principal, times,
            f"{person.principal} ({person.team}) reads {len(times)} extra sensitive datasets "
            f"of other teams, {per_hour[0]}-{per_hour[1]} an hour over {hours} h",
            {"datasets": len(times), "hours": hours, "per_hour": list(per_hour)},
        )


def service_scraping(world: World, rng: random.Random, labels: Labels,
                     services: list[Service]) -> None:
    """A service credential reads far beyond its pool: across teams, or restricted data."""
    org = world.org
    candidates = [s for s in services if s.archetype not in ("backup", "crawler")]
    if not candidates:
        return
    service = rng.choice(candidates)
    usual = {d.resource for d in service.pool}
    variant = "restricted" if service.archetype == "bi" and rng.random() < 0.6 else "broad"
    sensitivities = ("restricted", "confidential") if variant == "restricted" else (
        "public", "internal", "confidential", "restricted")
    pool = [d for d in org.datasets if d.resource not in usual and d.sensitivity in sensitivities
            and d.owner != COMPANY]
    low, high = (20, 100) if variant == "restricted" else (80, 400)
    chosen = rng.sample(pool, min(round(0.9 * len(pool)), rng.randint(low, high)))
    if not chosen:
        return
    minutes = rng.uniform(10.0, 60.0)
    office = org.teams[service.owner].office
    start = slot(world, rng, office, rng.choice(("night", "office_hours", "night")), minutes)
    address = f"198.51.100.{rng.randint(1, 254)}" if rng.random() < 0.5 else None
    times = run_once(world, service, rng, start, chosen, minutes, address=address)
    labels.incident(
        "service_scraping", "broad_reader", service.principal, times,
        f"stolen credential of {service.principal} ({service.archetype}) reads {len(chosen)} "
        f"datasets of {len({d.owner for d in chosen})} teams in {minutes:.0f} min",
        {"archetype": service.archetype, "target": variant, "datasets": len(chosen),
         "minutes": round(minutes), "new_address": address is not None},
    )


def insider_broad_read(world: World, rng: random.Random, labels: Labels) -> None:
    """Dozens of other teams' sensitive datasets in well under two hours, office hours."""
    org = world.org
    people = present(world, world.history_days, labels, ("employee", "manager"))
    if not people:
        return
    person = rng.choice(people)
    minutes = rng.uniform(25.0, 100.0)
    start = slot(world, rng, person.office, "office_hours", minutes)
    pool = org.other_team_datasets(person.team, SENSITIVE)
    chosen = rng.sample(pool, min(len(pool), rng.randint(30, 80)))
    if not chosen:
        return
    times = sorted(start + rng.random() * minutes * MINUTE for _ in chosen)
    times[0] = start
    denied_share = rng.uniform(0.0, 0.2)
    for ts, dataset in zip(times, chosen, strict=True):
        denied = rng.random() < denied_share
        world.emit(rng, ts, person.principal, "human", person.team, dataset, person.address,
                   outcome="denied" if denied else "allowed")
    labels.incident(
        "insider_broad_read", "broad_reader", person.principal, times,
        f"{person.principal} ({person.team}) reads {len(chosen)} sensitive datasets of "
        f"{len({d.owner for d in chosen})} other teams in {minutes:.0f} min",
        {"datasets": len(chosen), "minutes": round(minutes)},
    )


def inject(world: World, labels: Labels, services: list[Service]) -> None:
    """All incidents of one company, each from its own random stream."""
    exposure(world, world.rng("incident-exposure-1"), labels, "restricted")
    second = world.rng("incident-exposure-2")
    exposure(world, second, labels, "confidential" if second.random() < 0.6 else "restricted")
    departing_employee(world, world.rng("incident-departing"), labels)
    account_takeover(world, world.rng("incident-takeover"), labels)
    slow_collection(world, world.rng("incident-slow"), labels)
    service_scraping(world, world.rng("incident-scraping"), labels, services)
    insider_broad_read(world, world.rng("incident-insider"), labels)
