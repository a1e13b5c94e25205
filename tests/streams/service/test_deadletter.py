"""Dead letters keep the original bytes exactly and say where they came from; the topic
keeps them briefly, and with a redaction they hold no identity."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest

from reachwatch.models.errors import ConfigError
from reachwatch.streams.ingest.pseudonyms import Pseudonymizer
from reachwatch.streams.service.deadletter import DROPPED, DeadLetter, Redaction, redaction_for
from reachwatch.streams.service.settings import load_settings
from reachwatch.streams.service.topics import define_topics


def test_round_trip_keeps_undecodable_bytes():
    letter = DeadLetter("not_utf8", "invalid UTF-8 at byte 0", "access-events", 2, 41,
                        b"\xff\x00raw", key=b"k", rejected_ts=1.0)
    back = DeadLetter.decode(letter.encode())
    assert back == letter


def test_json_names_source_and_reason_and_omits_text_for_binary():
    body = orjson.loads(DeadLetter("not_utf8", "x", "t", 0, 7, b"\xff").encode())
    assert body["source"] == {"topic": "t", "partition": 0, "offset": 7, "timestamp": None}
    assert body["reason"] == "not_utf8"
    assert "value_text" not in body


def test_text_preview_for_utf8_values():
    body = orjson.loads(DeadLetter("not_json", "x", "t", 0, 7, b"{oops").encode())
    assert body["value_text"] == "{oops"


def test_a_value_above_the_limit_keeps_a_prefix_its_size_and_digest():
    value = b'{"principal": "' + b"x" * 5000 + b'"}'
    letter = DeadLetter(reason="too_large", detail="big", topic="t", partition=0, offset=1,
                        value=value, value_limit=1000)
    out = letter.to_json()
    assert base64.b64decode(out["value"]) == value[:1000]
    assert out["value_truncated"] is True and out["value_bytes"] == len(value)
    assert out["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert len(letter.encode()) < 2 * 1000 + 1000  # bounded by the limit, not the input


def test_a_value_within_the_limit_is_kept_whole():
    letter = DeadLetter(reason="not_json", detail="x", topic="t", partition=0, offset=1,
                        value=b"{broken", value_limit=1000)
    out = letter.to_json()
    assert base64.b64decode(out["value"]) == b"{broken"
    assert "value_truncated" not in out


# -- retention: dead letters are raw input, kept briefly ---------------------------------
def _declared_config(settings) -> dict[str, Any]:
    """The topic config Faust would send in CreateTopics for the dead-letter topic."""
    app = faust.App("dlq-test", broker="kafka://127.0.0.1:9")
    topics = define_topics(app, settings)
    transport, producer = app.transport, app.producer
    created: dict[str, Any] = {}

    async def really_create(owner, client, topic, partitions, replication, **kwargs):
        config = transport._topic_config(kwargs.get("retention"), kwargs.get("compacting"),
                                         kwargs.get("deleting"))
        created[topic] = {**config, **(kwargs.get("config") or {})}

    async def no_metadata() -> None:
        return None

    async def unstarted_producer():
        return producer

    client = SimpleNamespace(force_metadata_update=no_metadata)
    transport._really_create_topic = really_create
    producer._ensure_producer = lambda: SimpleNamespace(client=client)
    app.maybe_start_producer = unstarted_producer
    asyncio.run(topics.dead_letters.declare())
    return created[settings.dlq_topic]


def test_the_dead_letter_topic_is_created_with_a_short_retention():
    settings = load_settings(environ={})
    assert settings.dlq_retention <= 7 * 86400
    config = _declared_config(settings)
    assert config["retention.ms"] == int(settings.dlq_retention * 1000)


def test_dead_letter_retention_is_configurable():
    settings = load_settings(environ={"REACHWATCH_DLQ_RETENTION": "3600"})
    assert _declared_config(settings)["retention.ms"] == 3_600_000
    with pytest.raises(ConfigError, match="dlq_retention"):
        load_settings(environ={"REACHWATCH_DLQ_RETENTION": "0"})


# -- redaction: no identity in a dead letter when pseudonymisation is on -----------------
ANA = "ana@example.com"
PAYROLL = "s3://hr/payroll.csv"
REJECTED = orjson.dumps({
    "schema_version": 1, "ts": "2026-01-01T00:00:00", "principal": ANA,
    "resource": PAYROLL, "principal_group": "finance-ana-team", "action": "read",
    "records": 12, "source": "laptop-of-ana", "nested": [{"email": ANA}],
})
NAMES = Pseudonymizer(b"k" * 32)


def _letter(value: bytes | None = REJECTED, **kwargs) -> DeadLetter:
    fields = {"reason": "bad_timestamp", "detail": "ts '2026-01-01T00:00:00' has no time zone",
              "topic": "access-events", "partition": 1, "offset": 9, "value": value,
              "key": ANA.encode(), "rejected_ts": 1.0, **kwargs}
    return DeadLetter(**fields)


@pytest.mark.parametrize(
    ("redaction", "secrets"),
    [
        (Redaction(), (ANA, "ana", PAYROLL, "payroll")),
        (Redaction.pseudonymising(NAMES), (ANA, "ana")),  # resources stay in clear, as in alerts
        (Redaction.pseudonymising(Pseudonymizer(b"k" * 32, resources=True)),
         (ANA, "ana", PAYROLL, "payroll")),
    ],
)
def test_a_redacted_letter_holds_no_identity_anywhere(redaction, secrets):
    raw = _letter(redaction=redaction).encode()
    assert orjson.loads(raw)["value_redacted"]["ts"] == "2026-01-01T00:00:00"  # a safe field
    for secret in secrets:
        assert secret.encode() not in raw, secret
        assert base64.b64encode(secret.encode()) not in raw, secret


def test_pseudonymising_keeps_the_pipelines_pseudonyms_and_the_shape():
    out = _letter(redaction=Redaction.pseudonymising(NAMES)).to_json()
    doc = out["value_redacted"]
    assert doc["principal"] == NAMES.principal(ANA)
    assert doc["resource"] == PAYROLL  # resources in clear when only principals are pseudonymised
    assert doc["action"] == "read" and doc["records"] == 12 and doc["schema_version"] == 1
    assert doc["principal_group"] == doc["source"] == doc["nested"][0]["email"] == DROPPED
    assert out["key"] is None and out["value"] is None and out["redacted"] is True
    assert out["value_sha256"] == hashlib.sha256(REJECTED).hexdigest()
    assert out["detail"] == f"ts {DROPPED} has no time zone"
    both = Redaction.pseudonymising(Pseudonymizer(b"k" * 32, resources=True))
    assert _letter(redaction=both).to_json()["value_redacted"]["resource"] == NAMES.resource(
        PAYROLL)


def test_dropping_replaces_both_sides():
    doc = _letter(redaction=Redaction()).to_json()["value_redacted"]
    assert doc["principal"] == doc["resource"] == DROPPED


def test_a_message_that_is_not_json_keeps_only_size_and_digest():
    raw = b"ana read payroll \xff"
    out = _letter(raw, reason="not_utf8", redaction=Redaction()).to_json()
    assert "value_redacted" not in out and "value_text" not in out and out["value"] is None
    assert out["value_bytes"] == len(raw)
    big = _letter(REJECTED, value_limit=10, redaction=Redaction()).to_json()
    assert "value_redacted" not in big  # a prefix of a document would not parse anyway


def test_redaction_is_on_only_when_pseudonymisation_is():
    assert redaction_for(None) is None
    principals = redaction_for(NAMES)
    assert principals.principal(ANA) == NAMES.principal(ANA)
    assert principals.resource(PAYROLL) == PAYROLL
    both = redaction_for(Pseudonymizer(b"k" * 32, resources=True))
    assert both.resource(PAYROLL) == NAMES.resource(PAYROLL)
    assert _letter(redaction=both).to_json()["value_redacted"]["principal"] == NAMES.principal(ANA)


def test_a_redacted_letter_is_sent_without_the_producers_key():
    assert _letter().wire_key == ANA.encode()
    assert _letter(redaction=Redaction.pseudonymising(NAMES)).wire_key is None
