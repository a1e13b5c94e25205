"""Two workers, one SIGKILLed: the survivor takes over its partitions and its window state.

``test_stream_scaleout`` stops a worker gracefully (SIGTERM: it leaves the group at once).
A SIGKILLed worker says nothing: the group coordinator notices only when its session
(``broker_session_timeout``, 6 s) expires, then the survivor rebalances, rebuilds the dead
worker's tables from their changelog and resumes from the committed offsets. The test kills
the worker that holds the incident's resource, between the alert's opening and its
escalation, so the escalation proves the state moved with the partition.
"""

from __future__ import annotations

import signal
import time

import orjson
import pytest
from kafka.partitioner.default import murmur2

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import parse_event, parse_timestamp
from reachwatch.models.registry import Registry

pytestmark = pytest.mark.integration

# Exact end offsets on tansu, so changelog recovery reads the whole state (settings.py).
ONE_RECORD_BATCHES = {"REACHWATCH_PRODUCER_MAX_BATCH_SIZE": "1"}

TAKEOVER_BOUND_S = 60.0  # session timeout + rebalance + changelog replay, with headroom


def _ts(line: bytes) -> float:
    return parse_timestamp(orjson.loads(line)["ts"])


def _resource_partition(service, resource: str, partitions: int = 4) -> str:
    # Faust (aiokafka) places keyed messages with Kafka's murmur2 partitioner.
    index = (murmur2(resource.encode()) & 0x7FFFFFFF) % partitions
    return f"{service.app_id}-events-by-resource:{index}"


def _scoring(status, service) -> set[str]:
    prefix = f"{service.app_id}-events-by-"
    return {p for p in status["assigned"] if p.startswith(prefix)}


def test_sigkilled_worker_partitions_and_state_move_to_the_survivor(
    company, service, start_worker, clients
):
    entity = company.incident["entity"]
    lines = company.lines_between(company.incident_start - 3600, company.incident_end)
    pipeline = Pipeline(Registry(company.registry).load(company.version))
    offline = sorted(
        a.ts for a in pipeline.observe_resources(
            [parse_event(orjson.loads(line)) for line in lines], {}
        ).alerts if a.entity == entity
    )
    assert len(offline) >= 2, f"the incident needs an escalation to test with: {offline}"
    split = (offline[0] + offline[1]) / 2
    before = [line for line in lines if _ts(line) < split]
    after = lines[len(before):]

    workers = [start_worker(**ONE_RECORD_BATCHES), start_worker(**ONE_RECORD_BATCHES)]
    for worker in workers:
        worker.wait_assigned()
    for worker in workers:
        worker.wait_until(lambda s: 0 < len(_scoring(s, service)) < 8, 90, "a share")
    clients.produce_confluent(service.input_topic, before)
    opened = clients.read_topic(
        service.alerts_topic, lambda r: any(a["entity"] == entity for a in r), timeout=90
    )
    opening = [a for a in opened if a["entity"] == entity]
    assert [a["revision"] for a in opening] == [0]
    time.sleep(3)  # a few commit intervals: changelog and offsets are written

    owner_partition = _resource_partition(service, entity)
    statuses = [w.status() for w in workers]
    victim_index = next(i for i, s in enumerate(statuses) if owner_partition in s["assigned"])
    victim, survivor = workers[victim_index], workers[1 - victim_index]
    resources_before = sum(s["resources"] for s in statuses)
    assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
    killed = time.monotonic()

    took = survivor.wait_until(
        lambda s: len(_scoring(s, service)) == 8, TAKEOVER_BOUND_S, "all partitions"
    )
    assigned_after = time.monotonic() - killed
    survivor.wait_until(
        lambda s: s["resources"] >= resources_before, TAKEOVER_BOUND_S, "the victim's state"
    )
    state_after = time.monotonic() - killed

    clients.produce_confluent(service.input_topic, after)
    alerts = clients.read_topic(
        service.alerts_topic,
        lambda r: any(a["entity"] == entity and a["revision"] >= 1 for a in r),
        timeout=90,
    )
    escalated = time.monotonic() - killed
    print(f"\ntakeover after SIGKILL: all partitions {assigned_after:.1f}s, state "
          f"{state_after:.1f}s, escalation alert {escalated:.1f}s after the kill")
    mine = [a for a in alerts if a["entity"] == entity]
    assert any(a["revision"] >= 1 for a in mine), (took, survivor.log_tail(60))
    # The survivor continued the victim's alert (same id), it did not open a fresh one.
    assert {a["alert_id"] for a in mine} == {opening[0]["alert_id"]}
    assert survivor.process.poll() is None
