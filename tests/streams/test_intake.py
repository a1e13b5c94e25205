"""Intake: raw message bytes to events, or the reason for the dead-letter topic."""

from __future__ import annotations

import orjson

from reachwatch.streams.adapters import get_adapter
from reachwatch.streams.intake import admit

NATIVE = get_adapter("native")
GOOD = {"ts": "2026-03-23T10:00:00Z", "principal": "ana", "resource": "hr.salaries"}


def test_valid_message_becomes_one_event():
    intake = admit(orjson.dumps(GOOD), NATIVE, 10_000)
    assert intake.rejected is None
    assert [e.principal for e in intake.events] == ["ana"]


def test_oversized_message_is_rejected_before_decoding():
    intake = admit(orjson.dumps({**GOOD, "pad": "x" * 500}), NATIVE, 100)
    assert intake.rejected is not None and intake.rejected.code == "too_large"
    assert intake.events == []


def test_tombstone_is_rejected():
    assert admit(None, NATIVE, 100).rejected.code == "not_json"


def test_undecodable_bytes_are_not_utf8():
    assert admit(b"\xff\xfe", NATIVE, 100).rejected.code == "not_utf8"


def test_schema_error_keeps_its_code():
    intake = admit(orjson.dumps({"ts": GOOD["ts"], "principal": "ana"}), NATIVE, 10_000)
    assert intake.rejected.code == "missing_field"


class _TwoRecords:
    """An envelope adapter whose second record is malformed."""

    name = "two"

    def records(self, document):
        return document["Records"]

    def event(self, record):
        return NATIVE.event(record)


def test_good_records_survive_a_bad_sibling_and_the_message_is_still_rejected():
    envelope = {"Records": [GOOD, {"ts": GOOD["ts"]}]}
    intake = admit(orjson.dumps(envelope), _TwoRecords(), 10_000)
    assert len(intake.events) == 1
    assert intake.bad_records == 1
    assert intake.rejected.code == "missing_field"
    assert intake.rejected.detail.startswith("record 2 of 2")


class _Broken:
    name = "broken"

    def records(self, document):
        raise KeyError("Records")

    def event(self, record):  # pragma: no cover - never reached
        return None


def test_adapter_bug_becomes_adapter_error_not_a_crash():
    intake = admit(orjson.dumps(GOOD), _Broken(), 10_000)
    assert intake.rejected.code == "adapter_error"
    assert "KeyError" in intake.rejected.detail
