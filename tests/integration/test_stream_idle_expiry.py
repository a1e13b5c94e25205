"""A live worker forgets entities idle for longer than the model's TTL (event time)."""

from __future__ import annotations

import orjson
import pytest

from reachwatch.models.records import parse_timestamp

pytestmark = pytest.mark.integration


def test_idle_entities_are_swept_from_a_live_worker(company, service, start_worker, clients):
    worker = start_worker(REACHWATCH_IDLE_SWEEP_INTERVAL="1")
    worker.wait_assigned()
    early = company.lines_between(company.day_start, company.day_start + 1800)
    clients.produce_confluent(service.input_topic, early)
    worker.wait_until(lambda s: s["principals"] > 1, 60, "early entities")
    # One principal reads again 40 days later (the simulated model's TTL is 35 days): the
    # side's clock jumps, and everything else is now idle past the TTL.
    row = orjson.loads(early[0])
    row["ts"] = parse_timestamp(row["ts"]) + 40 * 86400.0
    clients.produce_confluent(service.input_topic, [orjson.dumps(row)])
    worker.wait_until(lambda s: s["principals"] == 1, 60, "idle principals swept")
    text = worker.metrics()
    expired = next(line for line in text.splitlines()
                   if line.startswith(
                       'reachwatch_entities_expired_total{reason="idle",side="principal"}'))
    principals = len({orjson.loads(line)["principal"] for line in early})
    # Every early principal but the one that read again (some may have been swept before
    # the last of their reads was scored, and then counted twice: hence at least).
    assert float(expired.rsplit(" ", 1)[1]) >= principals - 1 >= 1
