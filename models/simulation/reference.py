"""The reference company: one fixed organisation, kept for the demo and the streaming tests.

The detector is judged on the family (``reachwatch.models.simulation``); this is the single
company of earlier releases, whose story (an exposure the demo shows, the incident the
streaming tests replay) stays put while the family and the detector change.

``simulate`` writes a history period of normal behaviour and a test period holding the
same behaviour plus four labelled incidents (a restricted dataset exposed to the whole
company, an insider broad read, a stolen service credential scraping at night, a slow
and low collection) and benign look-alikes that a good detector keeps quiet about (an
all-hands deck read by everyone, the nightly backup, a new auditor, a newcomer, a
quarter-end spike in finance).

Every knob lives in ``SimulationParams``. Randomness comes from string-seeded
``random.Random`` instances (stable across processes and platforms) and nothing iterates
a set, so the same seed writes byte-identical files.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
...     summary = simulate(Path(tmp), scale=0.3)
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import AccessEvent, rfc3339

DAY = 86400.0
HOUR = 3600.0
MINUTE = 60.0
SOURCE = "simulation"
LABELS_SCHEMA_VERSION = 1
COMPANY = "company"  # resource_group of the company-wide public datasets

# An event before it becomes an AccessEvent: (ts, principal, principal_type,
# principal_group, resource, resource_group, sensitivity, records, bytes, outcome).
Row = tuple[float, str, str, str, str, str, str, int, int, str]


@dataclass(frozen=True, slots=True)
class TeamSpec:
    """One team: head count and datasets at scale 1.0, and what its datasets hold."""

    name: str
    size: int
    datasets: int
    # Weights of public, internal, confidential, restricted among its datasets.
    sensitivity_mix: tuple[float, float, float, float]
    nouns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service account that reads ``reads`` datasets of ``team`` every ``every_minutes``."""

    principal: str
    owner: str
    every_minutes: int
    team: str
    reads: int


TEAMS: tuple[TeamSpec, ...] = (
    TeamSpec(
        "hr",
        18,
        30,
        (0.0, 0.25, 0.35, 0.4),
        (
            "employee-records",
            "employee-monitoring",
            "employee-salaries",
            "employee-reviews",
            "employee-medical",
            "employee-contracts",
            "recruiting-pipeline",
            "benefits-enrollment",
            "org-chart",
            "training-records",
            "leave-requests",
            "payroll-runs",
        ),
    ),
    TeamSpec(
        "finance",
        25,
        40,
        (0.0, 0.2, 0.6, 0.2),
        (
            "ledger",
            "invoices",
            "forecasts",
            "budgets",
            "expenses",
            "tax-filings",
            "revenue",
            "quarter-close",
            "payables",
            "receivables",
            "audit-trail",
        ),
    ),
    TeamSpec(
        "legal",
        10,
        20,
        (0.0, 0.2, 0.5, 0.3),
        (
            "contracts",
            "litigation",
            "ip-portfolio",
            "nda-register",
            "compliance-reviews",
            "board-minutes",
        ),
    ),
    TeamSpec(
        "sales",
        55,
        45,
        (0.05, 0.45, 0.45, 0.05),
        (
            "crm-accounts",
            "pipeline",
            "quotes",
            "commissions",
            "territories",
            "leads",
            "renewals",
            "pricing",
        ),
    ),
    TeamSpec(
        "marketing",
        25,
        30,
        (0.2, 0.55, 0.25, 0.0),
        (
            "campaigns",
            "web-analytics",
            "brand-assets",
            "events",
            "newsletter-lists",
            "social-metrics",
            "press-kit",
        ),
    ),
    TeamSpec(
        "support",
        45,
        35,
        (0.05, 0.55, 0.35, 0.05),
        (
            "tickets",
            "customer-contacts",
            "sla-reports",
            "knowledge-base",
            "escalations",
            "call-recordings",
        ),
    ),
    TeamSpec(
        "eng-platform",
        45,
        60,
        (0.05, 0.7, 0.2, 0.05),
        (
            "service-logs",
            "deploy-history",
            "infra-inventory",
            "metrics-archive",
            "secrets-audit",
            "build-cache",
            "incident-postmortems",
            "capacity-plans",
        ),
    ),
    TeamSpec(
        "eng-product",
        70,
        70,
        (0.05, 0.7, 0.22, 0.03),
        (
            "product-events",
            "feature-flags",
            "user-profiles",
            "experiments",
            "roadmap",
            "release-notes",
            "api-usage",
            "bug-reports",
        ),
    ),
    TeamSpec(
        "data-science",
        20,
        40,
        (0.0, 0.55, 0.4, 0.05),
        (
            "training-sets",
            "model-outputs",
            "churn-scores",
            "segments",
            "forecast-models",
            "feature-tables",
        ),
    ),
    TeamSpec(
        "security-audit",
        8,
        15,
        (0.0, 0.2, 0.5, 0.3),
        ("access-reviews", "findings", "siem-alerts", "pentest-reports", "risk-register"),
    ),
    TeamSpec(
        "it-ops",
        17,
        25,
        (0.05, 0.6, 0.3, 0.05),
        (
            "asset-inventory",
            "helpdesk",
            "laptop-fleet",
            "licenses",
            "network-config",
            "backup-catalog",
        ),
    ),
    TeamSpec(
        "exec",
        12,
        15,
        (0.0, 0.1, 0.5, 0.4),
        ("board-decks", "strategy", "m-and-a", "comp-plans", "investor-updates"),
    ),
)

SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("svc-payroll", "hr", 60, "hr", 3),
    ServiceSpec("svc-billing", "finance", 30, "finance", 4),
    ServiceSpec("svc-crm-sync", "sales", 15, "sales", 3),
    ServiceSpec("svc-campaigns", "marketing", 60, "marketing", 3),
    ServiceSpec("svc-ticket-sync", "support", 15, "support", 3),
    ServiceSpec("svc-ci", "eng-platform", 10, "eng-platform", 2),
    ServiceSpec("svc-feature-store", "data-science", 60, "data-science", 5),
    ServiceSpec("svc-siem", "security-audit", 5, "security-audit", 2),
    ServiceSpec("svc-contract-archive", "legal", 240, "legal", 4),
    ServiceSpec("svc-asset-inventory", "it-ops", 60, "it-ops", 3),
)

FIRST_NAMES = (
    "ana",
    "ben",
    "chen",
    "dana",
    "eli",
    "fatima",
    "gus",
    "hana",
    "ivan",
    "jo",
    "kofi",
    "lea",
    "mia",
    "nils",
    "omar",
    "pia",
    "quinn",
    "raj",
    "sara",
    "tom",
    "uma",
    "vic",
    "wen",
    "xavi",
    "yara",
    "zoe",
    "amir",
    "bea",
    "carl",
    "dina",
    "emil",
    "femi",
    "gina",
    "hugo",
    "iris",
    "jan",
    "kim",
    "luis",
    "maya",
    "noah",
    "olga",
    "paul",
    "rosa",
    "sam",
    "tara",
    "ugo",
    "vera",
)
LAST_NAMES = (
    "adams",
    "banda",
    "costa",
    "dubois",
    "evans",
    "fischer",
    "garcia",
    "haddad",
    "ito",
    "jensen",
    "kowalski",
    "lopez",
    "mensah",
    "novak",
    "okafor",
    "park",
    "quispe",
    "rossi",
    "silva",
    "tanaka",
    "ueda",
    "vargas",
    "weber",
    "xu",
    "yilmaz",
    "zhang",
    "berg",
    "moreau",
    "nguyen",
    "patel",
    "schmidt",
    "kaur",
    "murphy",
    "olsen",
    "reyes",
    "suzuki",
)


@dataclass(frozen=True, slots=True)
class SimulationParams:
    """Every knob of the generator, in one place. Counts are at scale 1.0."""

    teams: tuple[TeamSpec, ...] = TEAMS
    services: tuple[ServiceSpec, ...] = SERVICES
    company_public: tuple[str, ...] = ("handbook", "wiki", "holiday-calendar", "announcements")
    # Humans.
    reads_per_day_median: float = 30.0
    reads_per_day_sigma: float = 0.45  # lognormal spread of the per-person daily rate
    absence_rate: float = 0.05  # a working day off (leave, sick)
    late_worker_share: float = 0.1
    late_read_share: float = 0.15  # of a late worker's reads, in 19:00-23:00
    weekend_worker_share: float = 0.05
    favorites: tuple[int, int] = (6, 14)  # own-team datasets a person keeps returning to
    usual_cross: tuple[int, int] = (2, 5)  # other teams' public/internal datasets read routinely
    # Shares of a person's reads: favourite, other own-team, usual cross-team, company public,
    # denied attempt, novel cross-team internal.
    read_mix: tuple[float, float, float, float, float, float] = (0.70, 0.12, 0.10, 0.06, 0.01, 0.01)
    audit_daily_datasets: tuple[int, int] = (40, 60)  # security-audit sweeps, every day
    mover_share: float = 0.015  # people changing team during history
    joiner_share: float = 0.02  # people joining during history
    # Services.
    etl_subset_share: float = 0.25  # of its team's datasets an hourly ETL run reads
    backup_hours: tuple[float, float] = (1.0, 3.0)
    indexer_every_hours: int = 2
    indexer_share: float = 0.10  # of public/internal datasets re-indexed per run
    reporting_hour: float = 6.0
    reporting_datasets: int = 30
    # All-hands: every other Thursday in history, and once in the test period.
    all_hands_every_days: int = 14
    all_hands_hour: float = 16.0
    all_hands_share: tuple[float, float] = (0.85, 0.95)
    deck_days: int = 7  # an all-hands deck is still opened now and then for a week
    # Incidents.
    exposure_readers: tuple[int, int] = (60, 150)
    exposure_minutes: tuple[int, int] = (60, 120)
    insider_datasets: tuple[int, int] = (40, 80)
    insider_minutes: float = 45.0
    insider_denied_share: float = 0.1
    scraping_datasets: tuple[int, int] = (200, 350)
    scraping_minutes: tuple[int, int] = (40, 60)
    slow_per_hour: tuple[int, int] = (3, 6)
    slow_hours: int = 8
    # Benign look-alikes in the test period.
    newcomer_datasets: tuple[int, int] = (15, 25)
    quarter_end_volume: float = 2.5  # finance reads this many times its usual volume
    quarter_end_close_datasets: tuple[int, int] = (8, 12)


