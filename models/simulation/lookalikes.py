"""Benign activity that looks like an incident, labelled so an alert on it is a false positive.

Company-wide reads of a public deck or an internal page, a project kick-off with a
partner team (who start reading the owner team's data), a reorganisation moving people
into another team, quarter-end volume in finance, a long on-call night, a new auditor, a
newcomer browsing their team's data, and the scheduled broad services (backups, weekly
crawlers, BI refreshes, reports) running in the test period.

``plan`` changes the organisation before any ordinary day is generated (people who join
or move, projects that start); ``emit`` adds the test period's bursts afterwards.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from reachwatch.models.simulation.behaviour import human_day, on_call_night
from reachwatch.models.simulation.labels import Labels
from reachwatch.models.simulation.organisation import COMPANY, Dataset, Person, Project
from reachwatch.models.simulation.services import Service
from reachwatch.models.simulation.world import HOUR, MINUTE, World

BROAD_ARCHETYPES = ("backup", "crawler", "bi", "report", "indexer")


def company_wide(world: World, rng: random.Random, day: int, sensitivity: str,
                 share: tuple[float, float]) -> tuple[Dataset, list[float]]:
    """A new company-wide dataset most people open after a meeting in the main office."""
    org = world.org
    main = world.params.offices[0]
    date = datetime.fromtimestamp(world.day_start(day), UTC).strftime("%Y-%m-%d")
    noun = "all-hands" if sensitivity == "public" else rng.choice(
        ("benefits-update", "org-announcement", "security-training", "policy-update"))
    dataset = org.new_dataset(rng, f"{COMPANY}.{noun}-{date}", COMPANY, sensitivity, day,
                              labelled=True)
    org.company_datasets.append(dataset)
    meeting = world.at_local(main, day, rng.uniform(10.0, 17.0))
    people = [p for p in org.people if p.join_day <= day]
    # Its author opens it to the whole company before the meeting (its own draw).
    grants = world.rng(f"grant-company-wide:{dataset.resource}")
    author = grants.choice([p for p in people if p.office.name == main.name] or people)
    world.emit_grant(meeting - grants.uniform(5.0, 90.0) * MINUTE, author.principal,
                     author.team_on(day), dataset, "share-organization", author.address)
    times = []
    for person in rng.sample(people, round(len(people) * rng.uniform(*share))):
        ts = meeting + min(3 * HOUR, rng.expovariate(1.0 / (rng.uniform(10.0, 40.0) * MINUTE)))
        hour = world.local_hour(person.office, ts)
        if not 7.5 <= hour <= 21.0:
            # Other offices open it when their morning starts.
            ts += ((9.0 - hour) % 24.0) * HOUR + rng.expovariate(1.0 / (40 * MINUTE))
        world.emit(rng, ts, person.principal, "human", person.team_on(day), dataset,
                   person.address)
        times.append(ts)
    return dataset, times


def history_company_wide(world: World) -> None:
    rng = world.rng("history-company-wide")
    every = world.params.company_wide_every_days
    main = world.params.offices[0]
    for day in range(2, world.history_days, every):
        while not world.is_workday(main, day) and day < world.history_days - 1:
            day += 1
        company_wide(world, rng, day, "public", (0.6, 0.95))


def _test_workday(world: World, rng: random.Random) -> int:
    """A working day of the main office in the test period (any test day if none)."""
    office = world.params.offices[0]
    days = [d for d in range(world.history_days, world.days) if world.is_workday(office, d)]
    return rng.choice(days or list(range(world.history_days, world.days)))


def plan(world: World, labels: Labels) -> list[Person]:
    """Look-alikes that change the organisation; returns people to skip in the rotation."""
    org = world.org
    rng = world.rng("lookalike-plan")
    # A project kick-off: a partner team starts reading the owner team's data.
    names = list(org.teams)
    if len(names) >= 2:
        owner, partner = (org.teams[n] for n in rng.sample(names, 2))
        day = _test_workday(world, rng)
        shared = [d for d in owner.datasets if d.sensitivity in ("internal", "confidential")]
        shared = rng.sample(shared, min(len(shared), rng.randint(1, 5)))
        new = [org.new_dataset(rng, f"{owner.name}.kickoff-{noun}", owner.name,
                               rng.choice(("internal", "confidential")), day)
               for noun in rng.sample(("plan", "data", "tracker", "designs"), rng.randint(1, 3))]
        owner.datasets.extend(new)
        project = Project(f"project-kickoff-{partner.name}", (owner.name, partner.name),
                          shared + new, kickoff_day=day)
        org.projects.append(project)
        for team in (owner, partner):
            members = [p for p in org.people if p.team == team.name and p.move_day is None]
            for person in rng.sample(members, max(1, round(len(members) * rng.uniform(0.4, 1)))):
                project.members.append(person.principal)
                person.projects.append(project)
        kickoff = world.at_local(owner.office, day, rng.uniform(9.5, 15.0))
        # The owner team shares the project's data with the partner team before it starts.
        grants = world.rng(f"grant-kickoff:{project.name}")
        sharer = org.by_principal[next(m for m in project.members
                                       if org.by_principal[m].team == owner.name)]
        for dataset in project.datasets:
            world.emit_grant(kickoff - grants.uniform(10.0, 120.0) * MINUTE, sharer.principal,
                             owner.name, dataset, grants.choice(("share", "group-add")),
                             sharer.address)
        for principal in project.members:
            person = org.by_principal[principal]
            for dataset in rng.sample(project.datasets, rng.randint(1, len(project.datasets))):
                ts = kickoff + rng.uniform(0.0, 2.0) * HOUR
                world.emit(rng, ts, principal, "human", person.team, dataset, person.address)
            if person.team == partner.name:
                labels.look_alike("project_kickoff", "broad_reader", principal,
                                  f"joins {project.name} and reads {owner.name}'s shared data")
        for dataset in project.datasets:
            labels.look_alike("project_kickoff", "broad_audience", dataset.resource,
                              f"{partner.name} starts reading it at a kick-off with "
                              f"{owner.name}")
    # A reorganisation: several people of one team move to another in the test period.
    def movable(team: str) -> list[Person]:
        return [p for p in org.people if p.team == team and p.role == "employee"
                and p.move_day is None and p.principal not in labels.used]

    sources = [name for name in names if len(movable(name)) >= 2]
    if sources and len(names) >= 2:
        source = rng.choice(sources)
        target = rng.choice([name for name in names if name != source])
        movers = movable(source)
        movers = rng.sample(movers, min(max(2, len(movers) // 2), rng.randint(2, 15)))
        day = _test_workday(world, rng)
        for person in movers:
            person.move_day, person.move_team = day, target
            person.profiles.append(org.profile(rng, target, "employee"))
            own = org.teams[target].datasets
            start = world.at_local(person.office, day, rng.uniform(9.0, 11.0))
            for dataset in rng.sample(own, max(1, round(len(own) * rng.uniform(0.2, 0.7)))):
                world.emit(rng, start + rng.random() * 6 * HOUR, person.principal, "human",
                           target, dataset, person.address)
            labels.look_alike("reorganisation", "broad_reader", person.principal,
                              f"moves from {source} to {target} and reads its data")
    # A newcomer browses their team's data from day one; a new auditor sweeps like the rest.
    team = rng.choice(names)
    newcomer = org.new_person(rng, team, role="employee", join_day=_test_workday(world, rng))
    own = org.teams[team].datasets
    start = world.at_local(newcomer.office, newcomer.join_day, 10.0)
    for dataset in rng.sample(own, max(1, round(len(own) * rng.uniform(0.3, 0.8)))):
        world.emit(rng, start + rng.random() * 6 * HOUR, newcomer.principal, "human", team,
                   dataset, newcomer.address)
    labels.look_alike("newcomer", "broad_reader", newcomer.principal,
                      f"joins {team} and reads its own team's data from day one")
    auditors = [p for p in org.people if p.role == "auditor"]
    if auditors:
        auditor = org.new_person(rng, auditors[0].team, role="auditor",
                                 join_day=_test_workday(world, rng))
        labels.look_alike("new_auditor", "broad_reader", auditor.principal,
                          "joins the auditors and, like them, reads across teams")
    on_call = [p for p in org.people if p.on_call and p.move_day is None
               and p.principal not in labels.used]
    return on_call


def emit(world: World, labels: Labels, on_call: list[Person], services: list[Service],
         skip: set[tuple[str, int]]) -> None:
    """The test period's look-alike bursts, after the ordinary days exist."""
    org = world.org
    rng = world.rng("lookalike-emit")
    day = _test_workday(world, rng)
    deck, times = company_wide(world, rng, day, "public", (0.6, 0.95))
    labels.look_alike("company_wide_public", "broad_audience", deck.resource,
                      "public deck read by most of the company after a meeting", times)
    if rng.random() < 0.7:
        page, times = company_wide(world, rng, _test_workday(world, rng), "internal", (0.4, 0.9))
        labels.look_alike("company_wide_internal", "broad_audience", page.resource,
                          "internal page every employee is asked to read", times)
    finance = [t for t in org.teams.values() if t.function == "finance"]
    if finance:
        team = rng.choice(finance)
        day = _test_workday(world, rng)
        volume = rng.uniform(1.5, 3.0)
        close = [d for d in team.datasets if d.sensitivity != "public"
                 and d.resource not in labels.used]
        close = rng.sample(close, min(len(close), rng.randint(3, 12)))
        for person in [p for p in org.people if p.team_on(day) == team.name
                       and p.join_day <= day and p.principal not in labels.used]:
            human_day(world, rng, person, day, volume=volume - 1.0)
            start = world.at_local(person.office, day, 9.0)
            for dataset in rng.sample(close, max(1, round(len(close) * rng.uniform(0.5, 0.9)))):
                world.emit(rng, start + rng.random() * 8 * HOUR, person.principal, "human",
                           team.name, dataset, person.address)
            labels.look_alike("quarter_end", "broad_reader", person.principal,
                              f"quarter-end close: {team.name} reads more of its own data")
        for dataset in close:
            labels.look_alike("quarter_end", "broad_audience", dataset.resource,
                              f"quarter-end close: most of {team.name} reads it")
    on_call = [p for p in on_call if p.principal not in labels.used]
    if on_call:
        person = rng.choice(on_call)
        day = rng.randrange(world.history_days, world.days)
        skip.add((person.principal, day))
        times = on_call_night(world, rng, person, day, (15, 60))
        labels.look_alike("on_call_night", "broad_reader", person.principal,
                          "paged at night, digs through the team's and division's data", times)
    incident_entities = {i["entity"] for i in labels.incidents}
    for service in services:
        if service.archetype in BROAD_ARCHETYPES and service.principal not in incident_entities:
            labels.look_alike(f"service_{service.archetype}", "broad_reader", service.principal,
                              f"{service.archetype} service on its schedule "
                              f"({len(service.pool)} datasets in its pool)")
