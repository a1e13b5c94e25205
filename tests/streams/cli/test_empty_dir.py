"""Every command started in an empty directory: one line, no traceback, the right exit code.

A first-time user runs commands where nothing exists yet (no ``var/``, no model, no key).
What a command needs and can make, it makes (a worker's data dir with its parents); what
it cannot, it names in one ``Error:`` line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from reachwatch.streams.cli.main import main

EVENT = {"ts": 1_772_409_600, "principal": "ana", "resource": "hr/x"}


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    workdir = tmp_path / "empty"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    for name in ("REACHWATCH_REGISTRY_DIR", "REACHWATCH_DATA_DIR", "REACHWATCH_MODEL_REF",
                 "REACHWATCH_PSEUDONYM_KEY_FILE", "REACHWATCH_PSEUDONYMIZE", "REACHWATCH_ENRICH"):
        monkeypatch.delenv(name, raising=False)
    return workdir


def one_error_line(args: list[str], code: int) -> str:
    result = CliRunner().invoke(main, args)
    # Any exception but SystemExit is a traceback for the user.
    assert isinstance(result.exception, SystemExit), (args, result.exception)
    assert result.exit_code == code, (args, result.output)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, (args, result.stderr)
    assert "Traceback" not in result.output
    return errors[0]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["train"], 2, "Missing argument 'FILES...'"),
        (["train", "events.jsonl"], 1, "need at least 100 valid reads"),
        (["replay", "events.jsonl", "--alerts-out", "alerts.jsonl"], 1,
         "no model versions in var/models"),
        (["replay", "events.jsonl", "--alerts-out", "a.jsonl", "--model", "var/none"], 2,
         "var/none does not exist"),
        (["replay", "events.jsonl", "--alerts-out", "a.jsonl", "--pseudonymize", "principals"],
         2, "--pseudonymize needs --pseudonym-key-file"),
        (["evaluate", "labels.json", "alerts.jsonl"], 2, "does not exist"),
        (["simulate"], 2, "Missing option '--out'"),
        (["models", "list"], 1, "no model versions in var/models"),
        (["models", "show"], 1, "no model versions in var/models"),
        (["models", "promote", "v1"], 1, "unknown model version 'v1'"),
        (["models", "rollback"], 1, "nothing to roll back to"),
        (["reveal", "p_aaaaaaaaaaaaaaaaaaaa", "--key-file", "k", "--candidates", "c"], 2,
         "does not exist"),
        (["run"], 1, "no model versions in var/models"),
        (["run", "--pseudonymize", "resources"], 1, "pseudonymize needs a pseudonym key file"),
        (["run", "--enrich", "map.yaml"], 2, "does not exist"),
        (["broker", "--binary", "no-such-tansu"], 1, "no-such-tansu"),
    ],
)
def test_a_command_in_an_empty_directory_fails_in_one_line(
    empty_dir: Path, args: list[str], code: int, says: str
) -> None:
    (empty_dir / "events.jsonl").write_bytes(orjson.dumps(EVENT) + b"\n")
    assert says in one_error_line(args, code)


def test_making_a_key_in_an_empty_directory_creates_its_folder(empty_dir: Path) -> None:
    result = CliRunner().invoke(main, ["pseudonymize-key", "new", "secrets/pseudonym.key"])
    assert result.exit_code == 0, result.output
    assert (empty_dir / "secrets" / "pseudonym.key").is_file()


@pytest.fixture
def registry_here(empty_dir: Path, tiny_registry) -> Path:
    """The tiny model at ``var/models`` of the otherwise empty directory."""
    shutil.copytree(tiny_registry.root, empty_dir / "var" / "models")
    return empty_dir / "var" / "models"


def test_run_names_a_file_in_the_way_of_its_data_dir(empty_dir: Path, registry_here: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (empty_dir / "blocker").write_text("")
    monkeypatch.setenv("REACHWATCH_DATA_DIR", "blocker")
    assert one_error_line(["run"], 1) == (
        "Error: cannot create the data dir blocker: a file is in the way"
    )
    monkeypatch.setenv("REACHWATCH_DATA_DIR", "blocker/worker")
    assert one_error_line(["run"], 1) == (
        "Error: cannot create the data dir blocker/worker: Not a directory"
    )


@pytest.mark.skipif(sys.platform != "linux" or __import__("os").geteuid() == 0,
                    reason="root writes to read-only directories")
def test_run_names_a_read_only_data_dir(empty_dir: Path, registry_here: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    locked = empty_dir / "locked"
    locked.mkdir(mode=0o555)
    monkeypatch.setenv("REACHWATCH_DATA_DIR", "locked/worker")
    assert one_error_line(["run"], 1) == (
        "Error: cannot create the data dir locked/worker: Permission denied"
    )


def test_run_refuses_a_model_trained_through_another_chain(empty_dir: Path, registry_here: Path,
                                                           tmp_path: Path) -> None:
    key = tmp_path / "pseudonym.key"
    key.write_bytes(b"k" * 32)
    line = one_error_line(["run", "--pseudonym-key-file", str(key), "--pseudonymize",
                           "resources"], 1)
    assert "trained on raw resource names" in line
    assert not (empty_dir / "var" / "worker").exists()  # refused before anything started


def test_the_installed_command_prints_no_traceback(empty_dir: Path) -> None:
    # The real entry point in a real process, as a user meets it.
    done = subprocess.run([sys.executable, "-m", "reachwatch.streams.cli", "run"],
                          cwd=empty_dir, capture_output=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == ["Error: no model versions in var/models"]
    assert done.stdout == b""
