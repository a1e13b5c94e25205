"""A worker SIGKILLed before its first commit: the next one still scores every event.

A partition without a commit gives a restarted worker nothing to judge its first message
against, and Faust may drop the first messages it fetches after an assignment (seen in a
loaded run: offsets 0-1 of all eight internal partitions never handed over, the worker
took offset 2 as the start, and its commit passed 0-1). The worker asks where each reading
starts (the commit, else the log start) before Faust hands a message, and reads a partition
again from there (``streams/service/transport.py``, ``rewind.py``). Here a worker is killed
before any commit (a commit interval longer than the test), so the next one starts on a
group with no commit at all, and every worker drops the first two records it fetches of
each partition (fault injection, as Faust did); afterwards every produced read
has been scored on both sides (the scored-event log) and the group has committed every
input message.
"""

from __future__ import annotations

import signal

import pytest
from support.producing import produce_keyed
from test_faults_restart import committed_offsets, true_ends, wait_committed
from test_stream_at_least_once import _missing, _read_again, _scored

from reachwatch.streams.service.transport import FAULT_DROP_FIRST_FETCHED

pytestmark = pytest.mark.integration

NEVER_S = "3600"  # a commit interval no worker here lives to see
FIRST_WORKERS = 1


def test_workers_killed_before_any_commit_leave_no_event_unscored(
        company, service, start_worker, clients):
    lines = company.lines_between(company.test_lines[0][0], company.incident_end)
    produced = _scored_keys(lines)
    log = service.workdir / "scored.tsv"
    env = {"REACHWATCH_SCORED_LOG_FILE": str(log), "REACHWATCH_PRODUCER_MAX_BATCH_SIZE": "1",
           FAULT_DROP_FIRST_FETCHED: "2"}
    produce_keyed(service.broker.bootstrap, service.input_topic, lines)
    for n in range(FIRST_WORKERS):
        worker = start_worker(REACHWATCH_BROKER_COMMIT_INTERVAL=NEVER_S, **env)
        worker.wait_assigned()
        scored_before = sum(_scored(log)["resource"].values())
        # Killed while it scores: some of its reads scored, none committed.
        worker.wait_until(
            lambda s, before=scored_before: sum(_scored(log)["resource"].values()) > before,
            90, f"scoring by worker {n}")
        assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
    for topic in (service.input_topic, f"{service.app_id}-events-by-principal",
                  f"{service.app_id}-events-by-resource"):
        assert not any(committed_offsets(service.broker.bootstrap, service.app_id,
                                         topic).values()), f"{topic} was committed"

    last = start_worker(**env)
    last.wait_assigned()
    deadline_s = 240
    missing = _wait_scored(last, log, produced, deadline_s)
    assert missing == {"principal": 0, "resource": 0}, last.log_digest()
    inputs = clients.read_topic(service.input_topic, lambda r: len(r) >= len(lines), timeout=60)
    assert wait_committed(service, service.input_topic, true_ends(inputs)) == 0
    read_again = _read_again(last.metrics())
    # The injected drops were seen and read again, by the ingest and by both scorers.
    assert all(read_again.get(stage, 0) >= 1 for stage in ("ingest", "principal", "resource")), \
        read_again
    print(f"\n{len(lines)} reads, all scored after {FIRST_WORKERS} kills before any commit; "
          f"the last worker read partitions again {read_again}")


def _scored_keys(lines: list[bytes]):
    from collections import Counter

    import orjson

    from reachwatch.models.records import parse_event

    events = [parse_event(orjson.loads(raw)) for raw in lines]
    return Counter((e.ts, e.principal, e.resource) for e in events)


def _wait_scored(worker, log, produced, timeout: float) -> dict[str, int]:
    import time

    deadline = time.monotonic() + timeout
    missing = _missing(produced, _scored(log))
    while any(missing.values()) and time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.log_tail()
        time.sleep(2)
        missing = _missing(produced, _scored(log))
    return missing
