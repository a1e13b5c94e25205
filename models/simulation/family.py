"""The family of companies: one seed draws one organisation's parameters from wide ranges.

Every range here is wide on purpose: the detector is judged on organisations nobody tuned
it for, so the family spans small start-ups and multi-office companies, quiet and busy
readers, tidy and sloppy sensitivity labelling. Nothing here was chosen to make any
detector look good; the ranges describe organisations, not detectors.

``draw_company(seed)`` is deterministic (string-seeded ``random.Random``) and returns a
frozen, JSON-able ``CompanyParams`` that ``simulate`` records in company.json.

>>> draw_company(3) == draw_company(3)
True
>>> draw_company(3) == draw_company(4)
False
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class Function:
    """What a kind of team does: dataset nouns and the usual sensitivity of its data."""

    name: str
    nouns: tuple[str, ...]
    # Weights of public, internal, confidential, restricted among its datasets.
    sensitivity_mix: tuple[float, float, float, float]
    on_call: bool = False  # runs an on-call rotation


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function(
            "people",
            ("employee-records", "employee-salaries", "employee-reviews", "employee-medical",
             "employee-monitoring", "recruiting", "benefits", "org-chart", "leave-requests",
             "payroll-runs", "training-records", "contracts"),
            (0.0, 0.25, 0.35, 0.4),
        ),
        Function(
            "finance",
            ("ledger", "invoices", "forecasts", "budgets", "expenses", "tax-filings", "revenue",
             "quarter-close", "payables", "receivables", "audit-trail"),
            (0.0, 0.2, 0.6, 0.2),
        ),
        Function(
            "legal",
            ("contracts", "litigation", "ip-portfolio", "nda-register", "compliance",
             "board-minutes"),
            (0.0, 0.2, 0.5, 0.3),
        ),
        Function(
            "sales",
            ("accounts", "pipeline", "quotes", "commissions", "territories", "leads", "renewals",
             "pricing"),
            (0.05, 0.45, 0.45, 0.05),
        ),
        Function(
            "marketing",
            ("campaigns", "web-analytics", "brand-assets", "events", "newsletter-lists",
             "social-metrics", "press-kit"),
            (0.2, 0.55, 0.25, 0.0),
        ),
        Function(
            "support",
            ("tickets", "customer-contacts", "sla-reports", "knowledge-base", "escalations",
             "call-recordings"),
            (0.05, 0.55, 0.35, 0.05),
        ),
        Function(
            "engineering",
            ("service-logs", "deploy-history", "infra-inventory", "metrics-archive", "build-cache",
             "postmortems", "feature-flags", "experiments", "api-usage", "bug-reports",
             "secrets-audit"),
            (0.05, 0.7, 0.2, 0.05),
            on_call=True,
        ),
        Function(
            "data",
            ("training-sets", "model-outputs", "churn-scores", "segments", "feature-tables",
             "warehouse"),
            (0.0, 0.55, 0.4, 0.05),
        ),
        Function(
            "security",
            ("access-reviews", "findings", "siem-alerts", "pentest-reports", "risk-register"),
            (0.0, 0.2, 0.5, 0.3),
            on_call=True,
        ),
        Function(
            "it",
            ("asset-inventory", "helpdesk", "laptop-fleet", "licenses", "network-config",
             "backup-catalog"),
            (0.05, 0.6, 0.3, 0.05),
            on_call=True,
        ),
        Function(
            "exec",
            ("board-decks", "strategy", "m-and-a", "comp-plans", "investor-updates"),
            (0.0, 0.1, 0.5, 0.4),
        ),
        Function(
            "operations",
            ("inventory", "shipments", "suppliers", "logistics", "orders", "quality-checks"),
            (0.05, 0.6, 0.3, 0.05),
        ),
        Function(
            "research",
            ("lab-notes", "trials", "patents", "prototypes", "study-data"),
            (0.0, 0.4, 0.4, 0.2),
        ),
        Function(
            "product",
            ("roadmap", "specs", "user-research", "release-notes", "pricing-plans"),
            (0.1, 0.6, 0.25, 0.05),
        ),
    )
}
# Functions any team may have; people (hr) is always there, exec and security often.
COMMON_FUNCTIONS = ("finance", "legal", "sales", "marketing", "support", "engineering", "data",
                    "it", "operations", "research", "product")
DIVISIONS = ("retail", "cloud", "health", "consumer", "enterprise", "labs", "payments", "media",
             "industrial", "core", "growth", "platform")


@dataclass(frozen=True, slots=True)
class Office:
    """A site: UTC offset (hours) and which weekdays (0 = Monday) are its weekend."""

    name: str
    utc_offset: float
    weekend: tuple[int, ...]


OFFICES = (
    Office("london", 0.0, (5, 6)),
    Office("berlin", 1.0, (5, 6)),
    Office("warsaw", 1.0, (5, 6)),
    Office("cairo", 2.0, (4, 5)),
    Office("tel-aviv", 2.0, (4, 5)),
    Office("dubai", 4.0, (5, 6)),
    Office("riyadh", 3.0, (4, 5)),
    Office("bangalore", 5.5, (6,)),
    Office("singapore", 8.0, (5, 6)),
    Office("tokyo", 9.0, (5, 6)),
    Office("sydney", 10.0, (5, 6)),
    Office("sao-paulo", -3.0, (5, 6)),
    Office("new-york", -5.0, (5, 6)),
    Office("chicago", -6.0, (5, 6)),
    Office("san-francisco", -8.0, (5, 6)),
)


@dataclass(frozen=True, slots=True)
class TeamParams:
    name: str
    division: str
    function: str
    office: str
    size: int  # head count at scale 1.0
    datasets: int  # at scale 1.0
    sensitivity_mix: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class ServiceMix:
    """How many services of each archetype, and their knobs' ranges for this company."""

    etl_team_share: float  # teams with an hourly ETL job over their own data
    etl_subset_share: float  # of its team's datasets an ETL run reads
    bi: int  # steady broad BI/dashboard services
    bi_pool_share: float  # of the business datasets a BI service refreshes over the day
    backups: int  # nightly backup jobs, each over a slice of the teams
    crawlers: int  # weekly catalogue crawlers (seen only a few times in history)
    indexers: int
    syncs: int  # small frequent jobs over a few datasets of one team
    reports: int  # daily reports over tens of datasets


