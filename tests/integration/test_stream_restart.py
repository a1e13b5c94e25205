"""A worker killed with SIGKILL and restarted recovers its window state from the changelog."""

from __future__ import annotations

import signal
import time

import orjson
import pytest
from support.scoring import wait_scored

from reachwatch.models.grants import is_grant
from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import parse_event, parse_timestamp
from reachwatch.models.registry import Registry

pytestmark = pytest.mark.integration


def _offline_revisions(company, lines, entity):
    """(ts, revision) of the entity's alerts when the same events are scored in-process."""
    pipeline = Pipeline(Registry(company.registry).load(company.version))
    events = [parse_event(orjson.loads(line)) for line in lines]
    result = pipeline.observe_resources(events, {})
    return sorted((a.ts, a.revision) for a in result.alerts if a.entity == entity)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_sigkill_restart_keeps_state_and_the_open_alert(company, service, start_worker, clients,
                                                        store, tmp_path):
    if store == "rocksdb://":
        pytest.importorskip("rocksdict")  # the [rocksdb] extra; installed by `make test`
    # In memory the second worker rebuilds every table from the changelog; on RocksDB it
    # starts on the killed worker's data dir and reads the changelog written since.
    env = {"REACHWATCH_STORE": store}
    if store == "rocksdb://":
        env["REACHWATCH_DATA_DIR"] = str(tmp_path / "worker-data")
    entity = company.incident["entity"]
    lines = company.lines_between(company.incident_start - 3600, company.incident_end)
    revisions = _offline_revisions(company, lines, entity)
    assert len(revisions) >= 2, f"the incident needs an escalation to test with: {revisions}"
    # Split the stream between the alert's opening and its first escalation, so the
    # escalation can only be recognised as one with the state from before the kill.
    split = (revisions[0][0] + revisions[1][0]) / 2
    before = [line for line in lines if _ts(line) < split]
    after = lines[len(before):]

    first = start_worker(**env)
    first.wait_assigned()
    clients.produce_confluent(service.input_topic, before)
    opened = clients.read_topic(
        service.alerts_topic, lambda r: any(a["entity"] == entity for a in r), timeout=90
    )
    first.wait_until(lambda s: s["messages_in"] >= len(before), 60, "all messages")
    # Consumed is not yet done: a message is acknowledged once both sides scored its
    # events, which waits for the aligned watermark (an empty partition turns idle first).
    # The kill is to find the state of what was scored, so wait until all of it was.
    reads = sum(not is_grant(parse_event(orjson.loads(line))) for line in before)
    wait_scored(first, reads, 90)
    # Past a few commit intervals (1 s): changelog writes and offsets are committed.
    time.sleep(3)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    second = start_worker(**env)
    second.wait_assigned()
    # State comes back from the changelog before any new message arrives...
    recovered = second.wait_until(lambda s: s["resources"] > 0, 60, "recovered state")
    assert recovered["messages_in"] == 0
    clients.produce_confluent(service.input_topic, after)
    alerts = clients.read_topic(
        service.alerts_topic,
        lambda r: any(a["entity"] == entity and a["revision"] >= 1 for a in r),
        timeout=90,
    )

    mine = [a for a in alerts if a["entity"] == entity and a["kind"] == "broad_audience"]
    opening = [a for a in opened if a["entity"] == entity]
    assert opening and opening[0]["revision"] == 0
    escalations = [a for a in mine if a["revision"] >= 1]
    assert escalations, f"no escalation after the restart: {[a['revision'] for a in mine]}"
    # Same alert continued (not a fresh one from empty windows): one alert_id. The kill may
    # fall between two checkpoints: the replay of the envelopes since the last one raises
    # its messages again (at-least-once), as duplicates that carry the same id and figures.
    if {a["alert_id"] for a in mine} != {opening[0]["alert_id"]} or not _duplicates_agree(mine):
        pytest.fail(_story(mine, opening, first, second), pytrace=False)
    # ...and the committed offsets hold: the old messages were not simply replayed (a
    # replay from scratch would also reproduce the same alert ids).
    try:
        done = second.wait_until(lambda s: s["messages_in"] >= len(after), 60, "all messages")
    except AssertionError as exc:
        pytest.fail(f"{str(exc)[:2000]}\n{_offsets_story(service, second)}", pytrace=False)
    assert done["messages_in"] < len(after) + len(before) // 2


def _duplicates_agree(alerts) -> bool:
    """Messages of one alert_id and revision are copies of one another."""
    seen: dict[tuple[str, int], tuple] = {}
    for a in alerts:
        figures = (a["status"], a["ts"], a["first_ts"], a["severity"])
        if seen.setdefault((a["alert_id"], a["revision"]), figures) != figures:
            return False
    return True


def _story(mine, opening, *workers) -> str:
    """The alerts and the workers' own words, in full: what a failure needs explained."""
    rows = [
        f"  {a['alert_id'][:12]} rev {a['revision']} {a['status']} at {a['ts']} "
        f"(first {a.get('first_ts')})"
        for a in mine
    ]
    logs = [f"--- {w.log_path.name}\n{w.log_digest()}" for w in workers]
    return "\n".join(
        [f"another alert than the opening {opening[0]['alert_id'][:12]}:", *rows, *logs]
    )


def _offsets_story(service, worker) -> str:
    """Where each input partition's reading stands, three ways: the group's committed
    offsets, the client's fetch positions (/status), Faust's own count of messages in."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=service.broker.bootstrap)
    try:
        committed = {
            f"{tp.topic}:{tp.partition}": meta.offset
            for tp, meta in admin.list_group_offsets(service.app_id)[service.app_id].items()
            if tp.topic == service.input_topic
        }
    finally:
        admin.close()
    faust = [line for line in worker.metrics().splitlines()
             if "faust" in line and service.input_topic in line and not line.startswith("#")]
    return "\n".join([f"committed {dict(sorted(committed.items()))}",
                      f"inputs {worker.status().get('inputs')}", *faust[:20],
                      worker.log_digest()])


def _ts(line: bytes) -> float:
    return parse_timestamp(orjson.loads(line)["ts"])
