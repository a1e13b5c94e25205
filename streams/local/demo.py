"""``make demo``: the whole product on a laptop in about a minute.

Embedded broker -> simulated company -> trained model -> a worker subprocess -> the test
period streamed into Kafka at a visible pace (event time compressed into ``seconds`` of
wall time) -> alerts read back from the alerts topic and shown live -> an evaluation
against the simulation's labels. Every process is stopped by the PID held here, also on
Ctrl-C. Producing and reading use aiokafka (a Faust dependency), so the demo needs no
test extras.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from reachwatch.models.errors import ReachwatchError
from reachwatch.models.records import parse_event, parse_timestamp
from reachwatch.streams.local.broker import BrokerProcess, embedded_broker, free_port
from reachwatch.streams.local.process import stop_process

SEVERITY_STYLE = {
    "low": "cyan", "medium": "yellow", "high": "bold red", "critical": "bold white on red"
}
SHOWN_ALERTS = 14
WORKER_READY_S = 90.0


def _train(workdir: Path, scale: float, console: Console) -> tuple[Path, str, Path]:
    from reachwatch.models.registry import Registry
    from reachwatch.models.simulation.reference import simulate
    from reachwatch.models.training import fit

    data = workdir / "data"
    with console.status(f"Simulating a company (scale {scale})..."):
        summary = simulate(data, seed=7, scale=scale, history_days=14)
    console.print(
        f"[green]✓[/] simulated {summary.people} people, {summary.services} services, "
        f"{summary.datasets} datasets: {summary.history_events} history events, "
        f"{summary.test_events} in the test period with {summary.incidents} incidents"
    )
    with console.status("Training on the history (IsolationForest per alert kind)..."):
        started = time.monotonic()
        history = sorted(
            (parse_event(orjson.loads(line))
             for line in (data / "history.jsonl").read_bytes().splitlines() if line.strip()),
            key=lambda e: e.ts,
        )
        fitted = fit(history)
        registry = Registry(workdir / "registry")
        version = registry.write(fitted.detectors, fitted.profiles, fitted.metadata)
        registry.promote(version)
    console.print(f"[green]✓[/] trained model {version} in {time.monotonic() - started:.0f}s")
    return registry.root, version, data


def _start_worker(broker: BrokerProcess, registry: Path, workdir: Path, port: int) -> Any:
    env = {
        **os.environ,
        "REACHWATCH_BROKER_URL": broker.url,
        "REACHWATCH_REGISTRY_DIR": str(registry),
        "REACHWATCH_WEB_PORT": str(port),
        "REACHWATCH_DATA_DIR": str(workdir / "worker"),
        "REACHWATCH_BATCH_MAX_WAIT": "0.1",
    }
    log = (workdir / "worker.log").open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "reachwatch.streams.cli", "run"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()


def _wait_ready(worker: subprocess.Popen[bytes], port: int, workdir: Path) -> None:
    deadline = time.monotonic() + WORKER_READY_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise ReachwatchError(f"the worker exited early; see {workdir / 'worker.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1) as reply:
                if orjson.loads(reply.read()).get("assigned"):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise ReachwatchError(f"the worker was not ready in {WORKER_READY_S:.0f}s")


def _alert_table(rows: deque[dict[str, Any]], sent: int, total: int, received: int) -> Table:
    table = Table(title=f"live alerts from Kafka — {sent}/{total} events streamed, "
                  f"{received} alert messages", title_justify="left", expand=True)
    table.add_column("event time (UTC)", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("entity", no_wrap=True)
    table.add_column("summary", ratio=1, overflow="fold")
    for alert in rows:
        severity = alert.get("severity", "")
        revision = alert.get("revision", 0)
        table.add_row(
            str(alert.get("ts", ""))[:19].replace("T", " "),
            str(alert.get("kind", "")),
            f"[{SEVERITY_STYLE.get(severity, '')}]{severity}[/]",
            str(alert.get("entity", "")) + (f" (update {revision})" if revision else ""),
            str(alert.get("summary", "")),
        )
    return table


async def _stream(broker: BrokerProcess, lines: list[tuple[float, bytes]], seconds: float,
                  console: Console) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    alerts: list[dict[str, Any]] = []
    shown: deque[dict[str, Any]] = deque(maxlen=SHOWN_ALERTS)
    sent = 0
    try:
        partitions: set[int] | None = None
        while not partitions:  # the worker creates the topic at start; metadata may lag
            await consumer.topics()  # refreshes metadata
            partitions = consumer.partitions_for_topic("access-alerts")
            if not partitions:
                await asyncio.sleep(0.2)
        consumer.assign([TopicPartition("access-alerts", p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        first_ts, last_ts = lines[0][0], lines[-1][0]
        rate = (last_ts - first_ts) / seconds  # event seconds per wall second
        started = time.monotonic()
        with Live(_alert_table(shown, 0, len(lines), 0), console=console,
                  refresh_per_second=4) as live:
            quiet_until: float | None = None
            while True:
                now_event = first_ts + (time.monotonic() - started) * rate
                while sent < len(lines) and lines[sent][0] <= now_event:
                    # Only enqueues (aiokafka batches); delivery is awaited by flush().
                    await producer.send("access-events", lines[sent][1])
                    sent += 1
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        alert = orjson.loads(record.value)
                        alerts.append(alert)
                        shown.append(alert)
                live.update(_alert_table(shown, sent, len(lines), len(alerts)))
                if sent == len(lines):
                    if quiet_until is None:
                        await producer.flush()
                        quiet_until = time.monotonic() + 5.0  # let the last batches score
                    elif time.monotonic() > quiet_until:
                        break
    finally:
        await consumer.stop()
        await producer.stop()
    return alerts


def _exposure_grant(data: Path, labels: dict[str, Any]) -> list[tuple[float, bytes]]:
    """The permission change behind the simulated exposure, four minutes before it starts.

    The simulated company (``models.simulation``) has no permission changes; the demo adds
    the one its exposure incident implies: someone of the owning team shares the dataset
    with the whole company through a company-wide link.
    """
    incident = next((i for i in labels["incidents"] if i["kind"] == "broad_audience"), None)
    if incident is None:
        return []
    owner = None
    for line in (data / "history.jsonl").read_bytes().splitlines():
        event = orjson.loads(line)
        if event.get("resource") == incident["entity"]:
            owner = event.get("resource_group")
            sensitivity = event.get("sensitivity", "internal")
            if owner and event.get("principal_group") == owner:
                grant = {
                    "ts": parse_timestamp(incident["start"]) - 240.0,
                    "principal": event["principal"], "principal_group": owner,
                    "resource": incident["entity"], "resource_group": owner,
                    "sensitivity": sensitivity, "action": "share-organization",
                    "source": "sharepoint-web",
                }
                return [(grant["ts"], orjson.dumps(grant))]
    return []


def _exposure_report(broker: BrokerProcess, labels: dict[str, Any], console: Console,
                     workdir: Path) -> None:
    """End with what the SOC hands to legal and HR: the incident's exposure record."""
    from reachwatch.models.exposure import readers_csv
    from reachwatch.streams.cli.exposure import read_topic
    from reachwatch.streams.offline.exposures import pick

    incident = next((i for i in labels["incidents"] if i["kind"] == "broad_audience"), None)
    if incident is None:
        return
    resource = incident["entity"]
    records = asyncio.run(read_topic(broker.url, "access-exposures", resource, None, 20.0))
    record = pick(records, resource, None)
    console.rule("[bold]exposure report")
    console.print(f"$ reachwatch exposure-report --broker {broker.url} --resource {resource}")
    if record is None:
        console.print(f"[red]no exposure record for {resource}[/]")
        return
    console.print(record["summary"], highlight=False)
    console.print(f"alert {record['alert_id']} ({record['severity']}), {record['state']}; "
                  f"opened {record['opened']}, closed {record['closed'] or '-'}",
                  highlight=False)
    table = Table(title=f"first of {record['reader_count']} readers outside {record['owner']}",
                  title_justify="left")
    for column in ("principal", "team", "first read (UTC)", "last read (UTC)", "reads"):
        table.add_column(column, no_wrap=True)
    for reader in record["readers"][:8]:
        table.add_row(reader["principal"], str(reader["group"]),
                      reader["first_read"][:19].replace("T", " "),
                      reader["last_read"][:19].replace("T", " "), str(reader["reads"]))
    console.print(table)
    (workdir / "exposure.json").write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    (workdir / "exposure.csv").write_text(readers_csv(record))
    console.print(f"Full record: {workdir / 'exposure.json'}; readers as CSV: "
                  f"{workdir / 'exposure.csv'}")


