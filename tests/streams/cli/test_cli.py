from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from support.tinyorg import write_jsonl

from reachwatch.streams.cli.main import main


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def registry_dir(tiny_registry, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(tiny_registry.root, root)
    return root


def test_replay_writes_alerts_and_a_json_summary(runner, registry_dir, tiny_history, tmp_path):
    events = write_jsonl(tmp_path / "events.jsonl", tiny_history[:4000])
    with events.open("ab") as handle:
        handle.write(b"not json\n")
        handle.write(b'{"ts": "yesterday", "principal": "a", "resource": "b"}\n')
        handle.write(b'{"ts": 1772409600, "principal": "a"}\n')
    alerts = tmp_path / "alerts.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    result = runner.invoke(
        main,
        [
            "replay",
            str(events),
            "--model",
            str(registry_dir),
            "--alerts-out",
            str(alerts),
            "--rejects-out",
            str(rejects),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.output.strip().splitlines()[-1])
    assert summary["events"] == 4003
    assert summary["accepted"] == 4000
    assert summary["rejected_by_reason"] == {"bad_timestamp": 1, "missing_field": 1, "not_json": 1}
    assert summary["alerts"] == len(alerts.read_bytes().splitlines())
    rows = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert {r["reason"] for r in rows} == {"bad_timestamp", "missing_field", "not_json"}
    assert all(r["raw"] and r["detail"] for r in rows)


def test_replay_id_limit_rejects_longer_ids(runner, registry_dir, tiny_history, tmp_path):
    events = write_jsonl(tmp_path / "events.jsonl", tiny_history[:500])
    limit = min(len(e.resource) for e in tiny_history[:500])  # at least one id is longer
    longer = sum(1 for e in tiny_history[:500] if max(len(e.resource), len(e.principal)) > limit)
    alerts, rejects = tmp_path / "alerts.jsonl", tmp_path / "rejects.jsonl"
    result = runner.invoke(main, ["replay", str(events), "--model", str(registry_dir),
                                  "--alerts-out", str(alerts), "--rejects-out", str(rejects),
                                  "--max-id-length", str(limit)])
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.output.strip().splitlines()[-1])
    assert longer > 0 and summary["rejected_by_reason"] == {"too_large": longer}
    detail = orjson.loads(rejects.read_bytes().splitlines()[0])["detail"]
    assert detail.endswith(f"limit {limit}")


def test_a_zero_limit_is_a_usage_error(runner, registry_dir, tmp_path):
    result = runner.invoke(main, ["replay", str(tmp_path), "--model", str(registry_dir),
                                  "--alerts-out", str(tmp_path / "a"), "--max-nesting", "0"])
    assert result.exit_code == 2 and "--max-nesting" in result.output


def test_train_prints_a_version_that_models_list_shows(runner, tiny_history, tmp_path):
    events = write_jsonl(tmp_path / "history.jsonl", tiny_history[:6000])
    registry = tmp_path / "reg"
    result = runner.invoke(main, ["train", str(events), "--out", str(registry), "--quiet"])
    assert result.exit_code == 0, result.output
    version = result.output.strip()
    assert (registry / version / "card.md").exists()
    assert (registry / version / "scores.png").stat().st_size > 1000
    listed = runner.invoke(main, ["models", "list", "--registry", str(registry)])
    assert version in listed.output and "*" not in listed.output
    promoted = runner.invoke(main, ["models", "promote", version[-8:], "--registry", str(registry)])
    assert promoted.exit_code == 0 and version in promoted.output
    shown = runner.invoke(main, ["models", "show", "--registry", str(registry)])
    assert orjson.loads(shown.output)["version"] == version


def test_a_tampered_model_fails_in_one_line(runner, registry_dir, tiny_history, tmp_path):
    version = (registry_dir / "CURRENT").read_text().strip()
    (registry_dir / version / "model.skops").write_bytes(b"garbage")
    events = write_jsonl(tmp_path / "e.jsonl", tiny_history[:10])
    result = runner.invoke(
        main,
        [
            "replay",
            str(events),
            "--model",
            str(registry_dir),
            "--alerts-out",
            str(tmp_path / "a.jsonl"),
        ],
    )
    assert result.exit_code != 0
    assert "checksum mismatch" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_rollback_without_history_is_a_clear_error(runner, registry_dir):
    result = runner.invoke(main, ["models", "rollback", "--registry", str(registry_dir)])
    assert result.exit_code != 0
    assert "nothing to roll back to" in result.output


def test_train_on_too_little_data_fails_cleanly(runner, tiny_history, tmp_path):
    events = write_jsonl(tmp_path / "few.jsonl", tiny_history[:20])
    result = runner.invoke(main, ["train", str(events), "--out", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code != 0
    assert "at least 100 valid reads" in result.output


def test_train_records_its_chain_and_replay_and_run_refuse_another(runner, tiny_history,
                                                                   tmp_path):
    events = write_jsonl(tmp_path / "history.jsonl", tiny_history[:6000])
    mapping = tmp_path / "map.yaml"
    mapping.write_text("resources:\n  - {match: '*', sensitivity: confidential}\n")
    key = tmp_path / "pseudonym.key"
    key.write_bytes(b"k" * 32)
    chain = ["--enrich", str(mapping), "--pseudonym-key-file", str(key)]
    registry = tmp_path / "reg"
    trained = runner.invoke(main, ["train", str(events), "--out", str(registry), "--quiet",
                                   "--promote", *chain])
    assert trained.exit_code == 0, trained.output
    meta = orjson.loads((registry / trained.output.strip() / "metadata.json").read_bytes())
    assert set(meta["enrichment"]) == {"fingerprint", "resource_rules", "principal_rules"}
    assert meta["pseudonymization"]["resources"] is False
    alerts = str(tmp_path / "a.jsonl")
    served = runner.invoke(main, ["replay", str(events), "--model", str(registry),
                                  "--alerts-out", alerts, *chain])
    assert served.exit_code == 0, served.output
    for args, says in (
        (["replay", str(events), "--model", str(registry), "--alerts-out", alerts,
          "--pseudonym-key-file", str(key)], "trained with enrichment"),
        (["run", "--model", str(registry), "--enrich", str(mapping)], "trained on pseudonyms"),
    ):
        refused = runner.invoke(main, args)
        assert refused.exit_code == 1
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
        assert says in refused.stderr
