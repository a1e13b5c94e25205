"""Stream vs replay on a simulated company: alerts, late events and events scored per side.

    python bench/parity.py [--scale 0.2] [--no-history] [--worker-python PATH]
                           [--restart-at 0.5 [--kill] [--down 5]]

Simulates a company, trains on its history, replays history + test days offline, then
produces the same files at once to a 4-partition topic keyed by principal and lets one
worker (``--worker-python``: the interpreter whose reachwatch runs it, e.g. another
checkout's venv, to measure an older version) work through them. Events scored per side
are read from the state changelogs (the sum of every entity's read count), so an old
worker without per-side counters is measured the same way. With ``--restart-at F`` the
worker is stopped (SIGTERM, or SIGKILL with ``--kill``) once it has taken F of the input
messages, and a second one started ``--down`` seconds later on the same data dir and
consumer group; late and repeated events are then given per worker. Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import parse_event, parse_timestamp
from reachwatch.models.registry import Registry
from reachwatch.models.simulation import simulate
from reachwatch.models.training import TrainingParams, fit
from reachwatch.models.windows import decode_state
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.local.broker import embedded_broker, free_port
from reachwatch.streams.offline.replay import Tally, collect_events, run_replay

PARTITIONS = 4


def _replay(files: list[Path], pipeline: Pipeline) -> dict[str, Any]:
    tally = Tally()
    batches = list(collect_events(files, Chain(get_adapter("native")), tally, keep_grants=True))
    alerts: list[Any] = []
    run_replay(batches, pipeline, tally, alerts.append)
    resource_late, states = 0, {}
    for events in batches:
        for start in range(0, len(events), 2000):
            resource_late += pipeline.observe_resources(events[start:start + 2000], states).late
    return {
        "events": tally.accepted,
        "alerts": Counter((a.kind, a.entity, a.alert_id, a.severity, a.revision) for a in alerts),
        "late": {"principal": tally.late, "resource": resource_late},
    }


def _produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(30)
    # One record per batch: tansu 0.6.0 reports end offsets as the first offset of the last
    # batch + 1 (see tests/integration/test_stream_parity.py).
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "batch.num.messages": 1, "queue.buffering.max.messages": 500_000})
    for line in lines:
        key = orjson.loads(line)["principal"].encode()
        while True:
            try:
                producer.produce(topic, key=key, value=line)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0


Record = tuple[bytes | None, bytes | None]


def _read(bootstrap: str, topic: str, quiet: float = 3.0) -> list[Record]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            return []
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        out: list[Record] = []
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            for batch in consumer.poll(timeout_ms=300).values():
                out.extend((m.key, m.value) for m in batch)
                last = time.monotonic()
        return out
    finally:
        consumer.close()


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as response:
        return orjson.loads(response.read())


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("reachwatch_") and " " in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def _scored_from_changelog(bootstrap: str, app_id: str, side: str) -> int:
    latest: dict[bytes, bytes | None] = {}
    for key, value in _read(bootstrap, f"{app_id}-{side}-state-changelog"):
        if key is not None:
            latest[key] = value
    return sum(decode_state(v).events for v in latest.values() if v)


class _Worker:
    """One ``reachwatch run`` on a free port, its output in ``log``; stopped by its PID."""

    def __init__(self, python: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [python, "-m", "reachwatch.streams.cli", "run"],
                env={**env, "REACHWATCH_WEB_PORT": str(self.port)},
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait(self, done: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.5)
            try:
                status = _status(self.port)
            except OSError:
                continue
            if done(status):
                return status
        raise SystemExit(f"worker never got there in {timeout:.0f} s: {self.log}")

    def wait_quiet(self, messages: int, timeout: float) -> dict[str, Any]:
        """Until it has taken ``messages`` and nothing moved for 10 s."""
        last: Any = None
        still = time.monotonic()

        def quiet(status: dict[str, Any]) -> bool:
            nonlocal last, still
            now = (status["messages_in"], status["alerts_out"],
                   status["principals"], status["resources"])
            if now != last:
                last, still = now, time.monotonic()
            taken = status["messages_in"] >= messages and bool(status["principals"])
            return taken and time.monotonic() - still > 10

        return self.wait(quiet, timeout)

    def counters(self) -> dict[str, Any]:
        metrics = _metrics(self.port)
        return {
            metric: {side: metrics.get(f'reachwatch_{metric}_total{{side="{side}"}}')
                     for side in ("principal", "resource")}
            for metric in ("events_scored", "events_late", "events_repeated")
        }

    def stop(self, signum: int) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--no-history", action="store_true")
    parser.add_argument("--worker-python", default=sys.executable)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--restart-at", type=float, default=0.0,
                        help="stop the worker after this fraction of the input, start another")
    parser.add_argument("--kill", action="store_true", help="stop it with SIGKILL")
    parser.add_argument("--down", type=float, default=5.0, help="seconds between the two")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rw-parity-"))
    simulate(root / "data", seed=7, scale=args.scale)
    history = sorted(
        (parse_event(orjson.loads(line))
         for line in (root / "data" / "history.jsonl").read_bytes().splitlines() if line.strip()),
        key=lambda e: e.ts,
    )
    fitted = fit(history, params=TrainingParams(n_estimators=50, seed=0))
    registry = Registry(root / "registry")
    version = registry.write(fitted.detectors, fitted.profiles, fitted.metadata)
    registry.promote(version)
    files = ([] if args.no_history else [root / "data" / "history.jsonl"]) + [
        root / "data" / "test.jsonl"]
    replay = _replay(files, Pipeline(registry.load(version)))
    lines: list[bytes] = []
    for path in files:
        rows = [line for line in path.read_bytes().splitlines() if line.strip()]
        rows.sort(key=lambda raw: parse_timestamp(orjson.loads(raw)["ts"]))
        lines.extend(rows)
    with embedded_broker(data_dir=root / "broker") as broker:
        app_id, topic, alerts_topic = "rw-parity", "parity-events", "parity-alerts"
        _produce(broker.bootstrap, topic, lines)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "REACHWATCH_BROKER_URL": broker.url,
               "REACHWATCH_APP_ID": app_id, "REACHWATCH_INPUT_TOPICS": topic,
               "REACHWATCH_ALERTS_TOPIC": alerts_topic, "REACHWATCH_DLQ_TOPIC": f"{topic}-dlq",
               "REACHWATCH_REGISTRY_DIR": str(root / "registry"),
               "REACHWATCH_DATA_DIR": str(root / "worker"),
               "REACHWATCH_PARTITIONS": str(PARTITIONS), "REACHWATCH_LOG_LEVEL": "warning"}
        (root / "worker").mkdir()
        started = time.monotonic()
        workers: list[dict[str, Any]] = []
        if args.restart_at:
            first = _Worker(args.worker_python, env, root / "worker-1.log")
            try:
                status = first.wait(lambda s: s["messages_in"] >= args.restart_at * len(lines),
                                    args.timeout)
                workers.append(first.counters())
            finally:
                first.stop(signal.SIGKILL if args.kill else signal.SIGTERM)
            workers[-1]["messages_in"] = status["messages_in"]
            time.sleep(args.down)
        last = _Worker(args.worker_python, env, root / "worker-2.log")
        try:
            # After a restart the second worker takes what the first left, and repeats.
            status = last.wait_quiet(0 if args.restart_at else len(lines), args.timeout)
            workers.append({**last.counters(), "messages_in": status["messages_in"]})
            elapsed = time.monotonic() - started
            alerts = Counter()
            for _, value in _read(broker.bootstrap, alerts_topic):
                a = orjson.loads(value or b"{}")
                if a.get("status") == "closed":  # the replay writes no closing message
                    continue
                alerts[(a["kind"], a["entity"], a["alert_id"], a["severity"], a["revision"])] += 1
            stream = {
                "scored_from_state": {side: _scored_from_changelog(broker.bootstrap, app_id, side)
                                      for side in ("principal", "resource")},
                "workers": workers,
                "alerts": sum(alerts.values()),
                "seconds": round(elapsed, 1),
            }
        finally:
            last.stop(signal.SIGTERM)
    expected = replay["alerts"]
    print(orjson.dumps({
        "scale": args.scale, "events": len(lines), "worker_python": args.worker_python,
        "restart_at": args.restart_at, "kill": args.kill,
        "replay": {"alerts": sum(expected.values()), "late": replay["late"],
                   "alerts_by_kind": dict(Counter(k[0] for k in expected.elements()))},
        "stream": {**stream, "alerts_by_kind": dict(Counter(k[0] for k in alerts.elements()))},
        "alerts_equal": alerts == expected,
        "alert_sets_equal": set(alerts) == set(expected),
        "missing_alerts": len(list((expected - alerts).elements())),
        "extra_alerts": len(list((alerts - expected).elements())),
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