@dataclass(frozen=True, slots=True)
class CompanyParams:
    """One drawn organisation. Counts are at scale 1.0; ``simulate`` applies the scale."""

    seed: int
    offices: tuple[Office, ...]
    teams: tuple[TeamParams, ...]
    history_days: int
    test_days: int
    start: str  # first day of history, YYYY-MM-DD (UTC midnight)
    reads_per_day_median: float
    reads_per_day_sigma: float
    # Shares of a person's reads: favourite, other own-team, division, usual cross-team,
    # company public, project, denied attempt, novel cross-team.
    read_mix: tuple[float, float, float, float, float, float, float, float]
    favourites: tuple[int, int]
    usual_cross: tuple[int, int]
    start_hour: float  # mean local start of the working day
    day_hours: float
    absence_rate: float
    late_worker_share: float
    weekend_worker_share: float
    remote_share: float  # people working from another office than their team's
    unlabelled_share: float  # datasets whose events carry no sensitivity
    manager_share: float  # teams with a manager who reads the team's data broadly
    auditors: int  # security auditors sweeping every team (0 if no security team)
    audit_daily: tuple[int, int]
    on_call_page_rate: float  # chance an on-call engineer is paged on a given night
    projects: int  # cross-team projects sharing datasets
    company_wide_every_days: int  # all-hands decks / company-wide announcements in history
    mover_share: float
    joiner_share: float
    services: ServiceMix
    # Share of permission changes the logs record as grant events (0: the company's logs
    # carry reads only), and ordinary changes per team and week (a colleague of another
    # team given access, a member added to the team's group).
    grants_logged: float = 0.0
    grants_per_team_week: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _mix(rng: random.Random, base: tuple[float, ...]) -> tuple[float, float, float, float]:
    # Per-company noise on a function's usual sensitivities: labelling habits differ.
    noisy = [w * rng.lognormvariate(0.0, 0.5) for w in base]
    total = sum(noisy)
    a, b, c, d = (round(w / total, 4) for w in noisy)
    return a, b, c, d


