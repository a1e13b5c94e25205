"""Real processes for the streaming tests: one tansu broker per session, workers per test.

Every worker gets its own app id (consumer group and internal topics), input/alerts/DLQ
topics and a free web port, so tests sharing the broker cannot see each other's messages.
Processes are stopped by the PID we hold. Alerts and dead letters are read back with
kafka-python *without* a consumer group (assign + seek to beginning): that is immediate on
tansu, whereas a group pays tansu's JoinGroup hold of half the session timeout.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from reachwatch.models.records import parse_event, parse_timestamp
from reachwatch.models.registry import Registry
from reachwatch.models.simulation.reference import simulate
from reachwatch.models.training import TrainingParams, fit
from reachwatch.streams.local.broker import BrokerProcess, embedded_broker, free_port
from reachwatch.streams.local.process import stop_process

WORKER_READY_S = 60.0
SIM_SCALE = 0.2
INCIDENT_KIND = "broad_audience"  # the seed incident: restricted data exposed to everyone


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with embedded_broker(data_dir=tmp_path_factory.mktemp("broker")) as running:
        yield running


@dataclass(frozen=True)
class Company:
    """A simulated company, its test period and a registry with two model versions."""

    data: Path  # history.jsonl, test.jsonl, labels.json
    registry: Path
    version: str  # promoted
    spare_version: str  # same model under another version id, not promoted
    test_lines: list[tuple[float, bytes]]  # (event ts, raw JSON line), time-ordered
    incident: dict[str, Any]

    def lines_between(self, start: float, end: float) -> list[bytes]:
        return [raw for ts, raw in self.test_lines if start <= ts < end]

    @property
    def incident_start(self) -> float:
        return parse_timestamp(self.incident["start"])

    @property
    def incident_end(self) -> float:
        return parse_timestamp(self.incident["end"])

    @property
    def day_start(self) -> float:
        return self.test_lines[0][0]


@pytest.fixture(scope="session")
def company(tmp_path_factory: pytest.TempPathFactory) -> Company:
    root = tmp_path_factory.mktemp("company")
    simulate(root / "data", seed=7, scale=SIM_SCALE)
    history = sorted(
        (parse_event(orjson.loads(line))
         for line in (root / "data" / "history.jsonl").read_bytes().splitlines() if line.strip()),
        key=lambda e: e.ts,
    )
    fitted = fit(history, params=TrainingParams(n_estimators=50, seed=0))
    registry = Registry(root / "registry")
    version = registry.write(fitted.detectors, fitted.profiles, fitted.metadata)
    registry.promote(version)
    # A second version id for the promotion test: same forests, different metadata.
    spare = registry.write(fitted.detectors, fitted.profiles, {**fitted.metadata, "note": "spare"})
    lines = [
        (parse_timestamp(orjson.loads(line)["ts"]), line)
        for line in (root / "data" / "test.jsonl").read_bytes().splitlines() if line.strip()
    ]
    lines.sort(key=lambda item: item[0])
    labels = orjson.loads((root / "data" / "labels.json").read_bytes())
    incident = next(i for i in labels["incidents"] if i["kind"] == INCIDENT_KIND)
    return Company(root / "data", root / "registry", version, spare, lines, incident)


@dataclass
class WorkerProcess:
    """One ``reachwatch run`` subprocess."""

    process: subprocess.Popen[bytes]
    web_port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def status(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.web_port}/status"
        with urllib.request.urlopen(url, timeout=2) as response:
            return orjson.loads(response.read())

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()

    def wait_until(self, check: Callable[[dict[str, Any]], bool], timeout: float,
                   what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"worker exited ({code}):\n{self.log_tail()}")
            try:
                last = self.status()
            except OSError:
                last = {}
            else:
                if check(last):
                    return last
            time.sleep(0.2)
        raise AssertionError(f"worker never got {what}; last status {last}\n{self.log_tail()}")

    def wait_assigned(self, timeout: float = WORKER_READY_S) -> dict[str, Any]:
        return self.wait_until(lambda s: bool(s.get("assigned")), timeout, "partitions")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        return stop_process(self.process, timeout, signum)

    def tasks(self, settle: float = 2.0) -> str:
        """The worker's asyncio task stacks (mode dumps them on SIGUSR1), for a failure
        message: where a stuck worker waits."""
        if self.process.poll() is not None:
            return "(worker exited)"
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(settle)
        with self.log_path.open("rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    def log_digest(self, lines: int = 60) -> str:
        """The log's story without the noise: rebalances, recoveries, warnings, errors and
        reachwatch's own notes (late reads, repeats, offsets), for a failure message."""
        keep = re.compile(r"WARN|ERROR|generation|Revoking|Recovery complete|Worker ready|"
                          r"late read|recognised|committed input|steps finished|forgot|afresh")
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join([line[:300] for line in text if keep.search(line)][-lines:])

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Service:
    """Names shared by the workers of one test (one consumer group, its own topics)."""

    app_id: str
    input_topic: str
    alerts_topic: str
    dlq_topic: str
    registry: Path
    broker: BrokerProcess
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def service(broker: BrokerProcess, company: Company, tmp_path: Path) -> Service:
    tag = uuid.uuid4().hex[:8]
    return Service(
        app_id=f"rw-{tag}",
        input_topic=f"events-{tag}",
        alerts_topic=f"alerts-{tag}",
        dlq_topic=f"dlq-{tag}",
        registry=company.registry,
        broker=broker,
        workdir=tmp_path,
    )


