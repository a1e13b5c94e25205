"""The stream computes what the offline replay computes, on a whole retained topic.

A simulated company's history and test days are produced at once to a 4-partition input
topic, keyed by principal or round-robin (each principal's reads then come from every
partition), as a worker sees a retained topic on its first start or when it
catches up after being down. Partitions are then consumed at different speeds; with
event-time alignment the worker still scores every event on both sides, none late, and
raises exactly the replay's alerts (kind, entity, alert_id, severity, revision).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.producing import produce_keyed
from support.scoring import wait_scored as _wait_scored

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import parse_timestamp
from reachwatch.models.registry import Registry
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.offline.replay import Tally, collect_events, run_replay

pytestmark = pytest.mark.integration

PARTITIONS = 4


def _files(company: Any, history: bool) -> list[Path]:
    data = company.registry.parent / "data"
    return [data / "history.jsonl", data / "test.jsonl"] if history else [data / "test.jsonl"]


def _replay(files: list[Path], company: Any) -> tuple[Counter[Any], dict[str, int], int]:
    """(alerts, late per side, valid events) of the offline replay of the same files."""
    pipeline = Pipeline(Registry(company.registry).load(company.version))
    tally = Tally()
    batches = list(collect_events(files, Chain(get_adapter("native")), tally, keep_grants=True))
    alerts: list[Any] = []
    run_replay(batches, pipeline, tally, alerts.append)
    # The replay's tally counts late reads on the principal side only: count the resource
    # side with a second pass over the same ordered events.
    resource_late, states = 0, {}
    for events in batches:
        for start in range(0, len(events), 2000):
            resource_late += pipeline.observe_resources(events[start:start + 2000], states).late
    key = Counter((a.kind, a.entity, a.alert_id, a.severity, a.revision) for a in alerts)
    return key, {"principal": tally.late, "resource": resource_late}, tally.accepted


def _sorted_lines(files: list[Path]) -> list[bytes]:
    lines: list[bytes] = []
    for path in files:
        rows = [line for line in path.read_bytes().splitlines() if line.strip()]
        rows.sort(key=lambda raw: parse_timestamp(orjson.loads(raw)["ts"]))  # stable, as replay
        lines.extend(rows)
    return lines


def _stream_alerts(clients: Any, topic: str, expected: int) -> Counter[tuple[Any, ...]]:
    records = clients.read_topic(topic, lambda r: len(r) >= expected, timeout=60)
    # A little longer: more alerts than the replay's would be a failure too.
    time.sleep(2)
    records = clients.read_topic(topic, lambda r: False, timeout=3)
    # The worker also says when an alert closes (its quiet period ended in event time);
    # the offline replay writes no such message, so the comparison leaves them out.
    return Counter((a["kind"], a["entity"], a["alert_id"], a["severity"], a["revision"])
                   for a in records if a.get("status") != "closed")


# The test days alone by default (17k events at the shared company's scale); with the
# history in front (114k events) as a slow test.
@pytest.fixture(scope="module", params=[
    pytest.param(False, id="test-days"),
    pytest.param(True, id="history-and-test-days", marks=pytest.mark.slow),
])
def replayed(request: Any, company: Any) -> tuple[Any, ...]:
    files = _files(company, history=request.param)
    return (*_replay(files, company), _sorted_lines(files))


def _report(name: str, expected: Counter[Any], got: Counter[Any], replay_late: dict[str, int],
            scored: dict[str, float]) -> str:
    return (f"{name}: replay {sum(expected.values())} alerts, late {replay_late}; stream "
            f"{sum(got.values())} alerts, {scored}; missing {list(expected - got)[:5]}, "
            f"extra {list(got - expected)[:5]}")


@pytest.mark.parametrize("round_robin", [0, PARTITIONS], ids=["keyed", "round-robin"])
def test_stream_alerts_equal_the_replay_on_a_retained_topic(company, service, start_worker,
                                                           clients, replayed, round_robin):
    expected, replay_late, total, lines = replayed
    assert replay_late == {"principal": 0, "resource": 0}
    assert expected, "the simulated company raised no alert offline"
    if round_robin:  # all there before the worker starts: it catches up from the start
        produce_keyed(service.broker.bootstrap, service.input_topic, lines, round_robin)
    worker = start_worker(REACHWATCH_PARTITIONS=str(PARTITIONS))
    worker.wait_assigned()
    if not round_robin:
        produce_keyed(service.broker.bootstrap, service.input_topic, lines)
    scored = _wait_scored(worker, total, timeout=400)
    got = _stream_alerts(clients, service.alerts_topic, sum(expected.values()))
    print(_report("at once", expected, got, replay_late, scored))
    assert scored["events_late:principal"] == scored["events_late:resource"] == 0, scored
    assert scored["events_scored:principal"] == scored["events_scored:resource"] == total
    assert got == expected, _report("at once", expected, got, replay_late, scored)


# A stopping worker lets its steps under way finish and commits after them (agents.drain):
# the restarted one forwards nothing the first had forwarded (its committed input offsets
# are the first one's acknowledged ones + 1). Repeats that still occur (a crash, a
# rebalance) are recognised by their input position (forwarding.py). This test failed
# 3 of 11 runs (the history variant 2 of 2) while the restarted worker recovered its
# tables only to tansu's under-reported end offsets (streams/service/logend.py); with the
# end offsets checked it passed both variants. Slow: ~8 min for the two.
@pytest.mark.slow
def test_stream_alerts_equal_the_replay_across_a_stop_and_restart(company, service, start_worker,
                                                                 clients, replayed):
    expected, replay_late, total, lines = replayed
    first = start_worker(REACHWATCH_PARTITIONS=str(PARTITIONS))
    first.wait_assigned()
    produce_keyed(service.broker.bootstrap, service.input_topic, lines)
    first.wait_until(lambda s: s["messages_in"] >= total // 2, 300, "half the traffic")
    assert first.stop(signal.SIGTERM) == 0, first.log_tail()
    time.sleep(5)  # down for a while: the rest of the traffic waits in the topic
    second = start_worker(REACHWATCH_PARTITIONS=str(PARTITIONS))
    second.wait_assigned()
    scored = _wait_scored(second, 1, timeout=60)
    deadline = time.monotonic() + 400
    got: Counter[tuple[Any, ...]] = Counter()
    while time.monotonic() < deadline:
        got = _stream_alerts(clients, service.alerts_topic, sum(expected.values()))
        if set(got) >= set(expected):
            break
    scored = _wait_scored(second, 0, timeout=10)
    print(_report("stop/restart", expected, got, replay_late, scored))
    # Only the second worker's counters: the first one's are gone with it.
    assert scored["events_late:principal"] == scored["events_late:resource"] == 0, scored
    # Alerts published before the stop and replayed after it may repeat (same alert_id).
    assert set(got) == set(expected), _report("stop/restart", expected, got, replay_late, scored)
