"""The family of simulated companies: deterministic per seed, wide, and labelled truthfully."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import parse_event, parse_timestamp
from reachwatch.models.simulation import draw_company, simulate

SEED = 34  # two offices, unlabelled datasets, auditors, finance, BI and crawlers
SCALE = 0.2
FILES = ("history.jsonl", "test.jsonl", "labels.json", "company.json")
INCIDENT_TYPES = {"exposure", "departing_employee", "account_takeover", "slow_collection",
                  "service_scraping", "insider_broad_read"}
# Seeds of the small companies the variety tests generate (short history, tiny scale).
VARIETY_SEEDS = range(1, 13)


def _events(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as lines:
        return [orjson.loads(line) for line in lines]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, seed=SEED, scale=SCALE)
    return out


@pytest.fixture(scope="module")
def history(sim_dir: Path) -> list[dict[str, Any]]:
    return _events(sim_dir / "history.jsonl")


@pytest.fixture(scope="module")
def test_events(sim_dir: Path) -> list[dict[str, Any]]:
    return _events(sim_dir / "test.jsonl")


@pytest.fixture(scope="module")
def labels(sim_dir: Path) -> dict[str, Any]:
    return orjson.loads((sim_dir / "labels.json").read_bytes())


@pytest.fixture(scope="module")
def company(sim_dir: Path) -> dict[str, Any]:
    return orjson.loads((sim_dir / "company.json").read_bytes())


@pytest.fixture(scope="module")
def variety(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict, dict]]:
    """(labels, company) of a dozen small companies with a short history."""
    root = tmp_path_factory.mktemp("variety")
    found = []
    for seed in VARIETY_SEEDS:
        simulate(root / str(seed), seed=seed, scale=0.05, history_days=3, test_days=3)
        found.append(tuple(orjson.loads((root / str(seed) / name).read_bytes())
                           for name in ("labels.json", "company.json")))
    return found


def _incidents(labels: dict[str, Any], kind_type: str) -> list[dict[str, Any]]:
    return [i for i in labels["incidents"] if i["type"] == kind_type]


def _within(events: list[dict[str, Any]], incident: dict[str, Any], **match: str
            ) -> list[dict[str, Any]]:
    low, high = parse_timestamp(incident["start"]), parse_timestamp(incident["end"]) + 1
    return [e for e in events
            if low <= e["ts"] <= high and all(e[key] == value for key, value in match.items())]


def _offsets(company: dict[str, Any]) -> dict[str, float]:
    offices = {o["name"]: o["utc_offset"] for o in company["offices"]}
    return {p["principal"]: offices[p["office"]] for p in company["people"]}


# --- determinism and the family's spread ----------------------------------------------

def test_same_seed_writes_byte_identical_files_in_another_process(
    sim_dir: Path, tmp_path: Path
) -> None:
    # A different hash seed in a fresh interpreter catches any set/dict-order dependence.
    code = ("import sys; from pathlib import Path; from reachwatch.models.simulation import "
            f"simulate; simulate(Path(sys.argv[1]), seed={SEED}, scale={SCALE})")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (sim_dir / name).read_bytes(), name


def test_company_json_records_the_drawn_parameters(company: dict[str, Any]) -> None:
    drawn = orjson.loads(orjson.dumps(draw_company(SEED).to_json()))
    assert company["params"] == drawn
    assert company["seed"] == SEED


def test_parameters_vary_widely_across_the_family() -> None:
    drawn = [draw_company(seed) for seed in range(1, 41)]
    teams = [len(c.teams) for c in drawn]
    people = [sum(t.size for t in c.teams) for c in drawn]
    offices = [len(c.offices) for c in drawn]
    weekends = {o.weekend for c in drawn for o in c.offices}
    assert min(teams) <= 6 and max(teams) >= 15 and len(set(teams)) >= 8
    assert min(people) < 100 and max(people) > 400
    assert 1 in offices and max(offices) >= 3
    assert {(5, 6), (4, 5), (6,)} <= weekends
    assert len({o.utc_offset for c in drawn for o in c.offices}) >= 8
    unlabelled = [c.unlabelled_share for c in drawn]
    assert min(unlabelled) == 0.0 and max(unlabelled) > 0.15
    rates = [c.reads_per_day_median for c in drawn]
    assert max(rates) > 3 * min(rates)
    assert {c.history_days for c in drawn} >= {14, 21}
    assert {c.services.bi for c in drawn} >= {0, 2}
    assert {c.services.crawlers for c in drawn} >= {0, 1}
    assert min(c.projects for c in drawn) == 0 and max(c.projects for c in drawn) >= 4
    assert {c.auditors > 0 for c in drawn} == {True, False}


def test_another_seed_is_another_company(company: dict[str, Any], tmp_path: Path) -> None:
    simulate(tmp_path, seed=SEED + 1, scale=SCALE)
    other = orjson.loads((tmp_path / "company.json").read_bytes())
    assert [t["name"] for t in other["teams"]] != [t["name"] for t in company["teams"]]
    assert other["params"] != company["params"]


def test_bad_scale_and_start_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="scale"):
        simulate(tmp_path, seed=1, scale=50.0)
    with pytest.raises(SchemaError, match="not a date"):
        simulate(tmp_path, seed=1, scale=0.1, start="soon")


# --- events -----------------------------------------------------------------------------

def test_events_are_native_sorted_and_split_at_test_start(
    history: list[dict[str, Any]], test_events: list[dict[str, Any]], labels: dict[str, Any]
) -> None:
    test_start = parse_timestamp(labels["test_start"])
    assert history[-1]["ts"] < test_start <= test_events[0]["ts"]
    assert test_events[-1]["ts"] < parse_timestamp(labels["test_end"])
    for events in (history, test_events):
        assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    for event in history[::101] + test_events[::101]:
        parsed = parse_event(event).to_json()
        assert event == {
            k: v for k, v in parsed.items() if k in event or k != "sensitivity"}


def test_unlabelled_datasets_carry_no_sensitivity(
    history: list[dict[str, Any]], company: dict[str, Any]
) -> None:
    labelled = {d["resource"]: d["labelled"] for d in company["datasets"]}
    assert company["params"]["unlabelled_share"] > 0  # the chosen seed has some
    seen = {e["resource"]: "sensitivity" in e for e in history}
    assert {resource: labelled[resource] for resource in seen} == seen
    assert False in seen.values() and True in seen.values()


def test_people_read_in_their_office_hours_and_offices_differ(
    history: list[dict[str, Any]], company: dict[str, Any]
) -> None:
    offsets = _offsets(company)
    late = {p["principal"] for p in company["people"] if p.get("late_worker")}
    assert len(set(offsets.values())) >= 2
    local = []
    utc_by_office: dict[float, list[float]] = defaultdict(list)
    for event in history:
        principal = event["principal"]
        if event["principal_type"] == "human" and principal not in late:
            hour = (event["ts"] / 3600 + offsets[principal]) % 24
            local.append(hour)
            utc_by_office[offsets[principal]].append(event["ts"] / 3600 % 24)
    assert sum(6.0 <= h <= 21.0 for h in local) / len(local) > 0.9
    medians = [statistics.median(hours) for hours in utc_by_office.values() if len(hours) > 500]
    assert max(medians) - min(medians) >= 1.0


def test_weekends_follow_each_office(history: list[dict[str, Any]], company: dict[str, Any]
                                     ) -> None:
    offices = {o["name"]: o for o in company["offices"]}
    office_of = {p["principal"]: offices[p["office"]] for p in company["people"]}
    reads: Counter[tuple[str, bool]] = Counter()
    for event in history:
        office = office_of.get(event["principal"])
        if office and event["principal_type"] == "human":
            local = event["ts"] + office["utc_offset"] * 3600
            weekday = int(local // 86400 + 3) % 7  # 1970-01-01 was a Thursday
            reads[office["name"], weekday in office["weekend"]] += 1
    for name in offices:
        work, rest = reads[name, False], reads[name, True]
        if work > 1000:
            # Two weekend days against five working days, at most a few people working.
            assert rest < 0.1 * work, name


def test_weekly_crawler_and_steady_bi_services(
    tmp_path: Path,
) -> None:
    seed = next(s for s in range(1, 80) if draw_company(s).services.crawlers
                and draw_company(s).services.bi)
    simulate(tmp_path, seed=seed, scale=0.1)
    history = _events(tmp_path / "history.jsonl")
    crawler_days = {int(e["ts"] // 86400) for e in history
                    if e["principal"].startswith("svc-catalogue-crawler-1")}
    assert 1 <= len(crawler_days) <= 4  # a run may straddle midnight
    bi: dict[int, set[str]] = defaultdict(set)
    for event in history:
        if event["principal"] == "svc-bi-1":
            bi[int(event["ts"] // 3600)].add(event["resource"])
    hours = len(history and range(int(history[0]["ts"] // 3600), int(history[-1]["ts"] // 3600)))
    assert len(bi) > 0.95 * hours  # every hour of every day
    assert statistics.median(len(v) for v in bi.values()) >= 3


# --- incidents ----------------------------------------------------------------------------

def test_every_incident_type_is_labelled_with_its_events(
    labels: dict[str, Any], test_events: list[dict[str, Any]]
) -> None:
    assert {i["type"] for i in labels["incidents"]} == INCIDENT_TYPES
    for incident in labels["incidents"]:
        side = "resource" if incident["kind"] == "broad_audience" else "principal"
        reads = _within(test_events, incident, **{side: incident["entity"]})
        assert len(reads) >= 3, incident["id"]
        assert incident["variant"], incident["id"]


def test_exposure_readers_are_outsiders_and_the_first_outside_read_is_labelled(
    labels: dict[str, Any], test_events: list[dict[str, Any]], company: dict[str, Any]
) -> None:
    owner = {d["resource"]: d["owner"] for d in company["datasets"]}
    members = {name for p in company["projects"] for name in p["datasets"]}
    for exposure in _incidents(labels, "exposure"):
        resource = exposure["entity"]
        assert resource not in members
        reads = _within(test_events, exposure, resource=resource)
        outside = [e for e in reads if e["principal_group"] != owner[resource]]
        assert len({e["principal"] for e in outside}) >= 5
        assert {e["sensitivity"] for e in outside} == {exposure["variant"]["sensitivity"]}
        assert exposure["first_outside_read"] == exposure["start"]
        assert int(min(e["ts"] for e in outside)) == parse_timestamp(exposure["start"])


def test_departing_employee_exports_their_own_team(
    labels: dict[str, Any], test_events: list[dict[str, Any]], company: dict[str, Any]
) -> None:
    (incident,) = _incidents(labels, "departing_employee")
    rows = {d["resource"]: d["rows"] for d in company["datasets"]}
    reads = _within(test_events, incident, principal=incident["entity"])
    team = reads[0]["principal_group"]
    whole = [e for e in reads if e["records"] == rows[e["resource"]]]
    assert len({e["resource"] for e in whole}) >= incident["variant"]["datasets"]
    own = [e for e in whole if e["resource_group"] == team]
    assert len(own) >= 0.6 * len(whole)


def test_account_takeover_is_at_night_from_a_new_address(
    labels: dict[str, Any], history: list[dict[str, Any]], test_events: list[dict[str, Any]],
    company: dict[str, Any],
) -> None:
    (incident,) = _incidents(labels, "account_takeover")
    principal, address = incident["entity"], incident["variant"]["address"]
    stolen = [e for e in _within(test_events, incident, principal=principal)
              if e["source"] == address]
    assert len({e["resource"] for e in stolen}) == incident["variant"]["datasets"]
    assert address not in {e["source"] for e in history if e["principal"] == principal}
    hour = (parse_timestamp(incident["start"]) / 3600 + _offsets(company)[principal]) % 24
    assert hour < 6.0 or parse_timestamp(incident["start"]) < parse_timestamp(
        labels["test_start"]) + 3 * 3600


def test_slow_collection_is_a_few_an_hour_for_hours(
    labels: dict[str, Any], test_events: list[dict[str, Any]]
) -> None:
    (incident,) = _incidents(labels, "slow_collection")
    low, high = incident["variant"]["per_hour"]
    start = parse_timestamp(incident["start"])
    assert parse_timestamp(incident["end"]) - start >= 4 * 3600
    assert incident["variant"]["datasets"] <= high * incident["variant"]["hours"]
    assert low <= high <= 6


def test_service_scraping_reads_beyond_what_the_service_ever_read(
    labels: dict[str, Any], history: list[dict[str, Any]], test_events: list[dict[str, Any]]
) -> None:
    (incident,) = _incidents(labels, "service_scraping")
    service = incident["entity"]
    usual = {e["resource"] for e in history if e["principal"] == service}
    scraped = {e["resource"] for e in _within(test_events, incident, principal=service)}
    assert len(scraped - usual) >= 0.9 * incident["variant"]["datasets"]


def test_incidents_and_look_alikes_never_share_an_entity(labels: dict[str, Any]) -> None:
    incident = [i["entity"] for i in labels["incidents"]]
    assert len(set(incident)) == len(incident)
    assert not set(incident) & {b["entity"] for b in labels["benign"]}


def test_incident_variants_vary_across_companies(variety: list[tuple[dict, dict]]) -> None:
    exposures = [i["variant"] for labels, _ in variety for i in _incidents(labels, "exposure")]
    assert {v["speed"] for v in exposures} == {"fast", "slow"}
    assert {v["size"] for v in exposures} == {"small", "large"}
    assert {v["sensitivity"] for v in exposures} == {"restricted", "confidential"}
    assert {"office_hours", "night", "weekend"} <= {v["when"] for v in exposures}
    scraping = [i["variant"] for labels, _ in variety
                for i in _incidents(labels, "service_scraping")]
    assert {v["target"] for v in scraping} == {"broad", "restricted"}
    assert len({v["archetype"] for v in scraping}) >= 3
    for labels, _ in variety:
        assert {i["type"] for i in labels["incidents"]} == INCIDENT_TYPES


# --- look-alikes --------------------------------------------------------------------------

def test_every_look_alike_type_appears_across_companies(variety: list[tuple[dict, dict]]
                                                         ) -> None:
    types = {b["type"] for labels, _ in variety for b in labels["benign"]}
    assert {"company_wide_public", "company_wide_internal", "project_kickoff", "reorganisation",
            "quarter_end", "on_call_night", "newcomer", "new_auditor", "service_backup",
            "service_bi", "service_crawler"} <= types


def test_look_alikes_happen_in_the_test_period(
    labels: dict[str, Any], test_events: list[dict[str, Any]]
) -> None:
    by_principal = {e["principal"] for e in test_events}
    by_resource = Counter(e["resource"] for e in test_events)
    for benign in labels["benign"]:
        if benign["kind"] == "broad_reader":
            assert benign["entity"] in by_principal, benign
        else:
            assert by_resource[benign["entity"]] > 0, benign


def test_company_wide_reads_reach_most_of_the_company(
    labels: dict[str, Any], test_events: list[dict[str, Any]], company: dict[str, Any]
) -> None:
    (deck,) = [b for b in labels["benign"] if b["type"] == "company_wide_public"]
    readers = {e["principal"] for e in test_events if e["resource"] == deck["entity"]}
    assert len(readers) >= 0.5 * len(company["people"])
    teams = {e["principal_group"] for e in test_events if e["resource"] == deck["entity"]}
    assert len(teams) >= 0.8 * len(company["teams"])


GRANT_SEED = 19  # logs every permission change, several a team and week


@pytest.fixture(scope="module")
def granted(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], dict, dict]:
    """(events of both files, labels, company) of a company whose logs carry grants."""
    out = tmp_path_factory.mktemp("granted")
    simulate(out, seed=GRANT_SEED, scale=0.1, history_days=5, test_days=2)
    events = _events(out / "history.jsonl") + _events(out / "test.jsonl")
    return (events, *(orjson.loads((out / name).read_bytes())
                      for name in ("labels.json", "company.json")))


def test_logged_permission_changes_are_grant_events(
    granted: tuple[list[dict], dict, dict]
) -> None:
    from reachwatch.models.grants import GRANT_ACTIONS

    events, labels, company = granted
    assert company["params"]["grants_logged"] == 1.0
    grants = [e for e in events if e["action"] != "read"]
    assert {e["action"] for e in grants} <= GRANT_ACTIONS
    # Routine changes: shares with a colleague of another team, group additions.
    assert {"share", "group-add"} <= {e["action"] for e in grants}
    assert all("records" not in e and parse_event(e).action in GRANT_ACTIONS
               for e in grants)
    owner = {d["resource"]: d["owner"] for d in company["datasets"]}
    # A company-wide deck or page is opened to everyone before people read it.
    company_wide = {e["resource"] for e in grants if e["action"] == "share-organization"
                    and owner[e["resource"]] == "company"}
    assert company_wide
    # An exposure's access-control mistake is logged minutes before its first outside
    # read, by its own team, and the label names how it was made.
    for exposure in _incidents(labels, "exposure"):
        (change,) = [e for e in grants if e["resource"] == exposure["entity"]
                     and e["ts"] <= parse_timestamp(exposure["first_outside_read"]) + 1]
        assert exposure["variant"]["grant"] == change["action"]
        lead = parse_timestamp(exposure["first_outside_read"]) - change["ts"]
        assert 0 < lead <= 30 * 60 + 1


def test_a_share_brings_a_reader_of_another_team(
    granted: tuple[list[dict], dict, dict]
) -> None:
    events, _, _ = granted
    shares = [e for e in events if e["action"] in ("share", "grant")
              and e["resource_group"] != "company"]
    assert shares
    followed = 0
    for share in shares:
        after = [e for e in events if e["action"] == "read" and e["resource"] == share["resource"]
                 and 0 < e["ts"] - share["ts"] < 12 * 3600
                 and e["principal_group"] != share["resource_group"]]
        followed += bool(after)
    assert followed >= 0.8 * len(shares)


def test_a_company_whose_logs_carry_no_grants_writes_none(
    history: list[dict[str, Any]], test_events: list[dict[str, Any]], labels: dict[str, Any],
    company: dict[str, Any]
) -> None:
    assert company["params"]["grants_logged"] == 0.0
    assert {e["action"] for e in history + test_events} == {"read"}
    assert all(i["variant"]["grant"] is None for i in _incidents(labels, "exposure"))
