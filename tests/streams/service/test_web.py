"""The web views' guard and parameters (the views themselves run in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reachwatch.models.errors import ConfigError
from reachwatch.streams.service.settings import load_settings
from reachwatch.streams.service.web import authorized, parse_limit, read_token


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
