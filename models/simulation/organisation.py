"""The organisation a drawn ``CompanyParams`` describes: offices, teams, people, datasets.

Built once per company, before any event: who belongs where, which datasets each team
owns (and how sensitive they are, and whether that is labelled), which projects share
datasets across teams, and what each person habitually reads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from reachwatch.models.simulation.family import FUNCTIONS, CompanyParams, Office

COMPANY = "company"  # resource_group of company-wide datasets
MIN_PEOPLE = 40
SENSITIVITIES = ("public", "internal", "confidential", "restricted")
SUFFIXES = ("", "-eu", "-us", "-apac", "-archive", "-v2", "-daily", "-raw", "-summary",
            "-staging", "-legacy", "-2025")
FIRST_NAMES = (
    "ana", "ben", "chen", "dana", "eli", "fatima", "gus", "hana", "ivan", "jo", "kofi", "lea",
    "mia", "nils", "omar", "pia", "quinn", "raj", "sara", "tom", "uma", "vic", "wen", "xavi",
    "yara", "zoe", "amir", "bea", "carl", "dina", "emil", "femi", "gina", "hugo", "iris", "jan",
    "kim", "luis", "maya", "noah", "olga", "paul", "rosa", "sam", "tara", "ugo", "vera", "aiko",
)
LAST_NAMES = (
    "adams", "banda", "costa", "dubois", "evans", "fischer", "garcia", "haddad", "ito",
    "jensen", "kowalski", "lopez", "mensah", "novak", "okafor", "park", "quispe", "rossi",
    "silva", "tanaka", "ueda", "vargas", "weber", "xu", "yilmaz", "zhang", "berg", "moreau",
    "nguyen", "patel", "schmidt", "kaur", "murphy", "olsen", "reyes", "suzuki",
)


@dataclass(slots=True)
class Dataset:
    resource: str
    owner: str  # team name, or COMPANY
    sensitivity: str
    labelled: bool  # False: events carry no sensitivity (readers see the default)
    rows: int
    row_bytes: int
    created_day: int = 0

    def exists_before(self, day: int) -> bool:
        """Whether the dataset existed when ``day`` began (new ones appear during their day)."""
        return self.created_day == 0 or self.created_day < day


@dataclass(slots=True)
class Team:
    name: str
    division: str
    function: str
    office: Office
    datasets: list[Dataset] = field(default_factory=list)


@dataclass(slots=True)
class Project:
    """A cross-team project: its members read its shared datasets like their own."""

    name: str
    teams: tuple[str, ...]
    datasets: list[Dataset]
    members: list[str] = field(default_factory=list)
    kickoff_day: int = 0


@dataclass(slots=True)
class Profile:
    """What a person reads while in one team."""

    team: str
    favourites: list[Dataset]
    weights: list[float]
    usual_cross: list[Dataset]


@dataclass(slots=True)
class Person:
    principal: str
    team: str
    office: Office
    role: str  # employee | manager | auditor | exec | analyst | on_call
    rate: float  # reads per working day
    start_hour: float  # local
    day_hours: float
    late: bool
    weekend_worker: bool
    address: str
    join_day: int = 0
    move_day: int | None = None
    move_team: str | None = None
    on_call: bool = False  # in a rotation
    profiles: list[Profile] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)

    def team_on(self, day: int) -> str:
        if self.move_day is not None and self.move_team is not None and day >= self.move_day:
            return self.move_team
        return self.team

    def profile_on(self, day: int) -> Profile:
        return self.profiles[-1] if self.team_on(day) != self.team else self.profiles[0]


class Organisation:
    """Teams, people, datasets and projects of one company, with the lookups generation needs."""

    def __init__(self, params: CompanyParams, scale: float, rng: random.Random) -> None:
        self.params = params
        # A scaled-down company keeps at least MIN_PEOPLE people (or all it has at scale
        # 1.0): below that "other teams" and "peers" stop meaning anything.
        total = sum(t.size for t in params.teams)
        self.scale = min(max(scale, MIN_PEOPLE / total), max(scale, 1.0))
        self.offices = {office.name: office for office in params.offices}
        self.teams: dict[str, Team] = {}
        self.datasets: list[Dataset] = []
        self.by_id: dict[str, Dataset] = {}
        self.people: list[Person] = []
        self.by_principal: dict[str, Person] = {}
        self.projects: list[Project] = []
        self.company_datasets: list[Dataset] = []
        self._cache: dict[tuple[str, tuple[str, ...]], list[Dataset]] = {}
        self._names = [f"{first}.{last}" for first in FIRST_NAMES for last in LAST_NAMES]
        rng.shuffle(self._names)
        self._build_datasets(rng)
        self._build_projects(rng)
        self._build_people(rng)

    # --- datasets -------------------------------------------------------------------------

    def new_dataset(
        self, rng: random.Random, name: str, owner: str, sensitivity: str, created_day: int = 0,
        *, labelled: bool | None = None,
    ) -> Dataset:
        if labelled is None:
            labelled = rng.random() >= self.params.unlabelled_share
        dataset = Dataset(
            resource=name, owner=owner, sensitivity=sensitivity, labelled=labelled,
            rows=max(10, int(rng.lognormvariate(10.0, 2.0))),
            row_bytes=max(40, int(rng.lognormvariate(6.0, 0.8))),
            created_day=created_day,
        )
        self.datasets.append(dataset)
        self.by_id[name] = dataset
        self._cache.clear()
        return dataset

    def _build_datasets(self, rng: random.Random) -> None:
        for spec in self.params.teams:
            team = Team(spec.name, spec.division, spec.function, self.offices[spec.office])
            self.teams[spec.name] = team
            nouns = FUNCTIONS[spec.function].nouns
            for index in range(max(3, round(spec.datasets * self.scale))):
                noun = nouns[index % len(nouns)]
                suffix = SUFFIXES[(index // len(nouns)) % len(SUFFIXES)]
                cycle = index // (len(nouns) * len(SUFFIXES))
                name = f"{spec.name}.{noun}{suffix}" + (f"-{cycle}" if cycle else "")
                if noun.startswith("employee-"):
                    sensitivity = "restricted"
                else:
                    sensitivity = rng.choices(SENSITIVITIES, weights=spec.sensitivity_mix)[0]
                team.datasets.append(self.new_dataset(rng, name, spec.name, sensitivity))
        for noun in ("handbook", "wiki", "holiday-calendar", "announcements", "it-status"):
            self.company_datasets.append(
                self.new_dataset(rng, f"{COMPANY}.{noun}", COMPANY, "public", labelled=True)
            )

    def other_team_datasets(self, team: str, sensitivities: tuple[str, ...]) -> list[Dataset]:
        """Other teams' datasets of these sensitivities (a fresh list; cached underneath)."""
        key = (team, sensitivities)
        if key not in self._cache:
            self._cache[key] = [
                d for name, other in self.teams.items() if name != team
                for d in other.datasets if d.sensitivity in sensitivities
            ]
        return list(self._cache[key])

    def division_datasets(self, team: str, sensitivities: tuple[str, ...]) -> list[Dataset]:
        division = self.teams[team].division
        return [
            d for name, other in self.teams.items()
            if name != team and other.division == division
            for d in other.datasets if d.sensitivity in sensitivities
        ]

    # --- projects -------------------------------------------------------------------------

    def _build_projects(self, rng: random.Random) -> None:
        names = list(self.teams)
        for index in range(self.params.projects if len(names) >= 2 else 0):
            teams = tuple(rng.sample(names, min(len(names), rng.randint(2, 4))))
            owner = self.teams[teams[0]]
            shared = [
                self.new_dataset(
                    rng, f"{owner.name}.project-{index + 1}-{noun}", owner.name,
                    rng.choices(SENSITIVITIES, weights=(0.05, 0.5, 0.35, 0.1))[0],
                )
                for noun in rng.sample(("plan", "data", "results", "notes", "tracker"),
                                       rng.randint(1, 4))
            ]
            owner.datasets.extend(shared)
            self.projects.append(Project(f"project-{index + 1}", teams, shared))

    # --- people ---------------------------------------------------------------------------

    def next_name(self) -> str:
        if self._names:
            return self._names.pop()
        return f"user{len(self.people):05d}"

    def new_person(
        self, rng: random.Random, team: str, *, role: str | None = None, join_day: int = 0
    ) -> Person:
        params = self.params
        home = self.teams[team].office
        office = home
        if len(self.offices) > 1 and rng.random() < params.remote_share:
            office = rng.choice(list(self.offices.values()))
        function = self.teams[team].function
        if role is None:
            role = {"exec": "exec", "data": "analyst"}.get(function, "employee")
        index = list(self.offices).index(office.name)
        person = Person(
            principal=self.next_name(),
            team=team,
            office=office,
            role=role,
            rate=params.reads_per_day_median * rng.lognormvariate(0.0, params.reads_per_day_sigma),
            start_hour=min(11.5, max(6.5, rng.gauss(params.start_hour, 0.7))),
            day_hours=min(11.0, max(5.5, rng.gauss(params.day_hours, 0.7))),
            late=rng.random() < params.late_worker_share,
            weekend_worker=rng.random() < params.weekend_worker_share,
            address=f"10.{index}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            join_day=join_day,
            on_call=FUNCTIONS[function].on_call and rng.random() < 0.6,
        )
        person.profiles.append(self.profile(rng, team, role))
        self.people.append(person)
        self.by_principal[person.principal] = person
        return person

    def profile(self, rng: random.Random, team: str, role: str) -> Profile:
        own = self.teams[team].datasets
        low, high = self.params.favourites
        if role == "manager":
            low, high = max(low, len(own) // 2), max(high, len(own))
        favourites = rng.sample(own, min(len(own), rng.randint(low, high)))
        # Zipf-like: a person's top dataset gets most of their attention.
        weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(favourites))]
        low, high = self.params.usual_cross
        pool = self.other_team_datasets(team, ("public", "internal"))
        usual = rng.sample(pool, min(len(pool), rng.randint(low, high)))
        wide = {"exec": (8, 16), "analyst": (6, 15), "manager": (2, 6)}.get(role)
        if wide:
            pool = self.other_team_datasets(team, ("internal", "confidential"))
            usual += rng.sample(pool, min(len(pool), rng.randint(*wide)))
        return Profile(team, favourites, weights, usual)

    def _build_people(self, rng: random.Random) -> None:
        params = self.params
        for spec in params.teams:
            size = max(2, round(spec.size * self.scale))
            manager = rng.random() < params.manager_share and size >= 4
            for index in range(size):
                role = "manager" if manager and index == 0 else None
                if spec.function == "security" and index < params.auditors:
                    role = "auditor"
                self.new_person(rng, spec.name, role=role)
        ordinary = [p for p in self.people if p.role == "employee"]
        history = params.history_days
        movers = rng.sample(ordinary, min(len(ordinary), round(len(ordinary) * params.mover_share)))
        for person in movers:
            targets = [t for t in self.teams if t != person.team]
            person.move_day = rng.randint(3, max(3, history - 5))
            person.move_team = rng.choice(targets)
            person.profiles.append(self.profile(rng, person.move_team, "employee"))
        joiners = rng.sample(self.people, round(len(self.people) * params.joiner_share))
        for person in joiners:
            if person.move_day is None:
                person.join_day = rng.randint(2, max(2, history - 5))
        for project in self.projects:
            for team in project.teams:
                members = [p for p in self.people if p.team == team]
                share = rng.uniform(0.3, 1.0)
                for person in rng.sample(members, max(1, round(len(members) * share))):
                    project.members.append(person.principal)
                    person.projects.append(project)

    def usual_audience(self, dataset: Dataset, day: int) -> set[str]:
        """Who reads ``dataset`` in the ordinary course: its team, project members, auditors."""
        audience = {p.principal for p in self.people if p.team_on(day) == dataset.owner
                    or p.team == dataset.owner or p.role == "auditor"}
        for project in self.projects:
            if dataset in project.datasets:
                audience.update(project.members)
        return audience
