"""Service settings: defaults, REACHWATCH_* env, flags on top, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from reachwatch.streams.errors import ConfigError
from reachwatch.streams.settings import load_settings


def test_env_overrides_defaults_and_flags_override_env():
    env = {"REACHWATCH_BATCH_SIZE": "50", "REACHWATCH_ALERTS_TOPIC": "from-env"}
    settings = load_settings({"alerts_topic": "from-flag", "dlq_topic": None}, environ=env)
    assert settings.batch_size == 50
    assert settings.alerts_topic == "from-flag"
    assert settings.dlq_topic == "access-events-dlq"


def test_topic_list_paths_and_optional_floats_are_converted():
    env = {"REACHWATCH_INPUT_TOPICS": "a, b", "REACHWATCH_REGISTRY_DIR": "/srv/models",
           "REACHWATCH_ALLOWED_LATENESS": "120", "REACHWATCH_WEB_ENABLED": "false"}
    settings = load_settings(environ=env)
    assert settings.input_topics == ("a", "b")
    assert settings.registry_dir == Path("/srv/models")
    assert settings.allowed_lateness == 120.0
    assert settings.web_enabled is False


def test_defaults_bind_web_to_loopback_and_short_session_timeout():
    settings = load_settings(environ={})
    assert settings.web_host == "127.0.0.1"
    assert settings.broker_session_timeout < 10


@pytest.mark.parametrize("env", [
    {"REACHWATCH_BATCH_SIZE": "many"},
    {"REACHWATCH_BATCH_SIZE": "0"},
    {"REACHWATCH_SECURITY_PROTOCOL": "SASL_SSL"},  # no username
    {"REACHWATCH_SASL_MECHANISM": "GSSAPI"},
])
def test_invalid_settings_are_config_errors(env):
    with pytest.raises(ConfigError):
        load_settings(environ=env)


def test_unknown_flag_is_rejected():
    with pytest.raises(ConfigError):
        load_settings({"no_such_knob": 1}, environ={})
