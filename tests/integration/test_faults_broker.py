"""The broker goes away under a running worker: it waits (no crash, no spin), says so, resumes.

Each test runs its own tansu broker (freezing the session's broker would stall every other
test). Two kinds of outage:

- frozen (SIGSTOP ... SIGCONT): the broker keeps its topics, offsets and group; this is a
  network partition or a long GC pause as the worker sees it;
- restarted (SIGTERM, then a new tansu on the same port): the shipped tansu is memory-only,
  so this is total broker data loss: topics, offsets and the consumer group are gone.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reachwatch.streams.local.broker import (
    BrokerProcess,
    embedded_broker,
    start_broker,
    stop_broker,
)

pytestmark = pytest.mark.integration

FREEZE_S = 20.0  # > session timeout (6 s): the group coordinator would evict a live member
HEALTH_INTERVAL_S = "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker of this test's own (shadows the session one for the fixtures built on it)."""
    with embedded_broker(data_dir=tmp_path / "broker") as running:
        yield running


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, from /proc (no psutil needed)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def broker_up(worker) -> float | None:
    found = re.search(r"^reachwatch_broker_up (\S+)$", worker.metrics(), re.MULTILINE)
    return float(found.group(1)) if found else None


def wait_for_broker_up(worker, value: float, timeout: float) -> float:
    """Seconds until the worker's ``reachwatch_broker_up`` reads ``value``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        assert worker.process.poll() is None, worker.log_tail()
        try:
            if broker_up(worker) == value:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"broker_up never became {value}\n{worker.log_tail()}")


def test_frozen_broker_worker_waits_reports_and_resumes_without_losing_the_alert(
    company, service, start_worker, clients
):
    worker = start_worker(REACHWATCH_HEALTH_INTERVAL=HEALTH_INTERVAL_S)
    worker.wait_assigned()
    wait_for_broker_up(worker, 1.0, 30)
    pid = worker.pid
    lines = company.lines_between(company.incident_start - 1800, company.incident_end)
    clients.produce_confluent(service.input_topic, lines)

    # Freeze while the worker is still busy with the batch: whatever it was doing (reading,
    # forwarding, publishing the alert, committing) must wait, not fail or be dropped.
    os.kill(service.broker.pid, signal.SIGSTOP)
    try:
        detected = wait_for_broker_up(worker, 0.0, FREEZE_S)
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        time.sleep(max(1.0, FREEZE_S - detected))
        cpu_share = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
        assert worker.process.poll() is None, worker.log_tail()
    finally:
        os.kill(service.broker.pid, signal.SIGCONT)
    recovered = wait_for_broker_up(worker, 1.0, 60)

    entity = company.incident["entity"]
    alerts = clients.read_topic(
        service.alerts_topic, lambda r: any(a["entity"] == entity for a in r), timeout=120
    )
    print(f"\nfrozen broker: broker_up=0 after {detected:.1f}s, worker CPU while frozen "
          f"{cpu_share:.1%} of a core, broker_up=1 {recovered:.1f}s after SIGCONT")
    assert cpu_share < 0.25, f"worker spins while the broker is frozen: {cpu_share:.0%} CPU"
    assert any(a["entity"] == entity and a["kind"] == "broad_audience" for a in alerts)
    log = worker.log_path.read_text(errors="replace")
    assert "broker unreachable" in log
    assert "broker reachable again" in log
    done = worker.wait_until(lambda s: s["messages_in"] >= len(lines), 60, "all messages")
    assert worker.pid == pid and done["messages_in"] >= len(lines)


@pytest.mark.slow
def test_broker_restart_with_data_loss_worker_survives_and_consumes_again(
    company, service, start_worker, clients, tmp_path
):
    worker = start_worker(REACHWATCH_HEALTH_INTERVAL=HEALTH_INTERVAL_S)
    worker.wait_assigned()
    wait_for_broker_up(worker, 1.0, 30)
    pid = worker.pid
    clients.produce_confluent(service.input_topic, company.lines_between(
        company.day_start, company.day_start + 3600))
    worker.wait_until(lambda s: s["messages_in"] > 0, 60, "first messages")

    port = service.broker.port
    stop_broker(service.broker)
    down = wait_for_broker_up(worker, 0.0, 30)
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    time.sleep(FREEZE_S)
    cpu_share = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
    # Same port, empty memory: every topic, offset and the group are gone.
    reborn = start_broker(port=port, data_dir=tmp_path / "broker-2")
    try:
        service.broker = reborn
        back = wait_for_broker_up(worker, 1.0, 60)
        started = time.monotonic()
        lines = company.lines_between(company.incident_start - 1800, company.incident_end)
        clients.produce_confluent(service.input_topic, lines)
        entity = company.incident["entity"]
        alerts = clients.read_topic(
            service.alerts_topic, lambda r: any(a["entity"] == entity for a in r), timeout=180
        )
        print(f"\nbroker restart (data lost): broker_up=0 after {down:.1f}s, CPU while down "
              f"{cpu_share:.1%}, broker_up=1 {back:.1f}s after restart, incident alert "
              f"{time.monotonic() - started:.1f}s after re-producing")
        assert worker.process.poll() is None and worker.pid == pid, worker.log_tail()
        assert cpu_share < 0.25
        assert any(a["entity"] == entity for a in alerts), worker.log_tail(80)
    finally:
        stop_broker(reborn)
