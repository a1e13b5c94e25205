"""The web views' guard, parameters and fail-closed start (views run in tests/integration)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reachwatch.models.errors import ConfigError
from reachwatch.streams.service.settings import load_settings
from reachwatch.streams.service.web import (
    authorized,
    guard_web_exposure,
    parse_limit,
    read_token,
)


def test_token_file_setting_is_read_from_env_as_a_path(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  s3cret-token\n")
    settings = load_settings(environ={"REACHWATCH_WEB_TOKEN_FILE": str(token_file)})
    assert settings.web_token_file == token_file
    assert read_token(settings.web_token_file) == b"s3cret-token"


def test_no_token_file_means_no_guard() -> None:
    assert read_token(load_settings(environ={}).web_token_file) is None
    assert authorized(None, None)


@pytest.mark.parametrize("content", [None, b" \n"])
def test_missing_or_empty_token_file_refuses_to_start(tmp_path: Path, content: bytes | None):
    path = tmp_path / "token"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError):
        read_token(path)


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret ", True),  # scheme is case-insensitive
        ("Bearer s3cre", False),
        ("Bearer s3cret2", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        ("", False),
        (None, False),
    ],
)
def test_only_the_exact_bearer_token_is_authorized(header: str | None, allowed: bool) -> None:
    assert authorized(header, b"s3cret") is allowed


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 50), ("", 50), ("10", 10), ("500", 50), ("-3", 0), ("x", 50)]
)
def test_limit_is_clamped_to_the_ring(raw: str | None, expected: int) -> None:
    assert parse_limit(raw, capacity=50) == expected


def test_ring_size_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        load_settings(environ={"REACHWATCH_RECENT_ALERTS": "0"})


# -- fail closed: no open web server beyond loopback ------------------------------------
def _settings(**env: str):
    return load_settings(environ={f"REACHWATCH_{k.upper()}": v for k, v in env.items()})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.1.2.3", "worker-1"])
def test_an_open_web_server_beyond_loopback_refuses_to_start(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError, match="without a bearer token.*--insecure-open-web"):
        guard_web_exposure(_settings(web_host=host))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(tmp_path: Path, host: str) -> None:
    guard_web_exposure(_settings(web_host=host))


def test_a_token_or_a_disabled_web_server_may_bind_any_address(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret")
    guard_web_exposure(_settings(web_host="0.0.0.0", web_token_file=str(token)))
    guard_web_exposure(_settings(web_host="0.0.0.0", web_enabled="0"))


def test_the_opt_out_starts_open_but_says_so(tmp_path: Path, caplog) -> None:
    settings = _settings(web_host="0.0.0.0", web_port="7001", insecure_open_web="1")
    with caplog.at_level(logging.WARNING, logger="reachwatch.streams.service.web"):
        guard_web_exposure(settings)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "INSECURE" in record.getMessage() and "0.0.0.0:7001" in record.getMessage()


def test_create_app_applies_the_guard(tiny_registry) -> None:
    from reachwatch.streams.service.app import create_app

    settings = load_settings({"registry_dir": tiny_registry.root, "web_host": "0.0.0.0"},
                             environ={})
    with pytest.raises(ConfigError, match="without a bearer token"):
        create_app(settings)


def _reachwatch_run(*args: str, env: dict[str, str] | None = None, cwd: Path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REACHWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "reachwatch.streams.cli", "run", *args],
        env={**environ, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--web-host", "0.0.0.0"), {}),
        ((), {"REACHWATCH_WEB_HOST": "0.0.0.0"}),
        # The opt-out must be asked for by name: a false value keeps the guard.
        ((), {"REACHWATCH_WEB_HOST": "0.0.0.0", "REACHWATCH_INSECURE_OPEN_WEB": "0"}),
    ],
)
def test_reachwatch_run_refuses_an_open_web_server_in_one_line(
    tiny_registry, tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    result = _reachwatch_run(
        "--model", str(tiny_registry.root), "--broker", "kafka://127.0.0.1:9", *args,
        env=env, cwd=tmp_path,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--insecure-open-web" in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_reachwatch_run_with_an_unreadable_token_file_fails_in_one_line(
    tiny_registry, tmp_path: Path
) -> None:
    result = _reachwatch_run(
        "--model", str(tiny_registry.root), "--broker", "kafka://127.0.0.1:9",
        env={"REACHWATCH_WEB_TOKEN_FILE": str(tmp_path / "absent")}, cwd=tmp_path,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "web token file" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