def run_demo(*, keep_running: bool = False, scale: float = 0.3, seconds: float = 40.0,
             workdir: Path | None = None) -> int:
    """Run the demo; returns the exit code (0 when the seed exposure incident was caught)."""
    from reachwatch.models.evaluation import evaluate

    console = Console()
    owned_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="reachwatch-demo-")) if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]reachwatch demo")
    registry, _version, data = _train(workdir, scale, console)
    with embedded_broker(data_dir=workdir / "broker") as broker:
        console.print(f"[green]✓[/] embedded tansu broker pid {broker.pid} at {broker.url} "
                      "(memory-only; production runs on Apache Kafka)")
        port = free_port()
        worker = _start_worker(broker, registry, workdir, port)
        try:
            with console.status("Starting a Faust worker (joins its consumer group)..."):
                _wait_ready(worker, port, workdir)
            console.print(f"[green]✓[/] worker pid {worker.pid}; metrics at "
                          f"http://127.0.0.1:{port}/metrics, status at /status")
            labels = orjson.loads((data / "labels.json").read_bytes())
            lines = sorted(
                [*((parse_timestamp(orjson.loads(line)["ts"]), line)
                   for line in (data / "test.jsonl").read_bytes().splitlines() if line.strip()),
                 *_exposure_grant(data, labels)],
                key=lambda item: item[0],
            )
            console.print(f"Streaming {len(lines)} events of the test period in ~{seconds:.0f}s "
                          "into topic access-events; alerts come back on access-alerts:")
            alerts = asyncio.run(_stream(broker, lines, seconds, console))
            # Closed messages end alerts; the evaluation judges the alerts themselves.
            verdict = evaluate(labels, [a for a in alerts if a.get("status") != "closed"])
            console.rule("[bold]summary")
            console.print(verdict.render())
            console.print(
                f"{len(lines)} events, {len(alerts)} alert messages, "
                f"{len(verdict.caught)}/{len(verdict.verdicts)} incidents caught. "
                f"Worker log: {workdir / 'worker.log'}"
            )
            _exposure_report(broker, labels, console, workdir)
            if keep_running:
                console.print(f"[bold]Still running[/] (broker {broker.url}, metrics "
                              f"http://127.0.0.1:{port}/metrics). Ctrl-C stops both.")
                try:
                    while worker.poll() is None:
                        time.sleep(0.5)
                except KeyboardInterrupt:
                    pass
            caught_exposure = any(
                v.caught for v in verdict.verdicts if v.incident.kind == "broad_audience"
            )
            return 0 if caught_exposure else 1
        finally:
            stop_process(worker)
            if owned_tmp and not keep_running:
                console.print(f"[dim]data kept in {workdir}[/]")
