"""A real Prometheus scrapes a token-protected worker with the committed scrape job.

One embedded broker, one ``reachwatch run`` worker on a free loopback port with
``REACHWATCH_WEB_TOKEN_FILE`` (the metrics token) and ``REACHWATCH_ALERTS_TOKEN_FILE`` (the
alerts token), one Prometheus whose ``reachwatch`` job is the one committed in
dashboards/prometheus/prometheus.yml (only its targets and the path of the token file
changed), plus a control job without the token. Every process is stopped by its PID.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from support.opsstack import DASHBOARDS, PrometheusProcess, http_json, wait_until

from reachwatch.streams.local.broker import BrokerProcess, embedded_broker, free_port

PROMETHEUS_CONFIG = DASHBOARDS / "prometheus" / "prometheus.yml"
EVENTS = 300


@dataclass
class TokenWorker:
    process: subprocess.Popen[bytes]
    url: str
    token: str  # opens /metrics
    alerts_token: str  # opens /alerts/recent
    input_topic: str
    log_path: Path

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        return orjson.loads(body) if code == 200 else {}

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with embedded_broker(data_dir=tmp_path_factory.mktemp("scrape-broker")) as running:
        yield running


@pytest.fixture(scope="module")
def worker(
    broker: BrokerProcess, tiny_registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TokenWorker]:
    workdir = tmp_path_factory.mktemp("scrape-worker")
    token, alerts_token = uuid.uuid4().hex, uuid.uuid4().hex
    token_file = workdir / "reachwatch_web_token"
    token_file.write_text(token + "\n")
    alerts_token_file = workdir / "reachwatch_alerts_token"
    alerts_token_file.write_text(alerts_token)
    port, tag = free_port(), uuid.uuid4().hex[:8]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REACHWATCH_")}
    environ.update({
        "PYTHONUNBUFFERED": "1",
        "REACHWATCH_BROKER_URL": broker.url,
        "REACHWATCH_APP_ID": f"rw-{tag}",
        "REACHWATCH_INPUT_TOPICS": f"events-{tag}",
        "REACHWATCH_ALERTS_TOPIC": f"alerts-{tag}",
        "REACHWATCH_DLQ_TOPIC": f"dlq-{tag}",
        "REACHWATCH_REGISTRY_DIR": str(tiny_registry.root),
        "REACHWATCH_WEB_PORT": str(port),
        "REACHWATCH_WEB_TOKEN_FILE": str(token_file),
        "REACHWATCH_ALERTS_TOKEN_FILE": str(alerts_token_file),
        "REACHWATCH_DATA_DIR": str(workdir / "data"),
        "REACHWATCH_BATCH_MAX_WAIT": "0.1",
    })
    log_path = workdir / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "reachwatch.streams.cli", "run"],
            env=environ, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    running = TokenWorker(process, f"http://127.0.0.1:{port}", token, alerts_token,
                          f"events-{tag}", log_path)
    try:
        wait_until(lambda: running.process.poll() is None and running.status().get("assigned"),
                   90, "the worker's partitions")
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture(scope="module")
def fed_worker(worker: TokenWorker, broker: BrokerProcess, tiny_history) -> TokenWorker:
    """The worker after it consumed ``EVENTS`` events of the tiny organisation."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    for event in tiny_history[-EVENTS:]:
        producer.send(worker.input_topic, value=orjson.dumps(event.to_json()))
    producer.flush(30)
    producer.close()
    wait_until(lambda: worker.status().get("messages_in", 0) >= EVENTS, 90,
               f"{EVENTS} events consumed")
    return worker


@pytest.fixture(scope="module")
def prometheus(
    prometheus_bin: str, worker: TokenWorker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    workdir = tmp_path_factory.mktemp("scrape-prometheus")
    token_file = workdir / "reachwatch_web_token"
    token_file.write_text(worker.token)
    committed = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    job = next(j for j in committed["scrape_configs"] if j["job_name"] == "reachwatch")
    target = worker.url.removeprefix("http://")
    scraped = {**job, "static_configs": [{"targets": [target]}]}
    scraped["authorization"] = {**job["authorization"], "credentials_file": str(token_file)}
    control = {k: v for k, v in scraped.items() if k != "authorization"}
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [scraped, {**control, "job_name": "reachwatch-without-token"}],
    }
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    with PrometheusProcess(prometheus_bin, path, workdir) as running:
        running.wait_ready()
        yield running


