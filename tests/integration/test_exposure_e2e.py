"""After the alert, end to end: exposure record, cause, lifecycle and pages that carry it.

One run (module fixture) drives a real chain: the embedded broker, a ``reachwatch run``
worker that pushes pages to a real Alertmanager (the repository's routing, receivers
replaced by a webhook in this test), and Kafka clients in the test. The story:

1. hr-admin opens ``hr/performance-tracking`` (restricted, owned by hr) to the whole
   company with a company-wide link (a native ``share-organization`` grant event);
2. half of the outside readers and some hr people read it; the alert opens, a page with
   the entity arrives, an exposure record is published;
3. the worker is SIGKILLed and a new one started in its place (same consumer group);
4. the other half reads it; the record grows;
5. a read 25 h later elsewhere moves event time past the quiet period: the alert closes,
   the final record is published, the page resolves.

The tests assert on what the topics, the webhook, the web API and the CLI said.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.opsstack import (
    AlertmanagerProcess,
    WebhookReceiver,
    find_binary,
    wait_until,
    write_alertmanager_config,
)

from reachwatch.models.records import parse_timestamp

pytestmark = pytest.mark.integration

RESOURCE = "hr/performance-tracking"
GRANTOR = "hr-admin"
PAGE = "ReachwatchDetection"
ONE_RECORD_BATCHES = {"REACHWATCH_PRODUCER_MAX_BATCH_SIZE": "1"}  # exact tansu recovery


@dataclass
class Story:
    grant: dict[str, Any]
    first_half: list[dict[str, Any]]
    second_half: list[dict[str, Any]]
    clock: dict[str, Any]
    outside: set[str]
    insiders: set[str]


@dataclass
class Run:
    story: Story
    alerts: list[dict[str, Any]] = field(default_factory=list)
    exposures_before_kill: list[dict[str, Any]] = field(default_factory=list)
    exposures: list[dict[str, Any]] = field(default_factory=list)
    webhook: list[dict[str, Any]] = field(default_factory=list)
    web_record: dict[str, Any] | None = None
    web_unauthorized: int = 0
    recent_closed: list[dict[str, Any]] = field(default_factory=list)
    recent_open_after_restart: list[dict[str, Any]] = field(default_factory=list)
    cli_json: dict[str, Any] | None = None
    killed_pid: int = 0
    metrics: str = ""


def _story(company) -> Story:
    """Readers drawn from the simulated company's people, with their real teams."""
    day = [orjson.loads(line) for _, line in company.test_lines]
    teams: dict[str, str] = {}
    for event in day:
        if event.get("principal_type", "human") == "human" and event.get("principal_group"):
            teams.setdefault(event["principal"], event["principal_group"])
    rng = random.Random(14)
    people = sorted(teams)
    outside = [p for p in people if teams[p] != "hr"]
    insiders = [p for p in people if teams[p] == "hr"][:6]
    chosen = rng.sample(outside, min(45, len(outside) - 5))
    t0 = company.day_start + 14 * 3600.0
    grant = {
        "ts": t0 - 240,
        "principal": GRANTOR,
        "principal_group": "hr",
        "resource": RESOURCE,
        "resource_group": "hr",
        "sensitivity": "restricted",
        "action": "share-organization",
        "source": "10.20.0.5",
    }
    readers = chosen + insiders
    rng.shuffle(readers)
    reads = [
        {
            "ts": t0 + i * 15.0,
            "principal": p,
            "principal_group": teams[p],
            "resource": RESOURCE,
            "resource_group": "hr",
            "sensitivity": "restricted",
            "action": "download" if i % 9 == 4 else "read",
            "records": 100 + i,
            "bytes": 5000 + i,
            "source": f"10.30.{i // 250}.{i % 250}",
        }
        for i, p in enumerate(readers)
    ]
    half = len(reads) // 2
    clock = {
        "ts": t0 + 25 * 3600.0,
        "principal": people[0],
        "principal_group": teams[people[0]],
        "resource": "it/status-page",
        "resource_group": "it-ops",
        "sensitivity": "internal",
    }
    return Story(grant, reads[:half], reads[half:], clock, set(chosen), set(insiders))


def _lines(events: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(e) for e in events]


