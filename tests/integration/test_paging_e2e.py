"""An exposure streamed through Kafka ends as a page: worker -> Prometheus -> Alertmanager.

One run (module fixture) drives the real chain: a ``reachwatch run`` worker with a bearer
token on its web views, a real Prometheus scraping it with that token (1 s intervals, the
repository's rules), a real Alertmanager with the repository's routing whose receivers post
to a webhook in this test. The simulated company's test day up to the end of its exposure
incident (restricted data read by everyone) is produced with librdkafka, plus a few broken
messages for the dead-letter path; then a tampered model is promoted, which must raise a
ticket, not a page. While everything still runs, every Grafana panel's PromQL is evaluated
and the worker's /metrics and /alerts/recent are read. The tests assert on that record.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
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

# tests/dashboards is not a package: put it on the path for its process helpers.
from support.opsstack import (
    DASHBOARDS,
    RULES_DIR,
    AlertmanagerProcess,
    PrometheusProcess,
    WebhookReceiver,
    find_binary,
    wait_until,
    write_alertmanager_config,
    write_prometheus_config,
)

from reachwatch.streams.local.broker import BrokerProcess, free_port

pytestmark = pytest.mark.integration

PAGE = "ReachwatchRestrictedExposure"
TICKET = "ReachwatchModelReloadFailed"  # raised here by promoting a tampered model
TOKEN = "e2e-" + uuid.uuid4().hex
BROKEN_MESSAGES = [b"not json", b'{"schema_version": 1}', b"\xff\xfe"]
# Grafana macros as a dashboard would expand them for the last few minutes of a 1 s scrape.
MACROS = {"$__rate_interval": "1m", "$__interval": "1s", "$__range": "5m", "$job": "reachwatch"}
KIND_VALUES = ("broad_reader", "broad_audience")
# Panels that cannot have data in a fresh one-minute run, and why.
NO_DATA_EXPECTED = {
    # Compares with the same hour a day ago: the TSDB is one minute old.
    "model/Alerts per hour vs. a day ago/B",
}


@dataclass
class PagingRun:
    """What the run observed, for the tests to judge."""

    webhook: list[dict[str, Any]]
    seconds_to_page: float
    panels: dict[str, dict[str, Any]]  # "dashboard/panel/refId" -> Prometheus answer
    metric_names: set[str]  # sample names in the worker's /metrics
    unauthenticated: dict[str, int]  # path -> HTTP status without the token
    recent: list[dict[str, Any]]  # /alerts/recent with the token
    topic_alerts: list[dict[str, Any]]  # the alerts topic, read back
    gauges: dict[str, list[dict[str, Any]]]  # health gauges as Prometheus has them
    incident_entity: str
    model_version: str


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _panel_queries() -> dict[str, str]:
    queries: dict[str, str] = {}
    for path in sorted((DASHBOARDS / "grafana" / "json").glob("*.json")):
        dashboard = json.loads(path.read_text())
        panels = [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]
        for panel in panels:
            for target in panel.get("targets", []):
                if target["datasource"]["type"] != "prometheus":
                    continue
                expr = target["expr"]
                for macro, value in sorted(MACROS.items(), key=lambda kv: -len(kv[0])):
                    expr = expr.replace(macro, value)
                where = f"{path.stem}/{panel['title']}/{target['refId']}"
                if "$kind" in expr:  # a template variable: the panel shows each value
                    for kind in KIND_VALUES:
                        queries[f"{where}[{kind}]"] = expr.replace("$kind", kind)
                else:
                    queries[where] = expr
    return queries


def _has_data(answer: dict[str, Any]) -> bool:
    """At least one series with a finite value (Grafana shows NaN as "No data")."""
    if answer.get("status") != "success":
        return False
    data = answer["data"]
    if data["resultType"] == "scalar":
        return math.isfinite(float(data["result"][1]))
    return any(math.isfinite(float(series["value"][1])) for series in data["result"])


def _start_worker(broker: BrokerProcess, registry: Path, workdir: Path, topics: dict[str, str],
                  token_file: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log_path = workdir / "worker.log"
    environ = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "REACHWATCH_BROKER_URL": broker.url,
        "REACHWATCH_APP_ID": topics["app_id"],
        "REACHWATCH_INPUT_TOPICS": topics["input"],
        "REACHWATCH_ALERTS_TOPIC": topics["alerts"],
        "REACHWATCH_DLQ_TOPIC": topics["dlq"],
        "REACHWATCH_REGISTRY_DIR": str(registry),
        "REACHWATCH_WEB_PORT": str(port),
        "REACHWATCH_WEB_TOKEN_FILE": str(token_file),
        "REACHWATCH_DATA_DIR": str(workdir / "worker-data"),
        "REACHWATCH_RELOAD_POLL_INTERVAL": "0.5",
        "REACHWATCH_BATCH_MAX_WAIT": "0.1",
        "REACHWATCH_HEALTH_INTERVAL": "1",
        "REACHWATCH_RECENT_ALERTS": "1000",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "reachwatch.streams.cli", "run"],
            env=environ, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    return process, port, log_path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _tamper_and_promote(registry: Path, version: str) -> None:
    """Point CURRENT at a copy of ``version`` whose artifact no longer matches its checksum."""
    tampered = registry / f"{version}-tampered"
    shutil.copytree(registry / version, tampered)
    artifact = next(p for p in sorted(tampered.iterdir()) if p.suffix in (".npz", ".skops"))
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    (registry / "CURRENT").write_text(tampered.name + "\n")


@pytest.fixture(scope="module")
def paging_run(broker, company, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PagingRun]:
    prometheus_bin = find_binary("prometheus")
    alertmanager_bin = find_binary("alertmanager", "prometheus-alertmanager")
    if prometheus_bin is None or alertmanager_bin is None:
        pytest.skip("prometheus/alertmanager not installed; `make tools` provides them")

    workdir = tmp_path_factory.mktemp("paging")
    # A private registry: the tampered promotion must not reach other tests' workers.
    registry = shutil.copytree(company.registry, workdir / "registry")
    tag = uuid.uuid4().hex[:8]
    topics = {"app_id": f"rw-page-{tag}", "input": f"events-{tag}",
              "alerts": f"alerts-{tag}", "dlq": f"dlq-{tag}"}
    token_file = workdir / "web-token"
    token_file.write_text(TOKEN + "\n")
    clients = _outside_clients(broker)

    with WebhookReceiver() as webhook:
        am_config = write_alertmanager_config(workdir / "alertmanager.yml", webhook.url)
        process, port, log_path = _start_worker(broker, registry, workdir, topics, token_file)
        try:
            with AlertmanagerProcess(alertmanager_bin, am_config, workdir) as alertmanager:
                prom_config = write_prometheus_config(
                    workdir / "prometheus.yml",
                    worker_targets=[f"127.0.0.1:{port}"],
                    alertmanager_port=alertmanager.port,
                    rule_files=sorted(RULES_DIR.glob("*.yml")),
                )
                # The token guard as production configures it (see prometheus.yml).
                config = yaml.safe_load(prom_config.read_text())
                config["scrape_configs"][0]["authorization"] = {
                    "type": "Bearer", "credentials_file": str(token_file)}
                prom_config.write_text(yaml.safe_dump(config))
                with PrometheusProcess(prometheus_bin, prom_config, workdir) as prometheus:
                    alertmanager.wait_ready()
                    prometheus.wait_ready()
                    base = f"http://127.0.0.1:{port}"

                    def assigned() -> bool:
                        if process.poll() is not None:
                            raise AssertionError(_tail(log_path))
                        status, body = _get(base + "/status")
                        return status == 200 and bool(orjson.loads(body)["assigned"])

                    wait_until(assigned, 60, "worker partitions")
                    wait_until(prometheus.targets_up, 20, "worker scraped")

                    started = time.monotonic()
                    lines = company.lines_between(company.day_start, company.incident_end)
                    clients.produce_confluent(topics["input"], lines + BROKEN_MESSAGES)
                    try:
                        webhook.wait_for(PAGE, timeout=60, path="/pager")
                    except TimeoutError:
                        raise AssertionError(_diagnosis(prometheus, webhook, log_path)) from None
                    seconds_to_page = time.monotonic() - started

                    _tamper_and_promote(registry, company.version)
                    webhook.wait_for(TICKET, timeout=30, path="/tickets")

                    panels = {where: prometheus.query(expr)
                              for where, expr in _panel_queries().items()}
                    gauges = {
                        name: prometheus.query(name)["data"]["result"]
                        for name in ("reachwatch_broker_up", "reachwatch_tracked_entities",
                                     "reachwatch_consumer_lag_messages",
                                     "reachwatch_model_info")
                    }
                    _, scraped = _get(base + "/metrics", TOKEN)
                    names = {line.split("{")[0].split(" ")[0]
                             for line in scraped.decode().splitlines()
                             if line and not line.startswith("#")}
                    unauthenticated = {path: _get(base + path)[0]
                                       for path in ("/metrics", "/alerts/recent", "/table/")}
                    recent = orjson.loads(_get(base + "/alerts/recent", TOKEN)[1])
                    topic_alerts = clients.read_topic(
                        topics["alerts"], lambda r: len(r) >= len(recent), timeout=20)
        finally:
            _stop(process)
        yield PagingRun(
            webhook=list(webhook.payloads),
            seconds_to_page=seconds_to_page,
            panels=panels,
            metric_names=names,
            unauthenticated=unauthenticated,
            recent=recent,
            topic_alerts=topic_alerts,
            gauges=gauges,
            incident_entity=company.incident["entity"],
            model_version=company.version,
        )


def _outside_clients(broker: BrokerProcess) -> Any:
    # By file path: the module name "conftest" is shared by every conftest.py in the tree.
    spec = importlib.util.spec_from_file_location(
        "integration_conftest", Path(__file__).with_name("conftest.py"))
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while executing
        spec.loader.exec_module(module)
    return module.OutsideClients(broker)


def _diagnosis(prometheus: PrometheusProcess, webhook: WebhookReceiver, log_path: Path) -> str:
    exposures = prometheus.query('reachwatch_alerts_by_sensitivity_total{kind="broad_audience"}')
    return (f"no page at the webhook.\nPrometheus alerts: {prometheus.alerts()}\n"
            f"exposure counters: {exposures.get('data')}\nwebhook: {webhook.payloads}\n"
            f"worker log:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _delivered(run: PagingRun, path: str) -> list[dict[str, Any]]:
    return [alert for payload in run.webhook if payload["_path"] == path
            for alert in payload["alerts"] if alert["status"] == "firing"]


def test_restricted_exposure_pages_the_pager(paging_run: PagingRun) -> None:
    pages = [a for a in _delivered(paging_run, "/pager") if a["labels"]["alertname"] == PAGE]
    assert pages, paging_run.webhook
    assert pages[0]["labels"]["severity"] == "page"
    assert pages[0]["annotations"]["runbook_url"] == "dashboards/runbooks/restricted-exposure.md"
    print(f"\ntime from first produced event to page at the webhook: "
          f"{paging_run.seconds_to_page:.1f} s")


def test_a_ticket_reaches_tickets_and_never_the_pager(paging_run: PagingRun) -> None:
    tickets = {a["labels"]["alertname"] for a in _delivered(paging_run, "/tickets")}
    paged = {a["labels"]["alertname"]: a["labels"]["severity"]
             for a in _delivered(paging_run, "/pager")}
    assert TICKET in tickets
    assert set(paged.values()) == {"page"}, paged


def test_every_grafana_panel_returns_data_during_the_incident(paging_run: PagingRun) -> None:
    empty = {where for where, answer in paging_run.panels.items() if not _has_data(answer)}
    assert empty == NO_DATA_EXPECTED, {w: paging_run.panels[w] for w in empty}


def test_every_metric_the_rules_and_dashboards_use_is_served(paging_run: PagingRun) -> None:
    sources = [*RULES_DIR.glob("*.yml"), *(DASHBOARDS / "grafana" / "json").glob("*.json")]
    text = "\n".join(path.read_text() for path in sources)
    # Recording-rule outputs (level:metric:ops) contain colons and are not matched here.
    used = set(re.findall(r"(?<![:\w])reachwatch_[a-z_]+(?![:\w])", text))
    assert len(used) > 10
    assert used - paging_run.metric_names == set()


def test_health_gauges_are_sampled(paging_run: PagingRun) -> None:
    gauges = paging_run.gauges
    assert [float(s["value"][1]) for s in gauges["reachwatch_broker_up"]] == [1.0]
    sides = {s["metric"]["side"]: float(s["value"][1])
             for s in gauges["reachwatch_tracked_entities"]}
    assert sides.keys() == {"principal", "resource"} and min(sides.values()) > 0
    lag = gauges["reachwatch_consumer_lag_messages"]
    assert len(lag) == 1 and float(lag[0]["value"][1]) >= 0
    assert [s["metric"]["version"] for s in gauges["reachwatch_model_info"]] == [
        paging_run.model_version]


def test_web_views_refuse_without_the_token(paging_run: PagingRun) -> None:
    # Faust's own /table pages (window state per entity) are switched off altogether.
    assert paging_run.unauthenticated == {"/metrics": 401, "/alerts/recent": 401, "/table/": 404}


def test_recent_alerts_are_the_published_alerts_newest_first(paging_run: PagingRun) -> None:
    recent = paging_run.recent
    assert any(a["kind"] == "broad_audience" and a["entity"] == paging_run.incident_entity
               for a in recent)
    on_topic = {(a["alert_id"], a["revision"]): {k: v for k, v in a.items()
                                                 if not k.startswith("_")}
                for a in paging_run.topic_alerts}
    assert [on_topic.get((a["alert_id"], a["revision"])) for a in recent] == recent
    published_order = [(a["alert_id"], a["revision"]) for a in paging_run.topic_alerts]
    # Newest first: within one entity (one partition, in order) the ring reverses the topic.
    entity = paging_run.incident_entity
    mine = [(a["alert_id"], a["revision"]) for a in recent if a["entity"] == entity]
    assert mine == [key for key in reversed(published_order) if key in set(mine)]