def _targets(prometheus: PrometheusProcess) -> dict[str, dict[str, Any]]:
    active = http_json(f"{prometheus.url}/api/v1/targets")["data"]["activeTargets"]
    return {t["labels"]["job"]: t for t in active if t.get("lastScrape", "").startswith("2")}


def test_the_committed_scrape_job_sends_the_token_from_a_file() -> None:
    committed = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    job = next(j for j in committed["scrape_configs"] if j["job_name"] == "reachwatch")
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"].startswith("/run/secrets/")
    assert "credentials" not in job["authorization"]  # never the token itself


def test_metrics_and_alerts_answer_401_without_their_own_token(worker: TokenWorker) -> None:
    for path, token, other in (("/metrics", worker.token, worker.alerts_token),
                               ("/alerts/recent", worker.alerts_token, worker.token)):
        code, body = worker.get(path)
        assert code == 401, (path, body[:200])
        assert b"reachwatch_" not in body
        assert worker.get(path, token="not-" + token)[0] == 401
        # Prometheus' token reads no alert sample; Grafana's table token reads no metrics.
        assert worker.get(path, token=other)[0] == 401, path
        assert worker.get(path, token=token)[0] == 200, path


def test_prometheus_scrapes_with_the_token_and_not_without(
    fed_worker: TokenWorker, prometheus: PrometheusProcess
) -> None:
    targets = wait_until(lambda: len(_targets(prometheus)) == 2 and _targets(prometheus), 30,
                         "both jobs scraped once")
    assert targets["reachwatch-without-token"]["health"] == "down"
    assert "401" in targets["reachwatch-without-token"]["lastError"]

    def consumed() -> float:
        answer = prometheus.query('sum(reachwatch_events_consumed_total{job="reachwatch"})')
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    wait_until(lambda: consumed() >= EVENTS, 30, "the worker's counter in Prometheus")
    assert consumed() >= EVENTS
    assert _targets(prometheus)["reachwatch"]["health"] == "up"
    unauthenticated = prometheus.query('up{job="reachwatch-without-token"}')["data"]["result"]
    assert [float(r["value"][1]) for r in unauthenticated] == [0.0]


def test_status_stays_open_and_names_no_entity(fed_worker: TokenWorker, tiny_history) -> None:
    code, body = fed_worker.get("/status")
    assert code == 200
    status = orjson.loads(body)
    assert status["messages_in"] >= EVENTS and status["assigned"]
    streamed = tiny_history[-EVENTS:]
    names = {e.principal for e in streamed} | {e.resource for e in streamed}
    text = body.decode()
    assert not [name for name in names if name in text]
    # Only counts, the model version and partition names: nothing an entity could hide in.
    def partition_name(item: str) -> bool:
        return ":" in item and item.rsplit(":", 1)[1].isdigit()

    inputs = status.pop("inputs")
    assert inputs and set(inputs) <= set(status["assigned"])  # per input partition...
    for fetch in inputs.values():  # ...flags and offsets only
        assert all(v is None or isinstance(v, (bool, int)) for v in fetch.values()), fetch
    for key, value in status.items():
        assert isinstance(value, (int, float, str, list)), key
        if isinstance(value, list):
            assert all(partition_name(item) for item in value), key


def test_the_worker_log_names_no_entity_at_info(fed_worker: TokenWorker, tiny_history) -> None:
    """The default log level (info) says what the worker does, never whom it read about."""
    log = fed_worker.log_path.read_text(errors="replace")
    assert "[INFO]" in log  # the worker logged at its default level: the check has teeth
    streamed = tiny_history[-EVENTS:]
    names = {e.principal for e in streamed} | {e.resource for e in streamed}
    assert [name for name in names if name in log] == []
    assert fed_worker.token not in log and fed_worker.alerts_token not in log
