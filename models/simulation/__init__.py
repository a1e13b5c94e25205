"""Synthetic companies: who reads which dataset when, plus labelled incidents to judge on.

``simulate(out_dir, seed=N)`` draws company N of a family (``family.draw_company``):
offices in several time zones with their own weekends, divisions and teams of very
different sizes, cross-team projects, managers, auditors, on-call engineers, service
archetypes (hourly ETL, steady broad BI, nightly backups, weekly crawlers, ...), and
datasets of every sensitivity, some unlabelled. It writes a history period of ordinary
behaviour and a test period holding the same plus labelled incident variants
(``incidents``) and benign look-alikes (``lookalikes``):

- ``history.jsonl``, ``test.jsonl``: native events, time-ordered, split at test_start;
- ``labels.json``: incidents (type, kind, entity, start, end, variant; exposures also
  their first out-of-audience read) and benign look-alikes;
- ``company.json``: the drawn parameters and the organisation they produced.

One seed gives byte-identical files in any process. ``reference`` keeps the single
fixed company of earlier releases for the demo and the streaming tests.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
...     summary = simulate(Path(tmp), seed=3, scale=0.3)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from reachwatch.models.errors import SchemaError
from reachwatch.models.simulation import behaviour, incidents, lookalikes, permissions
from reachwatch.models.simulation.family import CompanyParams, draw_company
from reachwatch.models.simulation.labels import Labels
from reachwatch.models.simulation.services import Service, build_services, run_services
from reachwatch.models.simulation.world import World, rfc3339

LABELS_SCHEMA_VERSION = 2

__all__ = ["CompanyParams", "SimulationSummary", "draw_company", "simulate"]


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """Counts of what ``simulate`` wrote, and where."""

    out_dir: str
    seed: int
    scale: float
    offices: int
    teams: int
    people: int
    services: int
    datasets: int
    history_days: int
    test_days: int
    history_events: int
    test_events: int
    incidents: int
    benign: int
    test_start: str
    test_end: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def simulate(
    out_dir: Path,
    *,
    seed: int = 7,
    scale: float = 1.0,
    history_days: int | None = None,
    test_days: int | None = None,
    start: str | None = None,
    params: CompanyParams | None = None,
) -> SimulationSummary:
    """Write history.jsonl, test.jsonl, labels.json and company.json of company ``seed``.

    ``history_days``, ``test_days`` and ``start`` override the drawn ones; ``params``
    replaces the draw altogether.
    """
    if not 0.05 <= scale <= 20.0:
        raise SchemaError("bad_value", f"scale must be within 0.05..20, got {scale}")
    params = params or draw_company(seed)
    history_days = params.history_days if history_days is None else history_days
    test_days = params.test_days if test_days is None else test_days
    if history_days < 3 or test_days < 1:
        raise SchemaError("bad_value", "history_days must be at least 3 and test_days at least 1")
    start = start or params.start
    try:
        t0 = datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise SchemaError("bad_timestamp", f"start {start!r:.40} is not a date") from None

    world = World(params, scale, history_days, test_days, t0)
    labels = Labels()
    services = build_services(world.org, world.rng("services-build"))
    lookalikes.history_company_wide(world)
    on_call = lookalikes.plan(world, labels)
    incidents.inject(world, labels, services)
    rng = world.rng("humans")
    for person in world.org.people:
        for day in range(world.days):
            behaviour.human_day(world, rng, person, day)
    skip: set[tuple[str, int]] = set()
    lookalikes.emit(world, labels, on_call, services, skip)
    behaviour.on_call_rotation(world, world.rng("on-call"), skip=skip)
    run_services(world, services, world.rng("services"))
    permissions.routine(world, labels)

    out_dir.mkdir(parents=True, exist_ok=True)
    history_events, test_events = world.write(out_dir / "history.jsonl", out_dir / "test.jsonl")
    document = {
        "schema_version": LABELS_SCHEMA_VERSION,
        "seed": params.seed,
        "incidents": labels.incidents,
        "benign": labels.benign,
        "test_start": rfc3339(world.test_start),
        "test_end": rfc3339(world.test_end),
    }
    options = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    (out_dir / "labels.json").write_bytes(orjson.dumps(document, option=options))
    company = _company(world, services, scale)
    (out_dir / "company.json").write_bytes(orjson.dumps(company, option=options))
    return SimulationSummary(
        out_dir=str(out_dir),
        seed=params.seed,
        scale=scale,
        offices=len(params.offices),
        teams=len(world.org.teams),
        people=len(world.org.people),
        services=len(services),
        datasets=len(world.org.datasets),
        history_days=history_days,
        test_days=test_days,
        history_events=history_events,
        test_events=test_events,
        incidents=len(labels.incidents),
        benign=len(labels.benign),
        test_start=rfc3339(world.test_start),
        test_end=rfc3339(world.test_end),
    )


def _company(world: World, services: list[Service], scale: float) -> dict[str, Any]:
    org = world.org

    def day_text(day: int) -> str:
        return rfc3339(world.day_start(day))[:10]

    people = []
    for person in org.people:
        entry: dict[str, Any] = {"principal": person.principal, "team": person.team,
                                 "office": person.office.name, "role": person.role}
        if person.join_day:
            entry["joined"] = day_text(person.join_day)
        if person.move_day is not None:
            entry["moved"] = {"on": day_text(person.move_day), "to": person.move_team}
        if person.on_call:
            entry["on_call_rotation"] = True
        if person.late:
            entry["late_worker"] = True
        if person.projects:
            entry["projects"] = [p.name for p in person.projects]
        people.append(entry)
    return {
        "schema_version": LABELS_SCHEMA_VERSION,
        "seed": world.params.seed,
        "scale": scale,
        "params": world.params.to_json(),
        "offices": [asdict(office) for office in world.params.offices],
        "teams": [
            {"name": t.name, "division": t.division, "function": t.function,
             "office": t.office.name, "size": sum(1 for p in org.people if p.team == t.name),
             "datasets": len(t.datasets)}
            for t in org.teams.values()
        ],
        "projects": [
            {"name": p.name, "teams": list(p.teams), "datasets": [d.resource for d in p.datasets],
             "members": len(p.members), "kickoff": day_text(p.kickoff_day)}
            for p in org.projects
        ],
        "people": people,
        "services": [service.describe() for service in services],
        "datasets": [
            {"resource": d.resource, "owner": d.owner, "sensitivity": d.sensitivity,
             "labelled": d.labelled, "rows": d.rows}
            for d in org.datasets
        ],
    }
