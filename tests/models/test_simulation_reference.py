"""The reference company (demo, streaming tests): deterministic, labels agree with events."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import parse_event, parse_timestamp
from reachwatch.models.simulation.reference import simulate

SEED = 7
SCALE = 0.3
HISTORY_DAYS = 7
TEST_DAYS = 3
FILES = ("history.jsonl", "test.jsonl", "labels.json", "company.json")


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, seed=SEED, scale=SCALE, history_days=HISTORY_DAYS, test_days=TEST_DAYS)
    return out


def _events(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as lines:
        return [orjson.loads(line) for line in lines]


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


def _incident(labels: dict[str, Any], kind_type: str) -> dict[str, Any]:
    return next(i for i in labels["incidents"] if i["type"] == kind_type)


def _within(
    events: list[dict[str, Any]], start: str, end: str, **match: str
) -> list[dict[str, Any]]:
    low, high = parse_timestamp(start), parse_timestamp(end)
    return [
        e
        for e in events
        if low <= e["ts"] <= high and all(e[key] == value for key, value in match.items())
    ]


def test_same_seed_writes_byte_identical_files_in_another_process(
    sim_dir: Path, tmp_path: Path
) -> None:
    # A different hash seed in a fresh interpreter catches any set/dict-order dependence.
    code = (
        "import sys; from pathlib import Path;"
        "from reachwatch.models.simulation.reference import simulate;"
        f"simulate(Path(sys.argv[1]), seed={SEED}, scale={SCALE}, history_days={HISTORY_DAYS},"
        f" test_days={TEST_DAYS})"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (sim_dir / name).read_bytes(), name


def test_another_seed_moves_the_incidents(labels: dict[str, Any], tmp_path: Path) -> None:
    simulate(tmp_path, seed=SEED + 1, scale=SCALE, history_days=HISTORY_DAYS, test_days=TEST_DAYS)
    other = orjson.loads((tmp_path / "labels.json").read_bytes())
    ours = [(i["entity"], i["start"]) for i in labels["incidents"]]
    theirs = [(i["entity"], i["start"]) for i in other["incidents"]]
    assert ours != theirs


def test_events_are_native_sorted_complete_and_split_at_test_start(
    history: list[dict[str, Any]], test_events: list[dict[str, Any]], labels: dict[str, Any]
) -> None:
    test_start = parse_timestamp(labels["test_start"])
    test_end = parse_timestamp(labels["test_end"])
    assert history[-1]["ts"] < test_start <= test_events[0]["ts"]
    assert test_events[-1]["ts"] < test_end
    for events in (history, test_events):
        assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    required = (
        "principal_group",
        "resource_group",
        "sensitivity",
        "records",
        "bytes",
        "outcome",
        "source",
    )
    for event in history[::97] + test_events[::97]:
        assert all(key in event for key in required), event
        assert parse_event(event).to_json() == event


def test_history_holds_denied_reads_and_heavy_tailed_volumes(
    history: list[dict[str, Any]],
) -> None:
    humans = [e for e in history if e["principal_type"] == "human"]
    denied = [e for e in humans if e["outcome"] == "denied"]
    assert 0 < len(denied) < 0.05 * len(humans)
    records = sorted(e["records"] for e in humans if e["outcome"] == "allowed")
    median, top = records[len(records) // 2], records[int(len(records) * 0.999)]
    assert top > 20 * median


def test_exposure_is_a_restricted_hr_dataset_read_by_many_teams(
    test_events: list[dict[str, Any]], history: list[dict[str, Any]], labels: dict[str, Any]
) -> None:
    exposure = _incident(labels, "exposure")
    assert exposure["kind"] == "broad_audience"
    reads = _within(test_events, exposure["start"], exposure["end"], resource=exposure["entity"])
    assert {e["sensitivity"] for e in reads} == {"restricted"}
    assert {e["resource_group"] for e in reads} == {"hr"}
    assert len({e["principal"] for e in reads}) >= 50
    assert len({e["principal_group"] for e in reads} - {"hr"}) >= 6
    # In history the same dataset only ever had a handful of readers in any hour.
    audience: dict[int, set[str]] = defaultdict(set)
    for event in history:
        if event["resource"] == exposure["entity"]:
            audience[int(event["ts"] // 3600)].add(event["principal"])
    assert max(len(readers) for readers in audience.values()) < 10


def test_insider_reads_dozens_of_other_teams_sensitive_datasets_in_an_hour(
    test_events: list[dict[str, Any]], labels: dict[str, Any]
) -> None:
    insider = _incident(labels, "insider_broad_read")
    reads = _within(test_events, insider["start"], insider["end"], principal=insider["entity"])
    own_team = reads[0]["principal_group"]
    foreign = {
        e["resource"]
        for e in reads
        if e["resource_group"] != own_team and e["sensitivity"] in ("confidential", "restricted")
    }
    assert len(foreign) >= 40
    assert len({e["resource_group"] for e in reads} - {own_team}) >= 3
    assert parse_timestamp(insider["end"]) - parse_timestamp(insider["start"]) <= 3600


def test_scraping_service_reads_across_teams_at_night(
    test_events: list[dict[str, Any]], labels: dict[str, Any]
) -> None:
    scraping = _incident(labels, "service_scraping")
    reads = _within(test_events, scraping["start"], scraping["end"], principal=scraping["entity"])
    assert {e["principal_type"] for e in reads} == {"service"}
    assert len({e["resource"] for e in reads}) >= 100
    assert len({e["resource_group"] for e in reads}) >= 8
    start_hour = parse_timestamp(scraping["start"]) % 86400 / 3600
    assert start_hour < 6 or start_hour >= 22


def test_slow_collection_spreads_few_foreign_reads_over_a_working_day(
    test_events: list[dict[str, Any]], labels: dict[str, Any]
) -> None:
    slow = _incident(labels, "slow_collection")
    reads = _within(test_events, slow["start"], slow["end"], principal=slow["entity"])
    own_team = reads[0]["principal_group"]
    per_hour: dict[int, set[str]] = defaultdict(set)
    for event in reads:
        if event["resource_group"] != own_team and event["sensitivity"] in (
            "confidential",
            "restricted",
        ):
            per_hour[int(event["ts"] // 3600)].add(event["resource"])
    assert len(per_hour) >= 7
    assert max(len(resources) for resources in per_hour.values()) <= 10


def test_every_benign_look_alike_happens_in_the_test_period(
    test_events: list[dict[str, Any]], labels: dict[str, Any]
) -> None:
    readers = {e["principal"] for e in test_events}
    resources = {e["resource"] for e in test_events}
    assert {b["type"] for b in labels["benign"]} == {
        "all_hands",
        "nightly_backup",
        "new_auditor",
        "newcomer",
        "quarter_end",
    }
    for look_alike in labels["benign"]:
        seen = readers if look_alike["kind"] == "broad_reader" else resources
        assert look_alike["entity"] in seen, look_alike


def test_joiners_of_the_test_period_have_no_history(
    history: list[dict[str, Any]], labels: dict[str, Any]
) -> None:
    joiners = {b["entity"] for b in labels["benign"] if b["type"] in ("new_auditor", "newcomer")}
    assert len(joiners) == 2
    assert not joiners & {e["principal"] for e in history}


def test_all_hands_deck_is_public_and_read_by_nearly_everyone_within_an_hour(
    test_events: list[dict[str, Any]], labels: dict[str, Any]
) -> None:
    deck = next(b["entity"] for b in labels["benign"] if b["type"] == "all_hands")
    reads = [e for e in test_events if e["resource"] == deck]
    assert {e["sensitivity"] for e in reads} == {"public"}
    first = min(e["ts"] for e in reads)
    audience = {e["principal"] for e in reads if e["ts"] <= first + 3600}
    day = int(first // 86400)
    present = {
        e["principal"]
        for e in test_events
        if e["principal_type"] == "human" and int(e["ts"] // 86400) == day
    }
    assert len(audience) >= 0.7 * len(present)


def test_nightly_backup_reads_every_dataset_between_one_and_three(
    history: list[dict[str, Any]], company: dict[str, Any]
) -> None:
    backup = [e for e in history if e["principal"] == "svc-backup"]
    first_night = {e["resource"] for e in backup if e["ts"] < history[0]["ts"] + 86400}
    permanent = {d["resource"] for d in company["datasets"] if "all-hands" not in d["resource"]}
    assert permanent <= first_night
    assert all(1.0 <= e["ts"] % 86400 / 3600 <= 3.0 for e in backup)
    assert len({int(e["ts"] // 86400) for e in backup}) == HISTORY_DAYS


def test_auditors_routinely_read_across_teams(
    history: list[dict[str, Any]], company: dict[str, Any]
) -> None:
    auditors = {
        p["principal"]
        for p in company["people"]
        if p["team"] == "security-audit" and "joined" not in p
    }
    reads: dict[tuple[str, int], list[str]] = defaultdict(list)
    for event in history:
        if event["principal"] in auditors:
            reads[(event["principal"], int(event["ts"] // 86400))].append(event["resource_group"])
    # Working days (an audit sweep is dozens of reads) always span most teams.
    sweeps = [set(groups) for groups in reads.values() if len(groups) >= 20]
    assert sweeps
    assert all(len(teams) >= 6 for teams in sweeps)


def test_company_describes_teams_services_and_sensitive_hr_data(
    company: dict[str, Any],
) -> None:
    assert len(company["teams"]) == 12
    assert len(company["services"]) >= 20
    sensitivity = {d["resource"]: d["sensitivity"] for d in company["datasets"]}
    assert sensitivity["hr.employee-monitoring"] == "restricted"
    assert sensitivity["company.handbook"] == "public"
    assert any(p.get("moved") for p in company["people"])


def test_labels_are_well_formed_and_inside_the_test_period(labels: dict[str, Any]) -> None:
    assert labels["schema_version"] == 1
    low, high = parse_timestamp(labels["test_start"]), parse_timestamp(labels["test_end"])
    assert len(labels["incidents"]) == 4
    for incident in labels["incidents"]:
        assert incident["kind"] in ("broad_reader", "broad_audience")
        assert low <= parse_timestamp(incident["start"]) <= parse_timestamp(incident["end"]) < high
        assert incident["description"]


def test_rejects_an_absurd_scale(tmp_path: Path) -> None:
    with pytest.raises(SchemaError):
        simulate(tmp_path, scale=0.0)
