"""The native schema: every rejection reason, timestamps, and the wire round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reachwatch.models.errors import ConfigError, SchemaError
from reachwatch.models.records import (
    MAX_COUNT,
    MAX_FIELD_LENGTH,
    MAX_ID_LENGTH,
    MAX_NESTING,
    REASONS,
    AccessEvent,
    Limits,
    decode_json,
    parse_event,
    parse_timestamp,
)

T = "2026-01-05T09:00:00Z"
T_EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC).timestamp()


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ts": T, "principal": "ana", "resource": "hr.salaries"}
    base.update(fields)
    return {name: value for name, value in base.items() if value is not ...}


def reason(obj: Any) -> str:
    with pytest.raises(SchemaError) as caught:
        parse_event(obj)
    return caught.value.code


def test_minimal_event_gets_the_documented_defaults() -> None:
    parsed = parse_event(event())
    assert parsed == AccessEvent(ts=T_EPOCH, principal="ana", resource="hr.salaries")
    assert (parsed.principal_type, parsed.sensitivity, parsed.action, parsed.outcome) == (
        "human",
        "internal",
        "read",
        "allowed",
    )


def test_to_json_round_trips_through_parse_event() -> None:
    full = parse_event(
        event(
            principal_type="Service",
            principal_group="etl",
            resource_group="hr",
            sensitivity="RESTRICTED",
            action="Query",
            records=10,
            bytes=2048,
            outcome="denied",
            source="10.0.0.1",
        )
    )
    assert full.to_json()["schema_version"] == 1
    assert parse_event(full.to_json()) == full
    assert (full.principal_type, full.sensitivity, full.action) == (
        "service",
        "restricted",
        "query",
    )


# --- decode_json reasons -------------------------------------------------------------


def test_invalid_utf8_is_not_utf8() -> None:
    with pytest.raises(SchemaError) as caught:
        decode_json(b'{"principal": "\xff"}')
    assert caught.value.code == "not_utf8"
    assert "byte 15" in caught.value.detail


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"a": 1}{"b": 2}', "[1,"])
def test_malformed_json_is_not_json(raw: bytes | str) -> None:
    with pytest.raises(SchemaError) as caught:
        decode_json(raw)
    assert caught.value.code == "not_json"


def test_nesting_beyond_the_parser_limit_is_not_json() -> None:
    with pytest.raises(SchemaError) as caught:
        decode_json(b"[" * 5000 + b"]" * 5000)
    assert caught.value.code == "not_json"


def test_decode_json_accepts_str_and_bytes() -> None:
    assert decode_json('{"a": 1}') == decode_json(b'{"a": 1}') == {"a": 1}


# --- parse_event reasons -------------------------------------------------------------


@pytest.mark.parametrize("obj", [[1, 2], "text", 3, None])
def test_non_object_is_not_object(obj: Any) -> None:
    assert reason(obj) == "not_object"


@pytest.mark.parametrize("field", ["ts", "principal", "resource"])
def test_missing_required_field(field: str) -> None:
    assert reason(event(**{field: ...})) == "missing_field"
    assert reason(event(**{field: None})) == "missing_field"


@pytest.mark.parametrize("field", ["ts", "principal", "resource"])
def test_blank_required_field_is_empty_field(field: str) -> None:
    assert reason(event(**{field: "   "})) == "empty_field"


def test_blank_optional_field_is_absent() -> None:
    assert parse_event(event(principal_group="  ")).principal_group is None


@pytest.mark.parametrize(
    "fields",
    [
        {"principal": 42},
        {"resource": ["a"]},
        {"principal_group": {"x": 1}},
        {"ts": True},
        {"ts": {"seconds": 1}},
        {"records": "10"},
        {"bytes": True},
        {"records": 1.5},
    ],
)
def test_wrong_type(fields: dict[str, Any]) -> None:
    assert reason(event(**fields)) == "wrong_type"


def test_overlong_identifier_is_too_large() -> None:
    assert parse_event(event(resource="r" * MAX_ID_LENGTH)).resource == "r" * MAX_ID_LENGTH
    assert reason(event(resource="r" * (MAX_ID_LENGTH + 1))) == "too_large"
    assert reason(event(principal_group="g" * (MAX_FIELD_LENGTH + 1))) == "too_large"


@pytest.mark.parametrize(
    "fields",
    [
        {"sensitivity": "secret"},
        {"principal_type": "robot"},
        {"outcome": "maybe"},
        {"principal": "ana\x00"},
        {"resource": "a\nb"},
        {"source": "1.2.3.4\u2028evil"},
    ],
)
def test_bad_value(fields: dict[str, Any]) -> None:
    assert reason(event(**fields)) == "bad_value"


def test_non_printable_but_legitimate_characters_are_kept() -> None:
    # No-break spaces and emoji joiners occur in real SharePoint/OneDrive file names.
    name = "Q3\u00a0Report \U0001f468\u200d\U0001f469.xlsx"
    assert parse_event(event(resource=name)).resource == name


@pytest.mark.parametrize("field", ["records", "bytes"])
def test_negative_count(field: str) -> None:
    assert reason(event(**{field: -1})) == "negative_count"


@pytest.mark.parametrize("field", ["records", "bytes"])
def test_absurd_count(field: str) -> None:
    assert parse_event(event(**{field: MAX_COUNT})).__getattribute__(field) == MAX_COUNT
    assert reason(event(**{field: MAX_COUNT + 1})) == "absurd_count"


def test_whole_float_counts_become_integers() -> None:
    parsed = parse_event(event(bytes=500.0))
    assert parsed.bytes == 500 and isinstance(parsed.bytes, int)


@pytest.mark.parametrize(
    "ts",
    [
        "2026-01-05T09:00:00",  # no zone
        "yesterday",
        "1e400",  # a number string that is not finite
        "x" * 65,
        "1989-12-31T23:59:59Z",  # before 1990
        4102444801,  # after 2100
        float("inf"),
    ],
)
def test_bad_timestamp(ts: Any) -> None:
    assert reason(event(ts=ts)) == "bad_timestamp"


def test_every_reason_a_native_parse_can_give_is_covered() -> None:
    # adapter_error is the adapters' own code; every other reason is exercised above.
    produced = {
        "not_utf8",
        "not_json",
        "not_object",
        "too_large",
        "missing_field",
        "empty_field",
        "wrong_type",
        "bad_value",
        "bad_timestamp",
        "negative_count",
        "absurd_count",
    }
    assert set(REASONS) - produced == {"adapter_error"}


# --- timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        T_EPOCH,
        int(T_EPOCH),
        T_EPOCH * 1000,  # epoch milliseconds
        str(int(T_EPOCH)),
        str(int(T_EPOCH * 1000)),
        "2026-01-05T09:00:00Z",
        "2026-01-05T09:00:00z",
        "2026-01-05T09:00:00+00:00",
        "2026-01-05T10:00:00+01:00",
        "2026-01-05T04:00:00-05:00",
        "2026-01-05 09:00:00Z",
        "2026-01-05T09:00:00.000Z",
    ],
)
def test_timestamps_in_every_accepted_form_agree(value: Any) -> None:
    assert parse_timestamp(value) == pytest.approx(T_EPOCH)


def test_fractional_seconds_are_kept() -> None:
    assert parse_timestamp("2026-01-05T09:00:00.250Z") == pytest.approx(T_EPOCH + 0.25)
    assert parse_timestamp(T_EPOCH * 1000 + 250) == pytest.approx(T_EPOCH + 0.25)


def test_timestamp_error_names_the_field() -> None:
    with pytest.raises(SchemaError) as caught:
        parse_timestamp("nope", field="eventTime")
    assert caught.value.detail.startswith("eventTime ")


# --- configurable limits --------------------------------------------------------------


def too_large_detail(obj: Any, limits: Limits) -> str:
    with pytest.raises(SchemaError) as caught:
        parse_event(obj, limits)
    assert caught.value.code == "too_large"
    return caught.value.detail


def nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def test_lowered_id_limit_rejects_what_the_default_accepts() -> None:
    obj = event(principal="p" * 100)
    assert parse_event(obj).principal == "p" * 100
    detail = too_large_detail(obj, Limits(max_id_length=50))
    assert detail == "principal is 100 characters, limit 50"


def test_lowered_field_limit_rejects_what_the_default_accepts() -> None:
    obj = event(source="s" * 40)
    assert parse_event(obj).source == "s" * 40
    assert too_large_detail(obj, Limits(max_field_length=16)) == "source is 40 characters, limit 16"


def test_raised_id_limit_accepts_what_the_default_rejects() -> None:
    long_resource = "r" * (MAX_ID_LENGTH + 1)
    assert reason(event(resource=long_resource)) == "too_large"
    raised = Limits(max_id_length=2 * MAX_ID_LENGTH)
    assert parse_event(event(resource=long_resource), raised).resource == long_resource


def test_lowered_field_limit_leaves_choice_fields_to_their_vocabulary() -> None:
    parsed = parse_event(event(sensitivity="confidential"), Limits(max_field_length=4))
    assert parsed.sensitivity == "confidential"


def test_lowered_nesting_limit_rejects_what_the_default_accepts() -> None:
    assert decode_json(nested(10))
    assert decode_json(nested(5), limits=Limits(max_nesting=5))
    with pytest.raises(SchemaError) as caught:
        decode_json(nested(6), limits=Limits(max_nesting=5))
    assert (caught.value.code, caught.value.detail) == (
        "too_large",
        "JSON nested deeper than 5 levels",
    )


def test_default_nesting_limit_is_the_documented_constant() -> None:
    assert decode_json(nested(MAX_NESTING))
    with pytest.raises(SchemaError) as caught:
        decode_json(nested(MAX_NESTING + 1))
    assert caught.value.detail == f"JSON nested deeper than {MAX_NESTING} levels"


@pytest.mark.parametrize("bad", [{"max_nesting": 0}, {"max_id_length": -1},
                                 {"max_field_length": True}, {"max_message_bytes": 1.5}])
def test_limits_must_be_positive_integers(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        Limits(**bad)
