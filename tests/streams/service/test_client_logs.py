"""The Kafka client log throttle keeps the first of a repeated error and counts the rest."""

from __future__ import annotations

import logging

from reachwatch.streams.service.client_logs import RepeatThrottle, throttle_client_logs


def _record(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("aiokafka", level, __file__, 1, msg, ("node-1",), None)


def test_repeats_within_the_interval_are_dropped_then_counted():
    now = [0.0]
    throttle = RepeatThrottle(interval=30, clock=lambda: now[0])
    assert throttle.filter(_record("Unable connect to node %s"))
    passed = []
    for second in range(1, 30):
        now[0] = float(second)
        passed.append(throttle.filter(_record("Unable connect to node %s")))
    assert not any(passed)
    now[0] = 31.0
    record = _record("Unable connect to node %s")
    assert throttle.filter(record)
    assert "29 like this dropped" in record.getMessage()
    assert "node-1" in record.getMessage()  # arguments still formatted


def test_other_templates_and_info_lines_are_not_throttled():
    throttle = RepeatThrottle(interval=30, clock=lambda: 0.0)
    assert throttle.filter(_record("Unable connect to node %s"))
    assert throttle.filter(_record("Unable to update metadata from %s"))
    assert throttle.filter(_record("Joined group %s", level=logging.INFO))
    assert throttle.filter(_record("Joined group %s", level=logging.INFO))


def test_attached_to_the_aiokafka_module_loggers():
    throttle = throttle_client_logs()
    try:
        for name in ("aiokafka", "aiokafka.consumer.fetcher", "aiokafka.conn"):
            assert throttle in logging.getLogger(name).filters
    finally:
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("aiokafka"):
                logging.getLogger(name).removeFilter(throttle)