@dataclass(slots=True)
class Dataset:
    resource: str
    owner: str
    sensitivity: str
    rows: int
    row_bytes: int
    created_day: int = 0

    def exists_before(self, day: int) -> bool:
        """Whether the dataset existed when ``day`` began (decks appear during their day)."""
        return self.created_day == 0 or self.created_day < day


@dataclass(slots=True)
class Profile:
    """What a person reads while in one team."""

    team: str
    favorites: list[Dataset]
    favorite_weights: list[float]
    usual_cross: list[Dataset]


@dataclass(slots=True)
class Person:
    principal: str
    team: str
    role: str  # employee | auditor | exec | analyst
    rate: float
    start_hour: float
    day_hours: float
    late: bool
    weekend: bool
    join_day: int = 0
    move_day: int | None = None
    move_team: str | None = None
    profiles: list[Profile] = field(default_factory=list)

    def team_on(self, day: int) -> str:
        if self.move_day is not None and self.move_team is not None and day >= self.move_day:
            return self.move_team
        return self.team


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """Counts of what ``simulate`` wrote, and where."""

    out_dir: str
    seed: int
    scale: float
    teams: int
    people: int
    services: int
    datasets: int
    history_events: int
    test_events: int
    incidents: int
    benign: int
    test_start: str
    test_end: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _World:
    """The company and its event rows while they are being generated."""

    def __init__(
        self, params: SimulationParams, seed: int, scale: float, days: int, t0: float
    ) -> None:
        self.params = params
        self.seed = seed
        self.scale = scale
        self.days = days
        self.t0 = t0
        self.weekday0 = datetime.fromtimestamp(t0, UTC).weekday()
        self.rows: list[Row] = []
        self.datasets: list[Dataset] = []
        self.by_team: dict[str, list[Dataset]] = {}
        self.people: list[Person] = []
        self.by_id: dict[str, Dataset] = {}
        self.team_names = [team.name for team in params.teams]
        self._other_cache: dict[tuple[str, tuple[str, ...]], list[Dataset]] = {}

    def rng(self, purpose: str) -> random.Random:
        # One stream per purpose: changing one part of the generator leaves the others' draws
        # (and so most of the files) unchanged.
        return random.Random(f"reachwatch-sim:{self.seed}:{purpose}")

    def is_workday(self, day: int) -> bool:
        return (self.weekday0 + day) % 7 < 5

    def day_start(self, day: int) -> float:
        return self.t0 + day * DAY

    def emit(
        self,
        rng: random.Random,
        ts: float,
        principal: str,
        principal_type: str,
        group: str,
        dataset: Dataset,
        *,
        outcome: str = "allowed",
        full: bool = False,
    ) -> None:
        if outcome == "denied":
            records = 0
        elif full:
            records = dataset.rows
        else:
            # Heavy-tailed: most reads touch a few hundred rows, a few scan the table.
            records = min(dataset.rows, max(1, int(rng.lognormvariate(4.5, 1.8))))
        size = int(records * dataset.row_bytes * rng.uniform(0.6, 1.4))
        self.rows.append(
            (
                round(ts, 3),
                principal,
                principal_type,
                group,
                dataset.resource,
                dataset.owner,
                dataset.sensitivity,
                records,
                size,
                outcome,
            )
        )

    # --- company ------------------------------------------------------------------------

    def build_datasets(self) -> None:
        rng = self.rng("datasets")
        sensitivities = ("public", "internal", "confidential", "restricted")
        suffixes = (
            "",
            "-eu",
            "-us",
            "-apac",
            "-archive",
            "-2025",
            "-v2",
            "-daily",
            "-raw",
            "-summary",
            "-staging",
            "-legacy",
        )
        for team in self.params.teams:
            count = max(4, round(team.datasets * self.scale))
            owned: list[Dataset] = []
            for index in range(count):
                noun = team.nouns[index % len(team.nouns)]
                suffix = suffixes[(index // len(team.nouns)) % len(suffixes)]
                cycle = index // (len(team.nouns) * len(suffixes))
                name = f"{team.name}.{noun}{suffix}" + (f"-{cycle}" if cycle else "")
                if noun.startswith("employee-"):
                    sensitivity = "restricted"
                else:
                    sensitivity = rng.choices(sensitivities, weights=team.sensitivity_mix)[0]
                owned.append(self._dataset(rng, name, team.name, sensitivity))
            self.by_team[team.name] = owned
        self.by_team[COMPANY] = [
            self._dataset(rng, f"{COMPANY}.{noun}", COMPANY, "public")
            for noun in self.params.company_public
        ]

    def _dataset(
        self, rng: random.Random, name: str, owner: str, sensitivity: str, created_day: int = 0
    ) -> Dataset:
        dataset = Dataset(
            resource=name,
            owner=owner,
            sensitivity=sensitivity,
            rows=max(10, int(rng.lognormvariate(10.0, 2.0))),
            row_bytes=max(40, int(rng.lognormvariate(6.0, 0.8))),
            created_day=created_day,
        )
        self.datasets.append(dataset)
        self.by_id[name] = dataset
        return dataset

    def other_team_datasets(self, team: str, sensitivities: tuple[str, ...]) -> list[Dataset]:
        """Other teams' datasets of these sensitivities (a fresh list; cached underneath)."""
        key = (team, sensitivities)
        if key not in self._other_cache:
            self._other_cache[key] = [
                d
                for name in self.team_names
                if name != team
                for d in self.by_team[name]
                if d.sensitivity in sensitivities
            ]
        return list(self._other_cache[key])

    def profile(self, rng: random.Random, team: str, role: str) -> Profile:
        own = self.by_team[team]
        low, high = self.params.favorites
        favorites = rng.sample(own, min(len(own), rng.randint(low, high)))
        # Zipf-like: a person's top dataset gets most of their attention.
        weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(favorites))]
        low, high = self.params.usual_cross
        usual = rng.sample(
            self.other_team_datasets(team, ("public", "internal")), rng.randint(low, high)
        )
        if role == "exec":
            pool = [
                d
                for name in ("finance", "sales", "legal", "hr")
                for d in self.by_team[name]
                if d.sensitivity in ("internal", "confidential")
            ]
            usual += rng.sample(pool, min(len(pool), rng.randint(8, 12)))
        elif role == "analyst":
            pool = [
                d
                for name in ("sales", "marketing", "support", "eng-product")
                for d in self.by_team[name]
                if d.sensitivity in ("internal", "confidential")
            ]
            usual += rng.sample(pool, min(len(pool), rng.randint(10, 15)))
        return Profile(team, favorites, weights, usual)

    def new_person(
        self, rng: random.Random, names: list[str], team: str, *, join_day: int = 0
    ) -> Person:
        role = {"security-audit": "auditor", "exec": "exec", "data-science": "analyst"}.get(
            team, "employee"
        )
        person = Person(
            principal=names.pop(),
            team=team,
            role=role,
            rate=self.params.reads_per_day_median
            * rng.lognormvariate(0.0, self.params.reads_per_day_sigma),
            start_hour=min(11.0, max(7.0, rng.gauss(9.0, 0.7))),
            day_hours=min(10.5, max(6.0, rng.gauss(8.5, 0.7))),
            late=rng.random() < self.params.late_worker_share,
            weekend=rng.random() < self.params.weekend_worker_share,
            join_day=join_day,
        )
        person.profiles.append(self.profile(rng, team, role))
        return person

    def build_people(self, history_days: int) -> list[str]:
        rng = self.rng("people")
        names = [f"{first}.{last}" for first in FIRST_NAMES for last in LAST_NAMES]
        rng.shuffle(names)
        for team in self.params.teams:
            for _ in range(max(2, round(team.size * self.scale))):
                self.people.append(self.new_person(rng, names, team.name))
        ordinary = [p for p in self.people if p.role == "employee"]
        for person in rng.sample(ordinary, max(1, round(len(ordinary) * self.params.mover_share))):
            person.move_day = rng.randint(3, max(3, history_days - 5))
            person.move_team = rng.choice(
                [t for t in self.team_names if t not in (person.team, "security-audit", "exec")]
            )
            person.profiles.append(self.profile(rng, person.move_team, "employee"))
        for person in rng.sample(
            self.people, max(1, round(len(self.people) * self.params.joiner_share))
        ):
            if person.move_day is None:
                person.join_day = rng.randint(2, max(2, history_days - 5))
        return names  # the unused names, for test-period joiners

    # --- normal behaviour ----------------------------------------------------------------

    def human_day(
        self, rng: random.Random, person: Person, day: int, *, volume: float = 1.0
    ) -> None:
        params = self.params
        if day < person.join_day:
            return
        # Nobody is off sick on their first day, so a joiner is seen from the day they join.
        if day != person.join_day and rng.random() < params.absence_rate:
            return
        weekend = not self.is_workday(day)
        if weekend and not (person.weekend and rng.random() < 0.3):
            return
        team = person.team_on(day)
        profile = person.profiles[-1] if team != person.team else person.profiles[0]
        count = max(1, int(rng.lognormvariate(math.log(person.rate * volume), 0.35)))
        if weekend:
            count = max(1, count // 4)
        start = person.start_hour + rng.gauss(0.0, 0.4)
        length = max(2.0, person.day_hours + rng.gauss(0.0, 0.5))
        base = self.day_start(day)
        own = self.by_team[team]
        kinds = ("favorite", "own", "cross", "public", "denied", "novel")
        for _ in range(count):
            if person.late and rng.random() < params.late_read_share:
                hour = rng.uniform(19.0, 23.0)
            else:
                hour = start + rng.random() * length
            ts = base + hour * HOUR
            kind = rng.choices(kinds, weights=params.read_mix)[0]
            outcome = "allowed"
            if kind == "favorite":
                dataset = rng.choices(profile.favorites, weights=profile.favorite_weights)[0]
            elif kind == "own":
                dataset = rng.choice(own)
            elif kind == "cross" and profile.usual_cross:
                dataset = rng.choice(profile.usual_cross)
            elif kind == "denied":
                dataset = rng.choice(self.other_team_datasets(team, ("restricted",)) or own)
                outcome = "denied" if dataset.owner != team else "allowed"
            elif kind == "novel":
                dataset = rng.choice(self.other_team_datasets(team, ("public", "internal")))
            else:
                dataset = rng.choice(self.public_on(day))
            self.emit(rng, ts, person.principal, "human", team, dataset, outcome=outcome)
        if person.role == "auditor" and not weekend:
            self.audit_sweep(rng, person.principal, team, base + start * HOUR, length)

    def audit_sweep(
        self, rng: random.Random, principal: str, team: str, start: float, length: float
    ) -> None:
        """security-audit reviews access across every team, sensitive data first."""
        pool = self.other_team_datasets(team, ("internal", "confidential", "restricted"))
        weights = [
            {"internal": 1.0, "confidential": 2.0, "restricted": 3.0}[d.sensitivity] for d in pool
        ]
        low, high = self.params.audit_daily_datasets
        wanted = min(len(pool), rng.randint(low, high))
        chosen: dict[str, Dataset] = {}
        while len(chosen) < wanted:
            dataset = rng.choices(pool, weights=weights)[0]
            chosen[dataset.resource] = dataset
        for dataset in chosen.values():
            self.emit(rng, start + rng.random() * length * HOUR, principal, "human", team, dataset)

    def public_on(self, day: int) -> list[Dataset]:
        """Company-wide public datasets people open on ``day``: an all-hands deck only in
        the week after its meeting, the handbook and wiki always."""
        return [
            d
            for d in self.by_team[COMPANY]
            if d.created_day == 0 or 1 <= day - d.created_day < self.params.deck_days
        ]

    def services_run(self) -> None:
        params = self.params
        rng = self.rng("services")
        for team in self.team_names:
            own = self.by_team[team]
            subset = rng.sample(own, max(2, round(len(own) * params.etl_subset_share)))
            minute = rng.uniform(0.0, 50.0)
            for hour in range(self.days * 24):
                start = self.t0 + hour * HOUR + (minute + rng.uniform(0.0, 2.0)) * MINUTE
                for offset, dataset in enumerate(subset):
                    self.emit(
                        rng,
                        start + offset * rng.uniform(5.0, 40.0),
                        f"svc-etl-{team}",
                        "service",
                        team,
                        dataset,
                    )
        for spec in params.services:
            own = self.by_team[spec.team]
            subset = rng.sample(own, min(len(own), spec.reads))
            runs = int(self.days * 24 * 60 / spec.every_minutes)
            phase = rng.uniform(0.0, spec.every_minutes)
            for run in range(runs):
                start = self.t0 + (run * spec.every_minutes + phase) * MINUTE
                for dataset in subset:
                    self.emit(
                        rng,
                        start + rng.uniform(0.0, 60.0),
                        spec.principal,
                        "service",
                        spec.owner,
                        dataset,
                    )
        self.backup(rng)
        self.indexer(rng)
        self.reporting(rng)

    def backup(self, rng: random.Random) -> None:
        """Nightly full backup: every dataset, 01:00-03:00."""
        low, high = self.params.backup_hours
        for day in range(self.days):
            existing = [d for d in self.datasets if d.exists_before(day)]
            rng.shuffle(existing)
            span = (high - low) * HOUR
            for index, dataset in enumerate(existing):
                ts = (
                    self.day_start(day) + low * HOUR + span * (index + rng.random()) / len(existing)
                )
                self.emit(rng, ts, "svc-backup", "service", "it-ops", dataset, full=True)

    def indexer(self, rng: random.Random) -> None:
        every = self.params.indexer_every_hours
        for run in range(self.days * 24 // every):
            day = run * every // 24
            pool = [
                d
                for d in self.datasets
                if d.exists_before(day) and d.sensitivity in ("public", "internal")
            ]
            count = max(1, round(len(pool) * self.params.indexer_share))
            start = self.t0 + run * every * HOUR + 10 * MINUTE
            for dataset in rng.sample(pool, count):
                self.emit(
                    rng,
                    start + rng.uniform(0.0, 30.0 * MINUTE),
                    "svc-search-indexer",
                    "service",
                    "eng-platform",
                    dataset,
                )

    def reporting(self, rng: random.Random) -> None:
        pool = [
            d
            for name in ("finance", "sales", "marketing", "support", "eng-product")
            for d in self.by_team[name]
            if d.sensitivity in ("internal", "confidential")
        ]
        subset = rng.sample(pool, min(len(pool), self.params.reporting_datasets))
        for day in range(self.days):
            start = self.day_start(day) + self.params.reporting_hour * HOUR
            for dataset in subset:
                self.emit(
                    rng,
                    start + rng.uniform(0.0, 20.0 * MINUTE),
                    "svc-reporting",
                    "service",
                    "data-science",
                    dataset,
                )

    def all_hands(self, rng: random.Random, day: int) -> Dataset:
        """A new public deck, read by nearly everyone in the hour after the meeting."""
        date = datetime.fromtimestamp(self.day_start(day), UTC).strftime("%Y-%m-%d")
        deck = self._dataset(rng, f"{COMPANY}.all-hands-{date}", COMPANY, "public", day)
        self.by_team[COMPANY].append(deck)
        start = self.day_start(day) + self.params.all_hands_hour * HOUR
        present = [p for p in self.people if p.join_day <= day]
        share = rng.uniform(*self.params.all_hands_share)
        for person in rng.sample(present, round(len(present) * share)):
            ts = start + min(HOUR, rng.expovariate(1.0 / (15 * MINUTE)))
            self.emit(rng, ts, person.principal, "human", person.team_on(day), deck)
        return deck


@dataclass(slots=True)
class _Labels:
    incidents: list[dict[str, Any]] = field(default_factory=list)
    benign: list[dict[str, Any]] = field(default_factory=list)

    def incident(
        self, kind_type: str, kind: str, entity: str, times: list[float], description: str
    ) -> None:
        self.incidents.append(
            {
                "id": f"INC-{len(self.incidents) + 1}",
                "type": kind_type,
                "kind": kind,
                "entity": entity,
                "start": rfc3339(math.floor(min(times)), "seconds"),
                "end": rfc3339(math.ceil(max(times)), "seconds"),
                "description": description,
            }
        )

    def look_alike(self, kind_type: str, kind: str, entity: str, description: str) -> None:
        self.benign.append(
            {
                "id": f"BEN-{len(self.benign) + 1}",
                "type": kind_type,
                "kind": kind,
                "entity": entity,
                "description": description,
            }
        )


def _incidents(world: _World, names: list[str], history_days: int, test_days: int) -> _Labels:
    """Inject the labelled incidents and benign look-alikes into the test period."""
    params = world.params
    rng = world.rng("incidents")
    labels = _Labels()
    days = list(range(history_days, history_days + test_days))
    workdays = [d for d in days if world.is_workday(d)] or days
    present = [p for p in world.people if p.join_day <= history_days and p.move_day is None]

    # (a) exposure: a restricted hr dataset becomes readable by all and the link goes round.
    day = rng.choice(workdays)
    exposed = rng.choice([d for d in world.by_team["hr"] if d.resource.startswith("hr.employee-")])
    start = world.day_start(day) + rng.uniform(10.0, 14.5) * HOUR
    minutes = rng.randint(*params.exposure_minutes)
    audience = [p for p in present if p.team != "hr"]
    wanted = min(rng.randint(*params.exposure_readers), round(0.8 * len(audience)))
    times = []
    readers = rng.sample(audience, wanted)
    for index, person in enumerate(readers):
        # Front-loaded: most people click in the first minutes after the link is shared.
        ts = start if index == 0 else start + minutes * MINUTE * rng.betavariate(1.0, 2.5)
        for repeat in range(rng.choice((1, 1, 2, 3))):
            at = ts + repeat * rng.uniform(5.0, 300.0)
            world.emit(rng, at, person.principal, "human", person.team, exposed)
            times.append(at)
    labels.incident(
        "exposure",
        "broad_audience",
        exposed.resource,
        times,
        f"restricted {exposed.resource} made readable by all; {wanted} employees from "
        f"{len({p.team for p in readers})} teams open it within {minutes} min",
    )

    # (b) insider broad read: 40-80 sensitive datasets of other teams in ~45 minutes.
    suspects = [
        p
        for p in present
        if p.team in ("sales", "support", "marketing", "eng-product", "eng-platform", "it-ops")
    ]
    insider, slow = rng.sample(suspects, 2)
    day = rng.choice(workdays)
    start = world.day_start(day) + rng.uniform(9.5, 15.5) * HOUR
    pool = world.other_team_datasets(insider.team, ("confidential", "restricted"))
    chosen = rng.sample(pool, min(len(pool), rng.randint(*params.insider_datasets)))
    times = sorted(start + rng.random() * params.insider_minutes * MINUTE for _ in chosen)
    times[0] = start
    for ts, dataset in zip(times, chosen, strict=True):
        denied = rng.random() < params.insider_denied_share
        world.emit(
            rng,
            ts,
            insider.principal,
            "human",
            insider.team,
            dataset,
            outcome="denied" if denied else "allowed",
        )
    labels.incident(
        "insider_broad_read",
        "broad_reader",
        insider.principal,
        times,
        f"{insider.principal} ({insider.team}) reads {len(chosen)} confidential/restricted "
        f"datasets of {len({d.owner for d in chosen})} other teams in "
        f"{params.insider_minutes:.0f} min",
    )

    # (c) a stolen ETL credential scrapes hundreds of datasets across teams at night.
    team = rng.choice(world.team_names)
    service = f"svc-etl-{team}"
    day = rng.choice(days)
    start = world.day_start(day) + rng.uniform(0.5, 4.0) * HOUR
    minutes = rng.randint(*params.scraping_minutes)
    pool = [d for d in world.datasets if d.owner != team and d.exists_before(day)]
    chosen = rng.sample(pool, min(round(0.9 * len(pool)), rng.randint(*params.scraping_datasets)))
    times = sorted(start + rng.random() * minutes * MINUTE for _ in chosen)
    times[0] = start
    for ts, dataset in zip(times, chosen, strict=True):
        world.emit(rng, ts, service, "service", team, dataset)
    labels.incident(
        "service_scraping",
        "broad_reader",
        service,
        times,
        f"stolen credential of {service} reads {len(chosen)} datasets of "
        f"{len({d.owner for d in chosen})} teams in {minutes} min at night",
    )

    # (d) slow and low: a few extra sensitive datasets of other teams per hour, all day.
    day = rng.choice(workdays)
    start = world.day_start(day) + rng.uniform(9.0, 9.5) * HOUR
    pool = world.other_team_datasets(slow.team, ("confidential", "restricted"))
    rng.shuffle(pool)
    times = []
    for hour in range(params.slow_hours):
        for _ in range(rng.randint(*params.slow_per_hour)):
            if not pool:
                break
            ts = start + (hour + rng.random()) * HOUR
            world.emit(rng, ts, slow.principal, "human", slow.team, pool.pop())
            times.append(ts)
    labels.incident(
        "slow_collection",
        "broad_reader",
        slow.principal,
        times,
        f"{slow.principal} ({slow.team}) reads {len(times)} extra confidential/restricted "
        f"datasets of other teams, {params.slow_per_hour[0]}-{params.slow_per_hour[1]} per "
        f"hour over {params.slow_hours} h",
    )

    # Benign look-alikes.
    deck = world.all_hands(rng, rng.choice(workdays))
    labels.look_alike(
        "all_hands",
        "broad_audience",
        deck.resource,
        "public all-hands deck read by nearly everyone within an hour",
    )
    labels.look_alike(
        "nightly_backup",
        "broad_reader",
        "svc-backup",
        "nightly backup reads every dataset 01:00-03:00, in history too",
    )

    day = rng.choice(workdays)
    auditor = world.new_person(rng, names, "security-audit", join_day=day)
    world.people.append(auditor)
    labels.look_alike(
        "new_auditor",
        "broad_reader",
        auditor.principal,
        "joins security-audit and, like every auditor, reads across teams",
    )

    day = rng.choice(workdays)
    team = rng.choice(("eng-product", "sales", "support", "marketing"))
    newcomer = world.new_person(rng, names, team, join_day=day)
    newcomer.profiles[0].favorites = world.by_team[team]  # onboarding: browses the whole team
    newcomer.profiles[0].favorite_weights = [1.0] * len(world.by_team[team])
    world.people.append(newcomer)
    low, high = params.newcomer_datasets
    own = world.by_team[team]
    start = world.day_start(day) + 10.0 * HOUR
    for dataset in rng.sample(own, min(len(own), rng.randint(low, high))):
        world.emit(rng, start + rng.random() * 6 * HOUR, newcomer.principal, "human", team, dataset)
    labels.look_alike(
        "newcomer",
        "broad_reader",
        newcomer.principal,
        f"joins {team} and reads its own team's data from day one",
    )

    day = rng.choice(workdays)
    finance = [p for p in world.people if p.team_on(day) == "finance" and p.join_day <= day]
    sensitive = [d for d in world.by_team["finance"] if d.sensitivity != "public"]
    close = rng.sample(
        sensitive, min(len(sensitive), rng.randint(*params.quarter_end_close_datasets))
    )
    start = world.day_start(day) + 9.0 * HOUR
    for person in finance:
        world.human_day(rng, person, day, volume=params.quarter_end_volume - 1.0)
        for dataset in rng.sample(close, max(1, round(len(close) * rng.uniform(0.6, 0.9)))):
            world.emit(
                rng, start + rng.random() * 8 * HOUR, person.principal, "human", "finance", dataset
            )
        labels.look_alike(
            "quarter_end",
            "broad_reader",
            person.principal,
            "quarter-end close: finance reads more of its own data",
        )
    for dataset in close:
        labels.look_alike(
            "quarter_end",
            "broad_audience",
            dataset.resource,
            "quarter-end close: most of finance reads this dataset",
        )
    return labels


def _write_events(path: Path, rows: list[Row]) -> None:
    with path.open("wb") as out:
        for row in rows:
            ts, principal, ptype, group, resource, rgroup, sensitivity, records, size, outcome = row
            event = AccessEvent(
                ts=ts,
                principal=principal,
                resource=resource,
                principal_type=ptype,
                principal_group=group,
                resource_group=rgroup,
                sensitivity=sensitivity,
                records=records,
                bytes=size,
                outcome=outcome,
                source=SOURCE,
            )
            out.write(orjson.dumps(event.to_json()))
            out.write(b"\n")


def _company(world: _World) -> dict[str, Any]:
    def day_text(day: int) -> str:
        return rfc3339(world.day_start(day), "seconds")[:10]

    people = []
    for person in world.people:
        entry: dict[str, Any] = {
            "principal": person.principal,
            "team": person.team,
            "role": person.role,
        }
        if person.join_day:
            entry["joined"] = day_text(person.join_day)
        if person.move_day is not None:
            entry["moved"] = {"on": day_text(person.move_day), "to": person.move_team}
        if person.late:
            entry["late_worker"] = True
        people.append(entry)
    services = [
        {
            "principal": f"svc-etl-{team}",
            "owner": team,
            "schedule": "hourly ETL over its own team's datasets",
        }
        for team in world.team_names
    ]
    services += [
        {
            "principal": spec.principal,
            "owner": spec.owner,
            "schedule": f"every {spec.every_minutes} min, {spec.reads} {spec.team} datasets",
        }
        for spec in world.params.services
    ]
    services += [
        {
            "principal": "svc-backup",
            "owner": "it-ops",
            "schedule": "nightly 01:00-03:00, every dataset",
        },
        {
            "principal": "svc-search-indexer",
            "owner": "eng-platform",
            "schedule": f"every {world.params.indexer_every_hours} h, public/internal datasets",
        },
        {
            "principal": "svc-reporting",
            "owner": "data-science",
            "schedule": "daily 06:00, business datasets",
        },
    ]
    return {
        "schema_version": LABELS_SCHEMA_VERSION,
        "teams": [
            {
                "name": name,
                "size": sum(1 for p in world.people if p.team == name),
                "datasets": len(world.by_team[name]),
            }
            for name in world.team_names
        ],
        "people": people,
        "services": services,
        "datasets": [
            {"resource": d.resource, "owner": d.owner, "sensitivity": d.sensitivity, "rows": d.rows}
            for d in world.datasets
        ],
    }


def simulate(
    out_dir: Path,
    *,
    seed: int = 7,
    scale: float = 1.0,
    history_days: int = 21,
    test_days: int = 3,
    start: str = "2026-03-02",
    params: SimulationParams | None = None,
) -> SimulationSummary:
    """Write history.jsonl, test.jsonl, labels.json and company.json into ``out_dir``."""
    if not 0.05 <= scale <= 20.0:
        raise SchemaError("bad_value", f"scale must be within 0.05..20, got {scale}")
    if history_days < 1 or test_days < 1:
        raise SchemaError("bad_value", "history_days and test_days must be at least 1")
    try:
        t0 = datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise SchemaError("bad_timestamp", f"start {start!r:.40} is not a date") from None
    params = params or SimulationParams()
    days = history_days + test_days
    world = _World(params, seed, scale, days, t0)
    world.build_datasets()
    names = world.build_people(history_days)
    rng = world.rng("history-all-hands")
    for day in range(1, history_days):
        if day % params.all_hands_every_days == 3 and world.is_workday(day):
            world.all_hands(rng, day)
    labels = _incidents(world, names, history_days, test_days)
    rng = world.rng("humans")
    for person in world.people:
        for day in range(days):
            world.human_day(rng, person, day)
    world.services_run()

    # Jittered runs and late workers of the last day can spill past midnight: cut them off so
    # the test period ends where the labels say.
    test_end = world.day_start(days)
    world.rows = sorted(row for row in world.rows if row[0] < test_end)
    test_start = world.day_start(history_days)
    split = next((i for i, row in enumerate(world.rows) if row[0] >= test_start), len(world.rows))
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_events(out_dir / "history.jsonl", world.rows[:split])
    _write_events(out_dir / "test.jsonl", world.rows[split:])
    document = {
        "schema_version": LABELS_SCHEMA_VERSION,
        "seed": seed,
        "incidents": labels.incidents,
        "benign": labels.benign,
        "test_start": rfc3339(test_start, "seconds"),
        "test_end": rfc3339(test_end, "seconds"),
    }
    options = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    (out_dir / "labels.json").write_bytes(orjson.dumps(document, option=options))
    (out_dir / "company.json").write_bytes(orjson.dumps(_company(world), option=options))
    return SimulationSummary(
        out_dir=str(out_dir),
        seed=seed,
        scale=scale,
        teams=len(world.team_names),
        people=len(world.people),
        services=len(world.team_names) + len(params.services) + 3,
        datasets=len(world.datasets),
        history_events=split,
        test_events=len(world.rows) - split,
        incidents=len(labels.incidents),
        benign=len(labels.benign),
        test_start=rfc3339(test_start, "seconds"),
        test_end=rfc3339(test_end, "seconds"),
    )