@pytest.fixture
def start_worker(service: Service) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(cwd: Path | None = None, unset: tuple[str, ...] = (), **env: str) -> WorkerProcess:
        """A worker with the test's names, ``env`` on top, ``unset`` variables removed
        (their defaults apply, relative to ``cwd``)."""
        port = free_port()
        log_path = service.workdir / f"worker-{len(started)}-{port}.log"
        environ = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "REACHWATCH_BROKER_URL": service.broker.url,
            "REACHWATCH_APP_ID": service.app_id,
            "REACHWATCH_INPUT_TOPICS": service.input_topic,
            "REACHWATCH_ALERTS_TOPIC": service.alerts_topic,
            "REACHWATCH_DLQ_TOPIC": service.dlq_topic,
            "REACHWATCH_REGISTRY_DIR": str(service.registry),
            "REACHWATCH_WEB_PORT": str(port),
            "REACHWATCH_DATA_DIR": str(service.workdir / f"worker-{port}"),
            "REACHWATCH_RELOAD_POLL_INTERVAL": "0.5",
            "REACHWATCH_BATCH_MAX_WAIT": "0.1",
            **service.extra_env,
            **env,
        }
        for name in unset:
            environ.pop(name, None)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "reachwatch.streams.cli", "run"],
                cwd=cwd,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        worker = WorkerProcess(process, port, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL if worker.process.poll() is None else signal.SIGTERM)


# -- outside clients --------------------------------------------------------------------
@dataclass(frozen=True)
class OutsideClients:
    """Clients that are not Faust/aiokafka, reading and writing the shared broker."""

    broker: BrokerProcess

    def produce_confluent(self, topic: str, values: list[bytes],
                          key: bytes | None = None) -> None:
        """Produce with librdkafka (the confluent-kafka wheel), as most log shippers do."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.broker.bootstrap, "linger.ms": 5})
        for value in values:
            producer.produce(topic, key=key, value=value)
            producer.poll(0)
        assert producer.flush(30) == 0, "messages still undelivered after 30 s"

    def produce_kafka_python(self, topic: str, values: list[bytes]) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.broker.bootstrap, linger_ms=5)
        for value in values:
            producer.send(topic, value=value)
        producer.flush(30)
        producer.close()

    def read_topic(
        self,
        topic: str,
        until: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 60.0,
    ) -> list[dict[str, Any]]:
        """Every JSON record on ``topic`` from the beginning, polling until ``until`` holds.

        Returns what was read when ``until`` holds or the timeout passes (the caller asserts).
        """
        records: list[dict[str, Any]] = []

        def decoded(messages: list[Any]) -> bool:
            for message in messages[len(records):]:
                record = orjson.loads(message.value)
                record["_partition"] = message.partition
                record["_offset"] = message.offset
                records.append(record)
            return until(records)

        self.read_messages(topic, decoded, timeout)
        return records

    def read_messages(self, topic: str, until: Callable[[list[Any]], bool],
                      timeout: float = 60.0) -> list[Any]:
        """Every message of ``topic`` (kafka-python records: key, value, partition, offset)
        from the beginning, polling until ``until`` holds or the timeout passes."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.broker.bootstrap, enable_auto_commit=False)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            partitions = None
            # An empty set, not only None, while a just-created topic has no leaders yet.
            while not partitions and time.monotonic() < deadline:
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    time.sleep(0.3)
            if not partitions:
                return records
            consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
            consumer.seek_to_beginning()
            while time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=300).values():
                    records.extend(batch)
                if until(records):
                    break
        finally:
            consumer.close()
        return records


@pytest.fixture
def clients(broker: BrokerProcess) -> OutsideClients:
    return OutsideClients(broker)
