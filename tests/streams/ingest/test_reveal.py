"""Reveal: a pseudonym maps back only with the key, among candidates, and is audit-logged."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
from click.testing import CliRunner

from reachwatch.streams.cli.main import main
from reachwatch.streams.ingest.pseudonyms import Pseudonymizer, new_key
from reachwatch.streams.ingest.reveal import audit_reveal, reveal

KEY = b"0123456789abcdef0123456789abcdef"


def test_reveal_finds_the_candidate_and_counts_tries() -> None:
    names = Pseudonymizer(KEY)
    assert reveal(names.principal("bo"), names, ["ana", "bo", "cy"]) == ("bo", 2)
    assert reveal(names.resource("bo"), names, ["ana", "bo"]) == ("bo", 2)
    assert reveal(names.principal("zed"), names, ["ana", "bo"]) == (None, 2)


def test_audit_line_names_who_and_what_but_never_the_identity(tmp_path: Path) -> None:
    log = tmp_path / "audit" / "reveal.jsonl"
    names = Pseudonymizer(KEY)
    pseudonym = names.principal("ana.secret")
    audit_reveal(log, who="analyst", pseudonym=pseudonym, found=True, key_id=names.fingerprint)
    audit_reveal(log, who="analyst", pseudonym=pseudonym, found=False, key_id=names.fingerprint)
    rows = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert [(r["who"], r["pseudonym"], r["result"]) for r in rows] == [
        ("analyst", pseudonym, "found"),
        ("analyst", pseudonym, "not_found"),
    ]
    assert b"ana.secret" not in log.read_bytes()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_cli_reveal_from_an_id_list_logs_and_says_so(tmp_path: Path) -> None:
    key = tmp_path / "k"
    new_key(key)
    names = Pseudonymizer.from_key_file(key)
    ids = tmp_path / "directory.txt"
    ids.write_text("ana\nbo.lindqvist\ncy\n")
    log = tmp_path / "audit.jsonl"
    runner = CliRunner()
    args = ["--key-file", str(key), "--candidates", str(ids), "--audit-log", str(log)]
    found = runner.invoke(main, ["reveal", names.principal("bo.lindqvist"), *args])
    assert found.exit_code == 0, found.output
    assert found.stdout.strip() == "bo.lindqvist"
    assert f"logged to {log}" in found.stderr
    missing = runner.invoke(main, ["reveal", names.principal("nobody"), *args])
    assert missing.exit_code == 1
    assert "matches none of 3 candidates" in missing.stderr
    assert [orjson.loads(x)["result"] for x in log.read_bytes().splitlines()] == [
        "found",
        "not_found",
    ]
    assert b"bo.lindqvist" not in log.read_bytes()


def test_cli_reveal_rejects_what_is_not_a_pseudonym(tmp_path: Path) -> None:
    key = tmp_path / "k"
    new_key(key)
    ids = tmp_path / "ids.txt"
    ids.write_text("ana\n")
    result = CliRunner().invoke(
        main,
        ["reveal", "ana", "--key-file", str(key), "--candidates", str(ids)],
    )
    assert result.exit_code == 2
    assert "is not a pseudonym" in result.output
