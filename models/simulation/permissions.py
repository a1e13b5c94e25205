"""Ordinary permission changes: a colleague of another team given access, a member added.

Grant events are logged next to the reads in many companies (``models.grants``), and most
are routine: a team member shares one of the team's datasets with a colleague of another
team who asked for it (the colleague opens it within hours, once or a few times), or adds
someone to the team's group. They happen on data of every sensitivity, in history and in
the test period, at ``CompanyParams.grants_per_team_week`` per team, and only the share
``grants_logged`` of them reaches the log (``World.emit_grant``). Without them a detector
that uses grants would learn that every grant is an incident. A test-period share of
confidential or restricted data is labelled a look-alike (``access_request``).
"""

from __future__ import annotations

import math
import random

from reachwatch.models.simulation.labels import Labels
from reachwatch.models.simulation.world import DAY, HOUR, MINUTE, World


def routine(world: World, labels: Labels) -> None:
    """Emit every team's ordinary permission changes (call after everything else)."""
    org = world.org
    rate = world.params.grants_per_team_week / 7.0
    if rate <= 0.0 or world.params.grants_logged <= 0.0:
        return
    rng = world.rng("grants-routine")
    for team in org.teams.values():
        for day in range(world.days):
            if not world.is_workday(team.office, day):
                continue
            for _ in range(_poisson(rng, rate)):
                members = [p for p in org.people if p.team_on(day) == team.name
                           and p.join_day <= day and p.principal not in labels.used]
                datasets = [d for d in team.datasets if d.exists_before(day)
                            and d.resource not in labels.used]
                if not members or not datasets:
                    continue
                sharer = rng.choice(members)
                dataset = rng.choice(datasets)
                ts = world.at_local(team.office, day, rng.uniform(9.0, 17.0))
                if rng.random() < 0.4:
                    # A newcomer or a member back from a move added to the team's group:
                    # the change alone, their reads are their ordinary ones.
                    world.emit_grant(ts, sharer.principal, team.name, dataset, "group-add",
                                     sharer.address)
                    continue
                outside = [p for p in org.people if p.team_on(day) != team.name
                           and p.join_day <= day and p.role == "employee"
                           and p.principal not in labels.used]
                if not outside:
                    continue
                colleague = rng.choice(outside)
                logged = world.emit_grant(ts, sharer.principal, team.name, dataset,
                                          rng.choice(("share", "share", "grant")),
                                          sharer.address)
                times = []
                for _ in range(rng.choice((1, 1, 2, 3))):
                    at = ts + rng.uniform(2.0, 30.0) * MINUTE + rng.expovariate(1.0 / HOUR)
                    world.emit(rng, at, colleague.principal, "human", colleague.team_on(day),
                               dataset, colleague.address)
                    times.append(at)
                if (world.test_start <= ts < world.test_end - DAY / 24
                        and dataset.sensitivity in ("confidential", "restricted")
                        and dataset.resource not in labels.used):
                    labels.look_alike(
                        "access_request", "broad_audience", dataset.resource,
                        f"shared with {colleague.principal} of {colleague.team_on(day)}, who "
                        f"opens it ({'logged' if logged else 'not logged'})", times)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's product of uniforms; small means only)."""
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count
