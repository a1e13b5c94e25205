"""SIGKILL in the middle of a stream, then a restart: nothing skipped, nothing re-identified.

``test_stream_restart`` kills a worker that had gone idle (offsets committed) and shows its
window state comes back from the changelog. This one kills it while it is still reading,
forwarding and scoring, with the exposure incident's reads on both sides of the crash, and
checks the at-least-once contract end to end:

- every produced input event reached the scoring topics (read back from Kafka), and the
  group's committed offsets reached the end of the input and internal topics;
- every alert message ever published for an (entity, kind, revision) carries one
  ``alert_id``, the id the same events give offline: replays duplicate, never re-identify;
- the incident is caught although its reads straddle the crash.
"""

from __future__ import annotations

import signal
import time

import orjson
import pytest

from reachwatch.models.registry import Registry
from reachwatch.streams.pipeline import Pipeline
from reachwatch.streams.records import parse_event, parse_timestamp

pytestmark = pytest.mark.integration

LEAD_IN_S = 3 * 3600  # history before the incident, so the stream is busy when it starts


def _ts(line: bytes) -> float:
    return parse_timestamp(orjson.loads(line)["ts"])


def offline_alerts(company, lines) -> dict[tuple[str, str, int], str]:
    """(entity, kind, revision) -> alert_id when the same events are scored in-process."""
    pipeline = Pipeline(Registry(company.registry).load(company.version))
    events = [parse_event(orjson.loads(line)) for line in lines]
    found = pipeline.observe_resources(events, {}).alerts
    return {(a.entity, a.kind, a.revision): a.alert_id for a in found}


def committed_lag(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """Per topic: end offset minus the group's committed offset, summed over partitions."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        by_topic = {
            topic: [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            for topic in topics
        }
        wanted = [tp for tps in by_topic.values() for tp in tps]
        committed = admin.list_group_offsets({group: wanted}).get(group, {})
        ends = consumer.end_offsets(wanted)
        return {
            topic: sum(
                ends[tp] - max(0, committed[tp].offset if tp in committed else 0) for tp in tps
            )
            for topic, tps in by_topic.items()
        }
    finally:
        admin.close()
        consumer.close()


def wait_committed(service, topics: list[str], timeout: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    lag: dict[str, int] = {}
    while time.monotonic() < deadline:
        lag = committed_lag(service.broker.bootstrap, service.app_id, topics)
        if not any(lag.values()):
            break
        time.sleep(1)
    return lag


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

    first = start_worker()
    first.wait_assigned()
    clients.produce_confluent(service.input_topic, first_batch)
    first.wait_until(lambda s: s["messages_in"] >= crash_at, 90, "the crash point")
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    second = start_worker()
    clients.produce_confluent(service.input_topic, lines[len(first_batch):])
    second.wait_assigned()
    second.wait_until(lambda s: s["messages_in"] > 0, 90, "messages after the restart")

    internal = [f"{service.app_id}-events-by-principal", f"{service.app_id}-events-by-resource"]
    lag = wait_committed(service, [service.input_topic, *internal], timeout=90)
    assert not any(lag.values()), f"uncommitted messages left: {lag}"

    # No input event skipped: each produced event is on both scoring topics at least once.
    produced = {orjson.dumps(parse_event(orjson.loads(line)).to_json()) for line in lines}
    for topic in internal:
        forwarded = clients.read_topic(topic, lambda r: len(r) >= len(lines), timeout=60)
        seen = {orjson.dumps(parse_event(record["e"]).to_json()) for record in forwarded}
        missing = produced - seen
        assert not missing, f"{len(missing)} of {len(produced)} events never reached {topic}"
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
    mine = {key: found.pop() for key, found in ids.items() if key[0] == entity}
    assert mine, f"the incident on {entity} was not caught across the crash"
    for key, alert_id in mine.items():
        assert expected.get(key) == alert_id, (key, alert_id, expected.get(key))
    duplicates = len(alerts) - len(ids)
    print(f"alerts: {len(alerts)} messages, {len(ids)} distinct, {duplicates} replayed duplicates")

