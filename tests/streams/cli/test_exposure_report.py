"""``reachwatch exposure-report`` from a replay of log files (the topic path runs in
tests/integration/test_exposure_e2e.py)."""

from __future__ import annotations

import csv
import io
import random
import shutil

import orjson
import pytest
from click.testing import CliRunner
from support.incidents import RESOURCE, TEST_DAY, established_history, exposure_with_grant
from support.tinyorg import office_day, write_jsonl

from reachwatch.models.pipeline import Pipeline
from reachwatch.streams.cli.main import main
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.pseudonyms import Pseudonymizer
from reachwatch.streams.offline.exposures import replay_exposures


@pytest.fixture(scope="module")
def logs(tiny_registry, tiny_history, tmp_path_factory):
    root = tmp_path_factory.mktemp("exposure-cli")
    shutil.copytree(tiny_registry.root, root / "models")
    history = sorted(tiny_history + established_history(), key=lambda e: e.ts)
    incident = exposure_with_grant(history)
    day = [e for e in office_day(random.Random(99), TEST_DAY) if e.resource != RESOURCE]
    write_jsonl(root / "history.jsonl", history)
    write_jsonl(root / "today.jsonl", sorted(day + incident.events, key=lambda e: e.ts))
    return root, incident


def invoke(*args: str):
    return CliRunner().invoke(main, ["exposure-report", *args])


def test_json_has_the_interface_fields_and_exactly_the_outside_readers(logs):
    root, incident = logs
    result = invoke(
        "--model",
        str(root / "models"),
        str(root / "history.jsonl"),
        str(root / "today.jsonl"),
        "--resource",
        RESOURCE,
        "--json",
    )
    assert result.exit_code == 0, result.output
    record = orjson.loads(result.output)
    for key in ("resource", "sensitivity", "opened", "closed", "cause", "readers"):
        assert key in record
    assert record["sensitivity"] == "restricted" and record["closed"] is None  # still open
    assert {r["principal"] for r in record["readers"]} == incident.outside
    assert record["cause"]["by"] == incident.grant.principal
    assert set(record["readers"][0]) >= {"principal", "group", "first_read", "last_read", "reads"}


def test_plain_output_is_the_summary_then_the_readers(logs):
    root, incident = logs
    result = invoke(
        "--model",
        str(root / "models"),
        str(root / "history.jsonl"),
        str(root / "today.jsonl"),
        "--resource",
        RESOURCE,
    )
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith(f"{RESOURCE} (restricted) was read by {len(incident.outside)} people")
    assert "via a company-wide link" in first


def test_csv_lists_one_row_per_reader(logs):
    root, incident = logs
    result = invoke(
        "--model",
        str(root / "models"),
        str(root / "history.jsonl"),
        str(root / "today.jsonl"),
        "--resource",
        RESOURCE,
        "--csv",
    )
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert {r["principal"] for r in rows} == incident.outside


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--resource", "x"], "give either --broker B or --model M FILE...", 2),
        (["--model", "m"], "give --resource R or --alert-id A", 2),
        (["--model", "m", "--resource", "x"], "--model needs the log FILES to replay", 2),
    ],
)
def test_bad_invocations_fail_in_one_line(args, message, code):
    result = invoke(*args)
    assert result.exit_code == code and message in result.output
    assert "Traceback" not in result.output


def test_an_unknown_resource_is_one_line_not_a_traceback(logs):
    root, _ = logs
    result = invoke(
        "--model",
        str(root / "models"),
        str(root / "today.jsonl"),
        "--resource",
        "nobody/reads-this",
    )
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no exposure record for resource nobody/reads-this"


def test_a_missing_model_in_an_empty_directory_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.jsonl").write_text("")
    result = invoke("--model", "var/models", "f.jsonl", "--resource", "x")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_with_pseudonymisation_the_record_holds_only_pseudonyms(tiny_model, logs, tmp_path):
    root, incident = logs
    pseudonyms = Pseudonymizer(b"k" * 32)
    chain = Chain(get_adapter("native"), pseudonymizer=pseudonyms)
    records = replay_exposures(
        [root / "history.jsonl", root / "today.jsonl"], Pipeline(tiny_model), chain
    )
    record = next(r for r in records if r["resource"] == RESOURCE)
    listed = {r["principal"] for r in record["readers"]}
    assert listed == {pseudonyms.principal(p) for p in incident.outside}
    text = orjson.dumps(record).decode()
    assert not any(f'"{p}"' in text for p in incident.outside | {incident.grant.principal})
