"""Messages: raw message bytes through the ingest chain to events, or the reason for the
dead-letter topic."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from reachwatch.models.records import DEFAULT_LIMITS, Limits
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.messages import MessageOutcome, read_message
from reachwatch.streams.service.settings import load_settings

NATIVE = get_adapter("native")
GOOD = {"ts": "2026-03-23T10:00:00Z", "principal": "ana", "resource": "hr.salaries"}


def read(raw: bytes | None, adapter: Any, max_bytes: int | None = None, *,
         limits: Limits = DEFAULT_LIMITS) -> MessageOutcome:
    if max_bytes is not None:
        limits = dataclasses.replace(limits, max_message_bytes=max_bytes)
    return read_message(raw, Chain(adapter, limits=limits))


def test_valid_message_becomes_one_event():
    outcome = read(orjson.dumps(GOOD), NATIVE, 10_000)
    assert outcome.rejected is None
    assert [e.principal for e in outcome.events] == ["ana"]


def test_oversized_message_is_rejected_before_decoding():
    outcome = read(orjson.dumps({**GOOD, "pad": "x" * 500}), NATIVE, 100)
    assert outcome.rejected is not None and outcome.rejected.code == "too_large"
    assert outcome.events == []


def test_tombstone_is_rejected():
    assert read(None, NATIVE, 100).rejected.code == "not_json"


def test_undecodable_bytes_are_not_utf8():
    assert read(b"\xff\xfe", NATIVE, 100).rejected.code == "not_utf8"


def test_schema_error_keeps_its_code():
    outcome = read(orjson.dumps({"ts": GOOD["ts"], "principal": "ana"}), NATIVE, 10_000)
    assert outcome.rejected.code == "missing_field"


class _TwoRecords:
    """An envelope adapter whose second record is malformed."""

    name = "two"

    def records(self, document):
        return document["Records"]

    def event(self, record, limits):
        return NATIVE.event(record, limits)


def test_good_records_survive_a_bad_sibling_and_the_message_is_still_rejected():
    envelope = {"Records": [GOOD, {"ts": GOOD["ts"]}]}
    outcome = read(orjson.dumps(envelope), _TwoRecords(), 10_000)
    assert len(outcome.events) == 1
    assert outcome.bad_records == 1
    assert outcome.rejected.code == "missing_field"
    assert outcome.rejected.detail.startswith("record 2 of 2")


class _Broken:
    name = "broken"

    def records(self, document):
        raise KeyError("Records")

    def event(self, record, limits):  # pragma: no cover - never reached
        return None


def test_adapter_bug_becomes_adapter_error_not_a_crash():
    outcome = read(orjson.dumps(GOOD), _Broken(), 10_000)
    assert outcome.rejected.code == "adapter_error"
    assert "KeyError" in outcome.rejected.detail


# --- size limits (records.Limits, from the service settings) ---------------------------


def test_lowered_id_limit_from_settings_rejects_what_the_default_admits():
    raw = orjson.dumps({**GOOD, "principal": "p" * 40})
    assert read(raw, NATIVE).rejected is None
    limits = load_settings(environ={"REACHWATCH_MAX_ID_LENGTH": "16"}).limits
    outcome = read(raw, NATIVE, limits=limits)
    assert outcome.events == []
    assert (outcome.rejected.code, outcome.rejected.detail) == (
        "too_large",
        "principal is 40 characters, limit 16",
    )


def test_lowered_nesting_limit_from_settings_rejects_what_the_default_admits():
    raw = orjson.dumps({**GOOD, "extra": {"a": {"b": {"c": {}}}}})
    assert read(raw, NATIVE).rejected is None
    limits = load_settings(environ={"REACHWATCH_MAX_NESTING": "3"}).limits
    outcome = read(raw, NATIVE, limits=limits)
    assert outcome.rejected.code == "too_large"
    assert outcome.rejected.detail == "JSON nested deeper than 3 levels"


def test_message_byte_limit_is_the_chains():
    raw = orjson.dumps(GOOD)
    assert read(raw, NATIVE, limits=Limits(max_message_bytes=len(raw))).rejected is None
    outcome = read(raw, NATIVE, limits=Limits(max_message_bytes=len(raw) - 1))
    assert outcome.rejected.code == "too_large"
    assert outcome.rejected.detail == f"message is {len(raw)} bytes, limit {len(raw) - 1}"


def test_lowered_limit_reaches_fields_mapped_by_a_foreign_adapter():
    record = {
        "eventVersion": "1.08",
        "eventTime": "2024-03-01T10:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/ana"},
        "requestParameters": {"bucketName": "hr-private", "key": "2024/salaries.csv"},
    }
    raw = orjson.dumps({"Records": [record]})
    cloudtrail = get_adapter("cloudtrail")
    assert [e.resource for e in read(raw, cloudtrail).events] == [
        "s3://hr-private/2024/salaries.csv"
    ]
    outcome = read(raw, cloudtrail, limits=Limits(max_id_length=20))
    assert outcome.rejected.code == "too_large"
    # The adapter's note on where the field came from survives.
    assert outcome.rejected.detail == "principal is 34 characters, limit 20 (from userIdentity.arn)"