def draw_company(seed: int) -> CompanyParams:
    """Draw one company of the family from ``seed``."""
    rng = random.Random(f"reachwatch-family:{seed}")
    offices = tuple(rng.sample(OFFICES, rng.choice((1, 1, 2, 2, 3, 4))))
    divisions = rng.sample(DIVISIONS, rng.randint(1, 5))
    team_median = rng.uniform(5.0, 28.0)
    per_person = rng.uniform(0.4, 2.5)
    functions = ["people"]
    if rng.random() < 0.7:
        functions.append("exec")
    if rng.random() < 0.65:
        functions.append("security")
    teams_wanted = rng.randint(len(divisions) + 4, max(8, len(divisions) * 5))
    while len(functions) < teams_wanted:
        functions.append(rng.choice(COMMON_FUNCTIONS))
    teams = []
    names: set[str] = set()
    for index, function in enumerate(functions):
        # Company-wide functions sit in the first division; the rest spread over all.
        division = divisions[0] if index < 3 else rng.choice(divisions)
        base = function if len(divisions) == 1 or index < 3 else f"{division}-{function}"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.add(name)
        size = max(2, min(120, round(rng.lognormvariate(0.0, 0.6) * team_median)))
        datasets = max(3, round(size * per_person * rng.lognormvariate(0.0, 0.3)))
        office = offices[0] if index < 3 or rng.random() < 0.4 else rng.choice(offices)
        teams.append(
            TeamParams(name, division, function, office.name, size, datasets,
                       _mix(rng, FUNCTIONS[function].sensitivity_mix))
        )
    # Big companies are cut to a few hundred principals so generation stays fast.
    total = sum(t.size for t in teams)
    if total > 650:
        factor = 650 / total
        teams = [
            TeamParams(t.name, t.division, t.function, t.office, max(2, round(t.size * factor)),
                       max(3, round(t.datasets * factor)), t.sensitivity_mix)
            for t in teams
        ]
    read_mix = (
        rng.uniform(0.45, 0.8),
        rng.uniform(0.05, 0.2),
        rng.uniform(0.02, 0.12),
        rng.uniform(0.03, 0.15),
        rng.uniform(0.02, 0.1),
        rng.uniform(0.02, 0.1),
        rng.uniform(0.002, 0.02),
        rng.uniform(0.002, 0.02),
    )
    start = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=rng.randint(0, 300))
    fav_low = rng.randint(2, 8)
    cross_low = rng.randint(0, 4)
    services = ServiceMix(
        etl_team_share=round(rng.uniform(0.2, 1.0), 3),
        etl_subset_share=round(rng.uniform(0.1, 0.5), 3),
        bi=rng.choice((0, 1, 1, 2, 3)),
        bi_pool_share=round(rng.uniform(0.2, 0.7), 3),
        backups=rng.randint(1, 3),
        crawlers=rng.choice((0, 1, 1, 2)),
        indexers=rng.randint(0, 2),
        syncs=rng.randint(2, 12),
        reports=rng.randint(0, 3),
    )
    has_security = "security" in functions
    # Drawn apart, so companies drawn before grants existed keep every other parameter.
    grant_rng = random.Random(f"reachwatch-family:{seed}:grants")
    grants_logged = 0.0 if grant_rng.random() < 0.3 else round(grant_rng.uniform(0.5, 1.0), 3)
    grants_per_team_week = round(grant_rng.uniform(0.3, 4.0), 3)
    return CompanyParams(
        seed=seed,
        offices=offices,
        teams=tuple(teams),
        history_days=rng.randint(14, 21),
        test_days=rng.randint(2, 3),
        start=start.strftime("%Y-%m-%d"),
        reads_per_day_median=round(rng.uniform(8.0, 60.0), 2),
        reads_per_day_sigma=round(rng.uniform(0.25, 0.8), 3),
        read_mix=tuple(round(w, 4) for w in read_mix),  # type: ignore[arg-type]
        favourites=(fav_low, fav_low + rng.randint(2, 10)),
        usual_cross=(cross_low, cross_low + rng.randint(1, 6)),
        start_hour=round(rng.uniform(7.5, 10.0), 2),
        day_hours=round(rng.uniform(7.0, 10.0), 2),
        absence_rate=round(rng.uniform(0.02, 0.08), 3),
        late_worker_share=round(rng.uniform(0.0, 0.25), 3),
        weekend_worker_share=round(rng.uniform(0.0, 0.12), 3),
        remote_share=round(rng.uniform(0.0, 0.25), 3) if len(offices) > 1 else 0.0,
        unlabelled_share=round(rng.choice((0.0, rng.uniform(0.0, 0.35))), 3),
        manager_share=round(rng.uniform(0.3, 1.0), 3),
        auditors=rng.randint(1, 5) if has_security else 0,
        audit_daily=(rng.randint(5, 30), rng.randint(30, 70)),
        on_call_page_rate=round(rng.uniform(0.05, 0.35), 3),
        projects=rng.randint(0, 6),
        company_wide_every_days=rng.choice((7, 14, 14, 28)),
        mover_share=round(rng.uniform(0.0, 0.04), 3),
        joiner_share=round(rng.uniform(0.0, 0.04), 3),
        services=services,
        grants_logged=grants_logged,
        grants_per_team_week=grants_per_team_week,
    )
