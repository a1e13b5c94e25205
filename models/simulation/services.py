"""Service accounts by archetype: what each reads, and when.

- ``etl``: hourly, a fixed subset of its team's datasets.
- ``bi``: a steady broad BI/dashboard service refreshing a slice of a large pool of
  business datasets every few minutes, all day, every day.
- ``backup``: nightly, every dataset of a slice of the teams, full table.
- ``crawler``: a weekly catalogue crawl over every dataset, so history holds only two or
  three runs.
- ``indexer``: every few hours, a sample of public/internal datasets.
- ``sync``: every few minutes, a few datasets of its team.
- ``report``: daily, tens of business datasets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from reachwatch.models.simulation.organisation import Dataset, Organisation
from reachwatch.models.simulation.world import DAY, MINUTE, World


@dataclass(slots=True)
class Service:
    principal: str
    owner: str  # team
    archetype: str
    address: str
    every_minutes: float  # between runs
    pool: list[Dataset]  # what it may read
    per_run: int  # datasets per run (all of the pool if >= len(pool))
    offset_minutes: float  # phase of its schedule
    run_minutes: float  # how long one run takes
    full: bool = False  # reads whole tables

    def describe(self) -> dict[str, object]:
        return {
            "principal": self.principal, "owner": self.owner, "archetype": self.archetype,
            "every_minutes": round(self.every_minutes, 1), "pool": len(self.pool),
            "per_run": min(self.per_run, len(self.pool)),
        }


def build_services(org: Organisation, rng: random.Random) -> list[Service]:
    mix = org.params.services

    def scaled(count: int) -> int:
        # Fewer services in a smaller company, but an archetype present stays present.
        return max(1, round(count * org.scale)) if count else 0

    teams = list(org.teams)
    services: list[Service] = []
    address = iter(f"10.200.{i // 250}.{i % 250 + 1}" for i in range(10_000))
    business = [d for name, t in org.teams.items() if t.function not in ("people", "security")
                for d in t.datasets if d.sensitivity in ("internal", "confidential")]

    def add(principal: str, owner: str, archetype: str, every: float, pool: list[Dataset],
            per_run: int, run_minutes: float, *, full: bool = False) -> None:
        if pool:
            services.append(Service(principal, owner, archetype, next(address), every, pool,
                                    max(1, per_run), rng.uniform(0.0, every), run_minutes, full))

    for name in teams:
        if rng.random() < mix.etl_team_share:
            own = org.teams[name].datasets
            subset = rng.sample(own, max(2, round(len(own) * mix.etl_subset_share)))
            add(f"svc-etl-{name}", name, "etl", 60.0, subset, len(subset), rng.uniform(1.0, 10.0))
    for index in range(scaled(mix.bi)):
        pool = rng.sample(business, max(1, round(len(business) * mix.bi_pool_share)))
        every = rng.choice((5.0, 10.0, 15.0, 30.0))
        per_run = max(3, round(len(pool) * rng.uniform(0.05, 0.3)))
        add(f"svc-bi-{index + 1}", rng.choice(teams), "bi", every, pool, per_run, every * 0.5)
    slices = [teams[i::mix.backups] for i in range(mix.backups)]
    for index, owned in enumerate(slices):
        pool = [d for name in owned for d in org.teams[name].datasets]
        keeper = next((t for t in teams if org.teams[t].function == "it"), teams[0])
        add(f"svc-backup-{index + 1}", keeper, "backup", DAY / MINUTE, pool, len(pool),
            rng.uniform(60.0, 180.0), full=True)
        # Backups run at night in the owner's office: 00:00-04:00 local.
        office = org.teams[keeper].office
        services[-1].offset_minutes = ((rng.uniform(0.0, 4.0) - office.utc_offset) % 24) * 60
    for index in range(scaled(mix.crawlers)):
        owner = rng.choice(teams)
        add(f"svc-catalogue-crawler-{index + 1}", owner, "crawler", 7 * DAY / MINUTE,
            org.datasets, len(org.datasets), rng.uniform(60.0, 240.0))
        services[-1].offset_minutes = rng.uniform(0.0, 7 * DAY / MINUTE)
    for index in range(scaled(mix.indexers)):
        pool = [d for d in org.datasets if d.sensitivity in ("public", "internal")]
        add(f"svc-search-indexer-{index + 1}", rng.choice(teams), "indexer",
            rng.choice((60.0, 120.0, 240.0, 360.0)), pool,
            round(len(pool) * rng.uniform(0.05, 0.3)), 30.0)
    for index in range(scaled(mix.syncs)):
        owner = rng.choice(teams)
        own = org.teams[owner].datasets
        add(f"svc-sync-{owner}-{index + 1}", owner, "sync", rng.choice((5.0, 10.0, 15.0, 30.0,
            60.0, 240.0)), rng.sample(own, min(len(own), rng.randint(1, 6))), 6, 1.0)
    for index in range(scaled(mix.reports)):
        pool = rng.sample(business, min(len(business), rng.randint(10, 60)))
        add(f"svc-report-{index + 1}", rng.choice(teams), "report", DAY / MINUTE, pool,
            len(pool), rng.uniform(10.0, 40.0))
    return services


def run_services(world: World, services: list[Service], rng: random.Random) -> None:
    """Emit every service's scheduled runs over the whole simulated period."""
    end = world.test_end
    for service in services:
        ts = world.t0 + service.offset_minutes * MINUTE - service.every_minutes * MINUTE
        while ts < end:
            ts += service.every_minutes * MINUTE
            day = int((ts - world.t0) // DAY)
            existing = [d for d in service.pool if d.exists_before(day)]
            if not existing:
                continue
            # Jitter: schedulers start late by seconds to a few minutes.
            start = ts + rng.uniform(0.0, 120.0)
            chosen = existing if service.per_run >= len(existing) else rng.sample(
                existing, service.per_run)
            span = service.run_minutes * MINUTE
            for index, dataset in enumerate(chosen):
                at = start + span * (index + rng.random()) / len(chosen)
                world.emit(rng, at, service.principal, "service", service.owner, dataset,
                           service.address, full=service.full)


def run_once(world: World, service: Service, rng: random.Random, start: float,
             datasets: list[Dataset], minutes: float, *, address: str | None = None) -> list[float]:
    """One unscheduled run (an incident or a look-alike): these datasets over ``minutes``."""
    times = sorted(start + rng.random() * minutes * MINUTE for _ in datasets)
    if times:
        times[0] = start
    for ts, dataset in zip(times, datasets, strict=True):
        world.emit(rng, ts, service.principal, "service", service.owner, dataset,
                   address or service.address)
    return times

