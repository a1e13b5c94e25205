"""Bad messages land in the dead-letter topic with their reason; good ones still alert."""

from __future__ import annotations

import base64

import orjson
import pytest

pytestmark = pytest.mark.integration

BAD_MESSAGES = {
    "not_utf8": b"\xff\xfe\x00garbage",
    "not_json": b'{"ts": "2026-03-23T10:00:00Z", "principal": ',
    "not_object": b"[1, 2, 3]",
    "missing_field": b'{"ts": "2026-03-23T10:00:00Z", "principal": "ana"}',
    "bad_timestamp": b'{"ts": "yesterday", "principal": "ana", "resource": "hr.x"}',
    "negative_count": (
        b'{"ts": "2026-03-23T10:00:00Z", "principal": "ana", "resource": "hr.x", "records": -5}'
    ),
    "too_large": orjson.dumps({"ts": "2026-03-23T10:00:00Z", "principal": "ana",
                               "resource": "hr.x", "padding": "x" * 3000}),
}


def test_bad_messages_are_dead_lettered_with_reasons_and_good_ones_alert(
    company, service, start_worker, clients
):
    worker = start_worker(REACHWATCH_MAX_MESSAGE_BYTES="2048")
    worker.wait_assigned()
    good = company.lines_between(company.incident_start - 1800, company.incident_end)
    # Bad messages first, in the middle and at the end, through kafka-python.
    bad = list(BAD_MESSAGES.values())
    third = len(good) // 3
    clients.produce_kafka_python(
        service.input_topic, bad[:3] + good[:third] + bad[3:5] + good[third:] + bad[5:]
    )

    letters = clients.read_topic(service.dlq_topic, lambda r: len(r) >= len(bad), timeout=90)
    entity = company.incident["entity"]
    alerts = clients.read_topic(
        service.alerts_topic, lambda r: any(a["entity"] == entity for a in r), timeout=90
    )

    by_reason = {letter["reason"]: letter for letter in letters}
    assert sorted(by_reason) == sorted(BAD_MESSAGES)
    for reason, letter in by_reason.items():
        original = BAD_MESSAGES[reason]
        if reason == "too_large":  # above the limit only a prefix is kept, with the size
            assert base64.b64decode(letter["value"]) == original[:2048]
            assert letter["value_bytes"] == len(original) and letter["value_truncated"]
        else:
            assert base64.b64decode(letter["value"]) == original
        assert letter["source"]["topic"] == service.input_topic
        assert letter["source"]["offset"] >= 0
        assert letter["detail"]
    assert any(a["entity"] == entity and a["kind"] == "broad_audience" for a in alerts)
    metrics = worker.metrics()
    assert 'reachwatch_events_dead_lettered_total{reason="not_utf8"} 1.0' in metrics
