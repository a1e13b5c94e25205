"""Two workers in one consumer group split the partitions; one leaving hands them over."""

from __future__ import annotations

import signal

import orjson
import pytest

# Slow (not in make test) while an open bug stands: now and then (1 of the 4 clean-clone runs
# of 2026-12-01, about 1 in 6 loaded runs) the survivor of a graceful rebalance read no
# input at all. After the end-offset check (streams/service/logend.py) it passed 11 of 11
# loaded runs, but no mechanism links that fix to this stall, so it stays slow until one
# is shown. Its failure message carries the survivor's /status, log digest and task stacks.
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _scoring_partitions(status, service):
    prefix = f"{service.app_id}-events-by-principal:"
    return {p for p in status["assigned"] if p.startswith(prefix)}


def test_two_workers_split_partitions_and_survivor_takes_over(
    company, service, start_worker, clients
):
    first = start_worker()
    first.wait_assigned()
    second = start_worker()
    second.wait_assigned()
    # After the rebalance each holds part of the scoring partitions, none twice.
    first_status = first.wait_until(
        lambda s: 0 < len(_scoring_partitions(s, service)) < 4, 60, "a share of partitions"
    )
    second_status = second.status()
    mine, theirs = _scoring_partitions(first_status, service), _scoring_partitions(
        second_status, service
    )
    assert mine and theirs
    assert not mine & theirs
    assert len(mine | theirs) == 4

    assert second.stop(signal.SIGTERM) == 0  # graceful: exits 0 within the timeout
    first.wait_until(
        lambda s: len(_scoring_partitions(s, service)) == 4, 60, "all partitions"
    )
    # /status says how each input partition is fetched: all four, none held back.
    inputs = first.wait_until(lambda s: len(s["inputs"]) == 4, 30, "four input partitions")
    if any(state["held"] for state in inputs["inputs"].values()):
        pytest.fail(_story("an input partition is held after the takeover", first), pytrace=False)
    clients.produce_confluent(
        service.input_topic,
        company.lines_between(company.incident_start - 1800, company.incident_end),
    )
    entity = company.incident["entity"]
    alerts = clients.read_topic(
        service.alerts_topic, lambda r: any(a["entity"] == entity for a in r), timeout=90
    )
    if not any(a["entity"] == entity for a in alerts):
        pytest.fail(_story("no alert from the survivor", first), pytrace=False)


def _story(what, worker) -> str:
    """In full (an assertion's repr is cut short): the survivor's /status with each input
    partition's fetch state, its log, and where its tasks wait."""
    status = orjson.dumps(worker.status(), option=orjson.OPT_INDENT_2).decode()
    return "\n".join([what, "--- /status", status, "--- log", worker.log_digest(),
                      "--- tasks", worker.tasks()])
