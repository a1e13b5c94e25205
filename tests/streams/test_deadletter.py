"""Dead letters keep the original bytes exactly and say where they came from."""

from __future__ import annotations

import orjson

from reachwatch.streams.deadletter import DeadLetter


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
