"""Graceful shutdown: SIGTERM stops a worker within seconds with its offsets committed."""

from __future__ import annotations

import signal
import time

import pytest
from support.scoring import wait_scored

pytestmark = pytest.mark.integration


def test_sigterm_stops_within_seconds_and_commits_offsets(company, service, start_worker, clients):
    lines = company.lines_between(company.day_start, company.day_start + 3 * 3600)
    worker = start_worker()
    worker.wait_assigned()
    clients.produce_confluent(service.input_topic, lines)
    worker.wait_until(lambda s: s["messages_in"] >= len(lines), 90, "every event consumed")
    # Consumed is not yet done: a message is acknowledged once both sides scored its
    # events, which waits for the aligned watermark (an empty partition turns idle first).
    wait_scored(worker, len(lines), 90)
    time.sleep(3)  # past the 1 s commit interval

    started = time.monotonic()
    assert worker.stop(signal.SIGTERM) == 0
    stopped_in = time.monotonic() - started
    assert stopped_in < 10, f"SIGTERM took {stopped_in:.1f} s"

    # A restarted worker in the same group resumes after the committed offsets: it has
    # nothing to re-consume from the input topic.
    again = start_worker()
    again.wait_assigned()
    time.sleep(5)
    assert again.status()["messages_in"] == 0, again.log_tail(40)
