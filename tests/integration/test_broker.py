"""The embedded tansu broker starts on a free loopback port, serves Kafka, stops by PID."""

from __future__ import annotations

import os

import pytest

from reachwatch.streams.local.broker import (
    BrokerError,
    answers_kafka,
    embedded_broker,
    start_broker,
)

pytestmark = pytest.mark.integration


def test_broker_serves_kafka_until_stopped(tmp_path):
    with embedded_broker(data_dir=tmp_path) as broker:
        assert answers_kafka(broker.host, broker.port)
        pid = broker.pid
        os.kill(pid, 0)  # alive
    assert broker.process.returncode is not None
    assert not answers_kafka(broker.host, broker.port)


def test_unknown_storage_engine_fails_fast_with_the_log(tmp_path):
    with pytest.raises(BrokerError, match="exited"):
        start_broker(data_dir=tmp_path, storage="file:///tmp/nowhere/")


def test_override_binary_must_be_executable(tmp_path):
    fake = tmp_path / "tansu"
    fake.write_text("not a program")
    with pytest.raises(BrokerError, match="not an executable"):
        start_broker(binary=fake)