def _get(url: str, token: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _pages(receiver: WebhookReceiver, status: str) -> list[dict[str, Any]]:
    return [
        alert
        for payload in list(receiver.payloads)
        for alert in payload.get("alerts", [])
        if alert["labels"].get("alertname") == PAGE and alert.get("status") == status
    ]


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for value in values:
        producer.produce(topic, value=value)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still undelivered after 30 s"


def _read(bootstrap: str, topic: str, until, timeout: float = 90.0) -> list[dict[str, Any]]:
    """Every JSON record on ``topic`` from the beginning, polling until ``until`` holds."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        partitions = None
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
                records.extend(orjson.loads(m.value) for m in batch)
            if until(records):
                break
    finally:
        consumer.close()
    return records


class Workers:
    """``reachwatch run`` processes of one consumer group, stopped by their PIDs."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> tuple[subprocess.Popen[bytes], int]:
        from reachwatch.streams.local.broker import free_port

        port = free_port()
        log_path = self.workdir / f"worker-{port}.log"
        env = {
            **os.environ,
            **self.env,
            "REACHWATCH_WEB_PORT": str(port),
            "REACHWATCH_DATA_DIR": str(self.workdir / f"worker-{port}"),
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "reachwatch.streams.cli", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.processes.append(process)

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(log_path.read_text(errors="replace")[-3000:])
            status, body = _get(f"http://127.0.0.1:{port}/status", None)
            return status == 200 and bool(orjson.loads(body).get("assigned"))

        wait_until(ready, 90, "worker assignment")
        return process, port

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


def _opened(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The exposure's opened alerts, once per (``alert_id``, ``revision``): delivery is
    at-least-once and consumers deduplicate by that pair (README, "The streaming service")."""
    unique = {(r["alert_id"], r["revision"]): r for r in records
              if r.get("entity") == RESOURCE and r.get("status") == "opened"}
    return list(unique.values())


@pytest.fixture(scope="module")
def run(company, broker, tmp_path_factory) -> Iterator[Run]:
    binary = find_binary("prometheus-alertmanager", "alertmanager")
    if binary is None:
        pytest.skip("Alertmanager is not installed (make test installs Debian's)")
    workdir = tmp_path_factory.mktemp("exposure-e2e")
    token = "tok-" + uuid.uuid4().hex
    (workdir / "token").write_text(token)
    story = _story(company)
    result = Run(story)
    tag = uuid.uuid4().hex[:8]
    alerts_topic, exposures_topic, input_topic = f"alerts-{tag}", f"exp-{tag}", f"events-{tag}"
    bootstrap = broker.bootstrap
    with WebhookReceiver() as receiver:
        config = write_alertmanager_config(workdir / "alertmanager.yml", receiver.url)
        alertmanager = AlertmanagerProcess(binary, config, workdir)
        workers = Workers(
            workdir,
            {
                "PYTHONUNBUFFERED": "1",
                "REACHWATCH_BROKER_URL": broker.url,
                "REACHWATCH_APP_ID": f"rw-{tag}",
                "REACHWATCH_INPUT_TOPICS": input_topic,
                "REACHWATCH_ALERTS_TOPIC": alerts_topic,
                "REACHWATCH_DLQ_TOPIC": f"dlq-{tag}",
                "REACHWATCH_EXPOSURES_TOPIC": exposures_topic,
                "REACHWATCH_REGISTRY_DIR": str(company.registry),
                "REACHWATCH_WEB_TOKEN_FILE": str(workdir / "token"),
                "REACHWATCH_BATCH_MAX_WAIT": "0.1",
                "REACHWATCH_ALERTMANAGER_URL": alertmanager.url,
                "REACHWATCH_PAGE_RESEND_INTERVAL": "2",
                **ONE_RECORD_BATCHES,
            },
        )
        try:
            alertmanager.wait_ready()
            first, _ = workers.start()
            # 1-2: the grant, then the first half of the readers.
            _produce(bootstrap, input_topic, _lines([story.grant, *story.first_half]))
            first_outside = {e["principal"] for e in story.first_half} & story.outside
            _read(bootstrap, alerts_topic, lambda rs: bool(_opened(rs)))
            result.exposures_before_kill = _read(
                bootstrap,
                exposures_topic,
                lambda rs: any(first_outside <= {r["principal"] for r in x["readers"]} for x in rs),
            )
            wait_until(lambda: _pages(receiver, "firing"), 60, "the page")
            # 3: SIGKILL, and a new worker in its place.
            result.killed_pid = first.pid
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            _, port = workers.start()
            # 4: the second half.
            _produce(bootstrap, input_topic, _lines(story.second_half))
            _read(
                bootstrap,
                exposures_topic,
                lambda rs: any(story.outside <= {r["principal"] for r in x["readers"]} for x in rs),
                timeout=90,
            )
            status, body = _get(f"http://127.0.0.1:{port}/exposures?resource={RESOURCE}", token)
            result.web_record = orjson.loads(body) if status == 200 else {"status": status}
            status, body = _get(f"http://127.0.0.1:{port}/alerts/recent?state=open", token)
            result.recent_open_after_restart = orjson.loads(body) if status == 200 else []
            result.web_unauthorized, _ = _get(
                f"http://127.0.0.1:{port}/exposures?resource={RESOURCE}", None
            )
            # 5: event time moves 25 h on: the alert closes.
            _produce(bootstrap, input_topic, _lines([story.clock]))
            result.alerts = _read(
                bootstrap,
                alerts_topic,
                lambda rs: any(r.get("status") == "closed" and r["entity"] == RESOURCE for r in rs),
            )
            result.exposures = _read(
                bootstrap, exposures_topic, lambda rs: any(r["state"] == "closed" for r in rs)
            )
            wait_until(lambda: _pages(receiver, "resolved"), 60, "the resolved page")
            result.webhook = list(receiver.payloads)
            status, body = _get(
                f"http://127.0.0.1:{port}/alerts/recent?state=closed&kind=broad_audience", token
            )
            result.recent_closed = orjson.loads(body) if status == 200 else []
            _, metrics = _get(f"http://127.0.0.1:{port}/metrics", token)
            result.metrics = metrics.decode()
            cli = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "reachwatch.streams.cli",
                    "exposure-report",
                    "--broker",
                    broker.url,
                    "--topic",
                    exposures_topic,
                    "--resource",
                    RESOURCE,
                    "--json",
                ],
                capture_output=True,
                timeout=120,
            )
            assert cli.returncode == 0, cli.stderr.decode()
            result.cli_json = orjson.loads(cli.stdout)
        finally:
            workers.stop_all()
            alertmanager.stop()
    yield result


def test_the_exposure_opens_an_alert_and_a_page_with_the_entity(run):
    opened = _opened(run.alerts)
    assert len(opened) == 1 and opened[0]["schema_version"] == 2
    firing = [
        a
        for a in run.webhook
        for a in a.get("alerts", [])
        if a["labels"].get("alertname") == PAGE and a["status"] == "firing"
    ]
    assert firing, "no page"
    page = firing[0]
    assert page["annotations"]["entity"] == RESOURCE
    assert page["annotations"]["alert_id"] == opened[0]["alert_id"]
    assert RESOURCE in page["annotations"]["summary"]
    assert "exposure-report" in page["annotations"]["exposure_report"]
    assert page["labels"]["kind"] == "broad_audience" and page["labels"]["team"] == "hr"
    assert page["labels"]["sensitivity"] == "restricted"
    assert RESOURCE not in json.dumps(page["labels"])  # labels stay low-cardinality


def test_the_record_lists_exactly_the_outside_readers(run):
    final = [r for r in run.exposures if r["state"] == "closed"][-1]
    listed = {r["principal"] for r in final["readers"]}
    assert listed == run.story.outside  # none missing
    assert not listed & run.story.insiders  # none from the owning team
    assert final["reader_count"] == len(run.story.outside)
    reads = [e for e in run.story.first_half + run.story.second_half]
    for row in final["readers"]:
        mine = [e for e in reads if e["principal"] == row["principal"]]
        assert row["reads"] == len(mine) and row["group"] == mine[0]["principal_group"]
        assert parse_timestamp(row["first_read"]) == pytest.approx(mine[0]["ts"], abs=0.01)


def test_the_grant_change_is_named_as_cause(run):
    final = [r for r in run.exposures if r["state"] == "closed"][-1]
    assert final["cause"]["by"] == GRANTOR
    assert final["cause"]["action"] == "share-organization"
    assert parse_timestamp(final["cause"]["ts"]) == pytest.approx(run.story.grant["ts"], abs=1)
    assert f"opened by {GRANTOR}" in final["summary"] and "company-wide link" in final["summary"]


def test_a_sigkilled_worker_keeps_the_record(run):
    before = {r["principal"] for x in run.exposures_before_kill for r in x["readers"]}
    first_half = {e["principal"] for e in run.story.first_half} & run.story.outside
    assert first_half <= before
    # The record after the restart still holds the readers only the killed worker saw.
    final = [r for r in run.exposures if r["state"] == "closed"][-1]
    assert first_half <= {r["principal"] for r in final["readers"]}
    assert run.web_record is not None and run.web_record.get("resource") == RESOURCE
    assert run.web_unauthorized == 401
    # /alerts/recent of the new worker still holds what the killed one published.
    opened = _opened(run.alerts)[0]
    assert opened["alert_id"] in {a["alert_id"] for a in run.recent_open_after_restart}


def test_closed_event_and_resolved_page_after_the_quiet_period(run):
    closed = [r for r in run.alerts if r.get("status") == "closed" and r["entity"] == RESOURCE]
    opened = _opened(run.alerts)[0]
    assert len({c["alert_id"] for c in closed}) == 1 and closed[0]["alert_id"] == opened["alert_id"]
    assert closed[0]["final"]["messages"] >= 1 and closed[0]["duration_s"] >= 24 * 3600
    resolved = [
        a
        for p in run.webhook
        for a in p.get("alerts", [])
        if a["labels"].get("alertname") == PAGE and a["status"] == "resolved"
    ]
    assert resolved and resolved[-1]["annotations"]["alert_id"] == opened["alert_id"]
    assert [r["alert_id"] for r in run.recent_closed] == [opened["alert_id"]]
    assert 'reachwatch_pages_total{event="resolved"} 1.0' in run.metrics


def test_exposure_report_prints_the_record_from_the_topic(run):
    record = run.cli_json
    assert record is not None
    for key in ("resource", "sensitivity", "opened", "closed", "cause", "readers"):
        assert key in record
    assert record["resource"] == RESOURCE and record["sensitivity"] == "restricted"
    assert record["closed"] is not None
    assert {r["principal"] for r in record["readers"]} == run.story.outside
    assert set(record["readers"][0]) >= {"principal", "group", "first_read", "last_read", "reads"}
