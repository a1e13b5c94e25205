"""SIGKILL in the middle of a stream, then a restart: nothing skipped, nothing re-identified.

``test_stream_restart`` kills a worker that had gone idle (offsets committed) and shows its
window state comes back from the changelog. This one kills it while it is still reading,
forwarding and scoring, with the exposure incident's reads on both sides of the crash, and
checks the at-least-once contract end to end:

- every produced input event reached the scoring topics (read back from Kafka), and the
  group's committed offsets reached the end of the input and internal topics;
- every alert message ever published for an (entity, kind, revision) carries one
  ``alert_id``: replays duplicate an alert, they never open it again under a new id;
- the incident is caught although its reads straddle the crash.
"""

from __future__ import annotations

import signal
import time

import orjson
import pytest

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import parse_event, parse_timestamp
from reachwatch.models.registry import Registry
from reachwatch.streams.service.envelopes import decode_envelope

pytestmark = pytest.mark.integration

# Exact end offsets on tansu, so changelog recovery reads the whole state (settings.py).
ONE_RECORD_BATCHES = {"REACHWATCH_PRODUCER_MAX_BATCH_SIZE": "1"}

LEAD_IN_S = 3 * 3600  # history before the incident, so the stream is busy when it starts


def _ts(line: bytes) -> float:
    return parse_timestamp(orjson.loads(line)["ts"])


def _ts_of(alert: dict) -> float:
    return parse_timestamp(alert["ts"])


def offline_alerts(company, lines) -> dict[tuple[str, str, int], str]:
    """(entity, kind, revision) -> alert_id when the same events are scored in-process."""
    pipeline = Pipeline(Registry(company.registry).load(company.version))
    events = [parse_event(orjson.loads(line)) for line in lines]
    found = pipeline.observe_resources(events, {}).alerts
    return {(a.entity, a.kind, a.revision): a.alert_id for a in found}


def forwarded_events(records: list[dict]) -> list[bytes]:
    """Every event inside the envelopes read from an internal topic, as canonical JSON."""
    found = []
    for record in records:
        body = {key: value for key, value in record.items() if not key.startswith("_")}
        found.extend(orjson.dumps(f.event.to_json()) for f in decode_envelope(orjson.dumps(body)))
    return found


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (0 where none)."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        found = admin.list_group_offsets({group: tps}).get(group, {})
        return {tp.partition: max(0, found[tp].offset) if tp in found else 0 for tp in tps}
    finally:
        admin.close()
        consumer.close()


def true_ends(records: list[dict]) -> dict[int, int]:
    """End offset per partition from the records themselves.

    Not ListOffsets: tansu 0.6.0 answers it with the first offset of the partition's last
    batch + 1, short of the real end whenever that batch holds several records.
    """
    ends: dict[int, int] = {}
    for record in records:
        ends[record["_partition"]] = max(ends.get(record["_partition"], 0), record["_offset"] + 1)
    return ends


def wait_committed(service, topic: str, ends: dict[int, int], timeout: float = 90) -> int:
    """Messages of ``topic`` the group has not committed yet, once 0 or at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        committed = committed_offsets(service.broker.bootstrap, service.app_id, topic)
        # Past ``ends`` is at the end too: a read that stopped once every produced event was
        # seen may miss the replayed copies after it.
        behind = sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())
        if behind <= 0 or time.monotonic() > deadline:
            return behind
        time.sleep(1)


def test_sigkill_mid_stream_skips_no_event_and_keeps_alert_ids(
    company, service, start_worker, clients
):
    entity = company.incident["entity"]
    lines = company.lines_between(company.incident_start - LEAD_IN_S, company.incident_end)
    expected = offline_alerts(company, lines)
    assert (entity, "broad_audience", 0) in expected
    # Kill once the worker has read past the incident's first reads but (most likely)
    # before its alert: the incident's reads then straddle the crash.
    crash_at = next(i for i, line in enumerate(lines) if _ts(line) >= company.incident_start)
    crash_at += 10
    first_batch = lines[: crash_at + 200]  # more in flight than read when the kill lands

    first = start_worker(**ONE_RECORD_BATCHES)
    first.wait_assigned()
    clients.produce_confluent(service.input_topic, first_batch)
    first.wait_until(lambda s: s["messages_in"] >= crash_at, 90, "the crash point")
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    second = start_worker(**ONE_RECORD_BATCHES)
    clients.produce_confluent(service.input_topic, lines[len(first_batch):])
    second.wait_assigned()
    second.wait_until(lambda s: s["messages_in"] > 0, 90, "messages after the restart")

    # No input event skipped: each produced event is on both scoring topics at least once,
    # and the group committed every message of the input and the scoring topics.
    produced = {orjson.dumps(parse_event(orjson.loads(line)).to_json()) for line in lines}
    inputs = clients.read_topic(service.input_topic, lambda r: len(r) >= len(lines), timeout=60)
    assert len(inputs) == len(lines)
    assert wait_committed(service, service.input_topic, true_ends(inputs)) == 0
    for topic in (f"{service.app_id}-events-by-principal", f"{service.app_id}-events-by-resource"):
        envelopes = clients.read_topic(
            topic, lambda r: produced <= set(forwarded_events(r)), timeout=60
        )
        forwarded = forwarded_events(envelopes)
        missing = produced - set(forwarded)
        assert not missing, f"{len(missing)} of {len(produced)} events never reached {topic}"
        assert wait_committed(service, topic, true_ends(envelopes)) == 0, topic
        print(f"\n{topic}: {len(forwarded)} forwarded for {len(produced)} produced "
              f"({len(forwarded) - len(produced)} replayed after the SIGKILL)")

    alerts = clients.read_topic(
        service.alerts_topic,
        lambda r: any(a["entity"] == entity for a in r),
        timeout=60,
    )
    ids: dict[tuple[str, str, int], set[str]] = {}
    for alert in alerts:
        ids.setdefault((alert["entity"], alert["kind"], alert["revision"]), set()).add(
            alert["alert_id"]
        )
    assert all(len(found) == 1 for found in ids.values()), ids
    opening = [a for a in alerts if a["entity"] == entity and a["revision"] == 0]
    assert opening, f"the incident on {entity} was not caught across the crash"
    # Opened by a read of the incident itself (not by a replayed read from before it). Its id
    # need not equal the offline one: unkeyed input spreads one resource's reads over the
    # input partitions, so the stream may see them in another order than event time.
    assert company.incident_start <= _ts_of(opening[0]) <= company.incident_end
    duplicates = len(alerts) - len(ids)
    print(f"alerts: {len(alerts)} messages, {len(ids)} distinct, {duplicates} replayed duplicates")

