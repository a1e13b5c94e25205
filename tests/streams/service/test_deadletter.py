"""Dead letters keep the original bytes exactly and say where they came from."""

from __future__ import annotations

import base64
import hashlib

import orjson

from reachwatch.streams.service.deadletter import DeadLetter


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
