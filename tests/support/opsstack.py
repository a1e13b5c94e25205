"""Real Prometheus and Alertmanager processes and a webhook receiver, for ops-config tests.

Used by tests/dashboards (PromQL parsing, inhibition) and by the end-to-end page test in
tests/integration. Every process listens on a
free loopback port, keeps its data in a directory the caller owns, and is stopped by the
PID this module holds.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
RULES_DIR = DASHBOARDS / "prometheus" / "rules"
ALERTMANAGER_CONFIG = DASHBOARDS / "alertmanager" / "alertmanager.yml"


def find_binary(*names: str) -> str | None:
    """First of ``names`` on PATH (Debian calls Alertmanager ``prometheus-alertmanager``)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, data: Any = None, timeout: float = 5.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:  # Prometheus answers bad queries with 400 + JSON
        raw = exc.read()
    return json.loads(raw) if raw else None


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError):
            last = None
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class _Server:
    """A child process with an HTTP readiness endpoint, stopped by its PID."""

    ready_path = "/-/ready"

    def __init__(self, argv: Sequence[str], port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            list(argv), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args[0]} exited: {self.log_tail()}")
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as response:
                return bool(response.status == 200)

        wait_until(ready, timeout, f"{self.url}{self.ready_path}")

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PrometheusProcess(_Server):
    """``prometheus`` with the given config, an empty TSDB under ``workdir``."""

    def __init__(self, binary: str, config: Path, workdir: Path, port: int | None = None) -> None:
        port = port or free_port()
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ]
        super().__init__(argv, port, workdir / "prometheus.log")

    def query(self, expr: str) -> dict[str, Any]:
        """The raw /api/v1/query answer (``status`` is "error" for a bad expression)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer: dict[str, Any] = http_json(url)
        return answer

    def alerts(self) -> list[dict[str, Any]]:
        return list(http_json(f"{self.url}/api/v1/alerts")["data"]["alerts"])

    def targets_up(self) -> bool:
        active = http_json(f"{self.url}/api/v1/targets")["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)


class AlertmanagerProcess(_Server):
    """``alertmanager`` (clustering off) with the given config, state under ``workdir``."""

    def __init__(self, binary: str, config: Path, workdir: Path, port: int | None = None) -> None:
        port = port or free_port()
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ]
        super().__init__(argv, port, workdir / "alertmanager.log")

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        http_json(f"{self.url}/api/v2/alerts", alerts)

    def alertnames(self) -> set[str]:
        """Names of the alerts Alertmanager holds now (``GET /api/v2/alerts``)."""
        return {a["labels"]["alertname"] for a in http_json(f"{self.url}/api/v2/alerts")}


class WebhookReceiver:
    """Collects Alertmanager webhook payloads POSTed to ``url`` (a loopback HTTP server)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                payload["_path"] = self.path
                with receiver._lock:
                    receiver.payloads.append(payload)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def alertnames(self, path: str | None = None, status: str = "firing") -> set[str]:
        """Names of alerts received (optionally only on one receiver ``path``)."""
        with self._lock:
            return {
                alert["labels"]["alertname"]
                for payload in self.payloads
                if path is None or payload["_path"] == path
                for alert in payload.get("alerts", [])
                if alert.get("status") == status
            }

    def wait_for(self, alertname: str, timeout: float, path: str | None = None) -> None:
        wait_until(lambda: alertname in self.alertnames(path), timeout, f"webhook {alertname}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_prometheus_config(
    path: Path,
    worker_targets: Sequence[str] = (),
    alertmanager_port: int | None = None,
    rule_files: Sequence[Path] = (),
    interval: str = "1s",
) -> Path:
    """A test twin of dashboards/prometheus/prometheus.yml: same job name, short intervals."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": "reachwatch", "static_configs": [{"targets": list(worker_targets)}]}
        ],
    }
    if alertmanager_port is not None:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        }
    path.write_text(yaml.safe_dump(config))
    return path


def write_alertmanager_config(path: Path, webhook_url: str) -> Path:
    """The repository's Alertmanager config, with every receiver replaced by the webhook.

    Routing, grouping and inhibition stay exactly as committed; each receiver posts to
    ``webhook_url/<receiver name>`` so a test can tell pages from tickets. Waits shrink to
    test scale.
    """
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": f"{webhook_url}/{r['name']}"}]}
        for r in config["receivers"]
    ]

    def shrink(route: dict[str, Any]) -> None:
        for key, value in (("group_wait", "0s"), ("group_interval", "1s")):
            if key in route or route is config["route"]:
                route[key] = value
        for child in route.get("routes", []):
            shrink(child)

    shrink(config["route"])
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_tool(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command-line tool (promtool, amtool...) and capture its output."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, cwd=cwd)
