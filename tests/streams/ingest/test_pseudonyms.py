"""Pseudonymisation: keyed, stable, applied before state/model/alerts, reversible only with
the key and an audit line."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from reachwatch.models.errors import ConfigError
from reachwatch.models.records import AccessEvent
from reachwatch.streams.cli.main import main
from reachwatch.streams.ingest.pseudonyms import (
    MIN_KEY_BYTES,
    PSEUDONYM_PATTERN,
    Pseudonymizer,
    check_model,
    load_key,
    new_key,
)

KEY = b"0123456789abcdef0123456789abcdef"


def read(ts: float = 1_772_409_600.0, principal: str = "ana", resource: str = "hr/salaries"):
    return AccessEvent(ts=ts, principal=principal, resource=resource, principal_group="hr")


# -- the pseudonym itself ------------------------------------------------------------------
def test_pseudonyms_are_stable_for_a_key_and_differ_between_keys() -> None:
    one, again, other = Pseudonymizer(KEY), Pseudonymizer(KEY), Pseudonymizer(KEY[::-1])
    assert one.principal("ana") == again.principal("ana")
    assert one.principal("ana") != other.principal("ana")
    assert PSEUDONYM_PATTERN.match(one.principal("ana"))
    assert one.principal("ana").startswith("p_") and one.resource("ana").startswith("r_")


def test_the_same_string_as_principal_and_resource_gets_unrelated_pseudonyms() -> None:
    names = Pseudonymizer(KEY)
    assert names.principal("svc-backup")[2:] != names.resource("svc-backup")[2:]


def test_apply_replaces_principal_keeps_resource_groups_and_counts_by_default() -> None:
    event = AccessEvent(1_772_409_600.0, "ana", "hr/salaries", "human", "hr", "hr", records=7)
    out = Pseudonymizer(KEY).apply(event)
    assert out.principal == Pseudonymizer(KEY).principal("ana")
    assert (out.resource, out.principal_group, out.resource_group, out.records) == (
        "hr/salaries",
        "hr",
        "hr",
        7,
    )


def test_resources_are_replaced_only_when_asked() -> None:
    out = Pseudonymizer(KEY, resources=True).apply(read())
    assert out.resource == Pseudonymizer(KEY).resource("hr/salaries")
    assert out.principal_group == "hr"


# -- keys ------------------------------------------------------------------------------------
def test_new_key_is_private_long_enough_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "pseudonym.key"
    key_id = new_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(load_key(path)) >= MIN_KEY_BYTES
    assert key_id == Pseudonymizer.from_key_file(path).fingerprint
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="refusing to replace"):
        new_key(path)
    assert path.read_bytes() == before


def test_short_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.key"
    path.write_bytes(b"x" * (MIN_KEY_BYTES - 1) + b"\n")
    with pytest.raises(ConfigError, match=f"31 bytes, at least {MIN_KEY_BYTES}"):
        load_key(path)


def test_cli_refuses_a_short_key_with_one_line(tmp_path: Path) -> None:
    key = tmp_path / "short.key"
    key.write_bytes(b"too short")
    events = tmp_path / "e.jsonl"
    events.write_bytes(b"{}\n")
    result = CliRunner().invoke(
        main,
        ["train", str(events), "--out", str(tmp_path / "r"), "--pseudonym-key-file", str(key)],
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: pseudonym key {key} is 9 bytes, at least 32 needed "
        "(make one with `reachwatch pseudonymize-key new FILE`)"
    ]


def test_cli_new_key_prints_only_the_key_id(tmp_path: Path) -> None:
    path = tmp_path / "k"
    result = CliRunner().invoke(main, ["pseudonymize-key", "new", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == Pseudonymizer.from_key_file(path).fingerprint
    assert load_key(path).decode() not in result.output


# -- models and keys must agree --------------------------------------------------------------
def test_a_pseudonymised_model_refuses_no_key_another_key_and_another_mode() -> None:
    trained = Pseudonymizer(KEY)
    meta = {"version": "v1", "pseudonymization": trained.describe()}
    check_model(meta, Pseudonymizer(KEY))
    with pytest.raises(ConfigError, match="trained on pseudonyms"):
        check_model(meta, None)
    with pytest.raises(ConfigError, match="another|this key is"):
        check_model(meta, Pseudonymizer(KEY[::-1]))
    with pytest.raises(ConfigError, match="principals only"):
        check_model(meta, Pseudonymizer(KEY, resources=True))


def test_a_raw_model_takes_principal_pseudonyms_but_not_resource_ones() -> None:
    check_model({"version": "v1"}, None)
    check_model({"version": "v1"}, Pseudonymizer(KEY))
    with pytest.raises(ConfigError, match="raw resource names"):
        check_model({"version": "v1"}, Pseudonymizer(KEY, resources=True))


# -- end to end: a simulated company trained and replayed with pseudonyms ----------------------
@pytest.fixture(scope="module")
def pseudonymised_company(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from reachwatch.models.simulation.reference import simulate

    root = tmp_path_factory.mktemp("pseudonymised")
    simulate(root / "company", seed=5, scale=0.3, history_days=7)
    key = root / "secret" / "pseudonym.key"
    new_key(key)
    registry = root / "models"
    runner = CliRunner()
    pseudo = ["--pseudonym-key-file", str(key)]
    trained = runner.invoke(
        main,
        [
            "train",
            str(root / "company/history.jsonl"),
            "--out",
            str(registry),
            "--promote",
            "--quiet",
            *pseudo,
        ],
    )
    assert trained.exit_code == 0, trained.output
    alerts = root / "alerts.jsonl"
    replayed = runner.invoke(
        main,
        [
            "replay",
            str(root / "company/test.jsonl"),
            "--model",
            str(registry),
            "--alerts-out",
            str(alerts),
            *pseudo,
        ],
    )
    assert replayed.exit_code == 0, replayed.output
    return {
        "company": root / "company",
        "key": key,
        "version": registry / trained.output.strip().splitlines()[-1],
        "alerts": alerts,
    }


def _principals(history: Path) -> set[str]:
    return {orjson.loads(line)["principal"] for line in history.read_bytes().splitlines()}


def _artifact_blobs(folder: Path) -> dict[str, bytes]:
    """Every file of a model version, and every member of its zip files decompressed."""
    blobs: dict[str, bytes] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        blobs[path.name] = path.read_bytes()
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    blobs[f"{path.name}:{member}"] = archive.read(member)
    return blobs


def test_a_model_trained_with_pseudonyms_holds_no_raw_principal(pseudonymised_company) -> None:
    names = _principals(pseudonymised_company["company"] / "history.jsonl")
    blobs = _artifact_blobs(pseudonymised_company["version"])
    # The scan does reach inside: zipped skops members and npz arrays are decompressed.
    assert any(name.startswith("model.skops:") for name in blobs)
    assert any(name.startswith("profiles.npz:") for name in blobs)
    assert any(b"IsolationForest" in blob for name, blob in blobs.items() if ":" in name)
    leaks = sorted(
        (name, where) for name in names for where, blob in blobs.items() if name.encode() in blob
    )
    assert leaks == []
    meta = orjson.loads((pseudonymised_company["version"] / "metadata.json").read_bytes())
    key_id = Pseudonymizer.from_key_file(pseudonymised_company["key"]).fingerprint
    assert meta["pseudonymization"] == {"principals": True, "resources": False, "key_id": key_id}


def test_alerts_of_a_pseudonymised_replay_carry_only_pseudonyms(pseudonymised_company) -> None:
    names = _principals(pseudonymised_company["company"] / "history.jsonl")
    raw = pseudonymised_company["alerts"].read_bytes()
    rows = [orjson.loads(line) for line in raw.splitlines()]
    readers = [r["entity"] for r in rows if r["kind"] == "broad_reader"]
    sampled = [s["principal"] for r in rows for s in r["sample"] if "principal" in s]
    assert readers and sampled
    assert all(PSEUDONYM_PATTERN.match(p) for p in readers + sampled)
    assert [name for name in names if name.encode() in raw] == []


def test_an_analyst_with_the_key_reveals_the_insider_alerted_on(pseudonymised_company) -> None:
    company = pseudonymised_company["company"]
    labels = orjson.loads((company / "labels.json").read_bytes())
    insider = next(i["entity"] for i in labels["incidents"] if i["type"] == "insider_broad_read")
    key = pseudonymised_company["key"]
    pseudonym = Pseudonymizer.from_key_file(key).principal(insider)
    rows = [orjson.loads(x) for x in pseudonymised_company["alerts"].read_bytes().splitlines()]
    assert pseudonym in {r["entity"] for r in rows}
    log = company.parent / "reveal-audit.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "reveal",
            pseudonym,
            "--key-file",
            str(key),
            "--candidates",
            str(company / "history.jsonl"),
            "--audit-log",
            str(log),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == insider
    assert orjson.loads(log.read_bytes())["result"] == "found"
