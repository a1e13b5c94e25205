"""Service settings: defaults, REACHWATCH_* env, flags on top, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from reachwatch.models.errors import ConfigError
from reachwatch.models.records import Limits
from reachwatch.streams.service.settings import load_settings


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
    {"REACHWATCH_CHECKPOINT_INTERVAL": "-1"},
])
def test_invalid_settings_are_config_errors(env):
    with pytest.raises(ConfigError):
        load_settings(environ=env)


def test_the_checkpoint_interval_comes_from_env_and_zero_means_every_step():
    assert load_settings(environ={}).checkpoint_interval == 5.0
    assert load_settings(environ={"REACHWATCH_CHECKPOINT_INTERVAL": "0"}).checkpoint_interval == 0


def test_unknown_flag_is_rejected():
    with pytest.raises(ConfigError):
        load_settings({"no_such_knob": 1}, environ={})


def test_size_limits_come_from_env_into_one_limits_value():
    env = {"REACHWATCH_MAX_MESSAGE_BYTES": "4096", "REACHWATCH_MAX_ID_LENGTH": "64",
           "REACHWATCH_MAX_FIELD_LENGTH": "32", "REACHWATCH_MAX_NESTING": "8"}
    assert load_settings(environ=env).limits == Limits(
        max_message_bytes=4096, max_id_length=64, max_field_length=32, max_nesting=8
    )


def test_size_limits_default_to_the_schema_defaults():
    assert load_settings(environ={}).limits == Limits()


def test_size_limit_flag_overrides_env():
    settings = load_settings({"max_nesting": 16}, environ={"REACHWATCH_MAX_NESTING": "8"})
    assert settings.limits.max_nesting == 16


@pytest.mark.parametrize("name", ["MAX_ID_LENGTH", "MAX_FIELD_LENGTH", "MAX_NESTING"])
@pytest.mark.parametrize("raw", ["0", "-5", "many", "1.5", ""])
def test_bad_size_limit_is_a_one_line_error_naming_the_setting(name, raw):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={f"REACHWATCH_{name}": raw})
    message = str(caught.value)
    assert name.lower() in message.lower()
    assert "\n" not in message


def test_the_ingest_chain_comes_from_env_and_flags(tmp_path):
    env = {"REACHWATCH_ENRICH": "map.yaml", "REACHWATCH_PSEUDONYM_KEY_FILE": "k.key",
           "REACHWATCH_PSEUDONYMIZE": "resources"}
    settings = load_settings(environ=env)
    assert (settings.enrich, settings.pseudonym_key_file, settings.pseudonymize) == (
        Path("map.yaml"), Path("k.key"), "resources")
    flagged = load_settings({"pseudonymize": "principals"}, environ=env)
    assert flagged.pseudonymize == "principals"
    assert load_settings(environ={}).enrich is None


@pytest.mark.parametrize(("env", "says"), [
    ({"REACHWATCH_PSEUDONYMIZE": "everything", "REACHWATCH_PSEUDONYM_KEY_FILE": "k"},
     "pseudonymize must be one of principals|resources"),
    ({"REACHWATCH_PSEUDONYMIZE": "principals"}, "needs a pseudonym key file"),
])
def test_a_pseudonymize_setting_that_cannot_work_is_refused(env, says):
    with pytest.raises(ConfigError, match=says):
        load_settings(environ=env)
