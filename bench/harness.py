"""Processes and clients the benchmarks share: preloading a topic, a worker subprocess,
reading its Prometheus counters, CPU and RSS of a PID.

Everything binds free loopback ports and stops the processes it started by their PID.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reachwatch.streams.local.broker import free_port
from reachwatch.streams.local.process import stop_process

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_bytes(pid: int) -> int:
    """The high-water mark of a process's resident memory (VmHWM)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


async def _produce(bootstrap: str, topic: str, values: Sequence[bytes], partitions: int) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    except Exception:  # already there: fine
        pass
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1 << 20, max_request_size=8 << 20)
    await producer.start()
    try:
        pending = []
        for index, value in enumerate(values):
            pending.append(await producer.send(topic, value, partition=index % partitions))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def preload(bootstrap: str, topic: str, values: Sequence[bytes], partitions: int = 4) -> None:
    """Write ``values`` to ``topic`` (created with ``partitions``), round-robin."""
    asyncio.run(_produce(bootstrap, topic, values, partitions))


@dataclass
class Subprocess:
    """A benchmarked process we started; stopped by its PID."""

    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.process, timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """The worker's /status JSON (model version, messages in, entities held...)."""
        import orjson

        url = f"http://127.0.0.1:{self.web_port}/status"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return orjson.loads(response.read())

    def metrics(self) -> dict[str, float]:
        """The worker's /metrics as {series: value} (labels kept in the series name)."""
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        # Generous: a scoring batch of several thousand events holds the worker's event
        # loop for a second or more on a loaded machine.
        with urllib.request.urlopen(url, timeout=15) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    values[name] = float(value)
                except ValueError:
                    pass
        return values


def start_worker(
    broker_url: str,
    registry: Path,
    workdir: Path,
    app_id: str,
    topic: str,
    alerts_topic: str,
    extra_env: dict[str, str] | None = None,
    command: Sequence[str] | None = None,
    instance: str = "",
) -> Subprocess:
    """``reachwatch run`` as a subprocess with its own app id, topics and web port;
    ``command`` is the CLI to run it with (default this checkout's; bench/load.py has the
    previous release's); ``instance`` tells apart workers of one app id (log, data dir)."""
    port = free_port()
    log_path = workdir / f"{app_id}{instance}.log"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "REACHWATCH_BROKER_URL": broker_url,
        "REACHWATCH_APP_ID": app_id,
        "REACHWATCH_INPUT_TOPICS": topic,
        "REACHWATCH_ALERTS_TOPIC": alerts_topic,
        "REACHWATCH_DLQ_TOPIC": f"{topic}-dlq",
        "REACHWATCH_REGISTRY_DIR": str(registry),
        "REACHWATCH_WEB_PORT": str(port),
        "REACHWATCH_DATA_DIR": str(workdir / f"{app_id}{instance}"),
        "REACHWATCH_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "reachwatch.streams.cli"]), "run"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    return Subprocess(process, log_path, port)


def scored_events(metrics: dict[str, float]) -> float:
    """Events the worker has finished with (scored, late or skipped), all input topics."""
    total = 0.0
    for name, value in metrics.items():
        if name.startswith("reachwatch_events_consumed_total{") and any(
            f'outcome="{o}"' in name for o in ("scored", "late", "invalid", "skipped")
        ):
            total += value
    return total


def completed_events(*workers_metrics: dict[str, float]) -> float:
    """Events scored on *both* sides by these workers of one group (the lesser of the two
    sides' scoring-batch sums, each summed over the workers, grants counted on the
    principal side, which never sees them: the principal side books
    ``outcome="scored"`` before the resource side is done, and with two workers an
    event's two sides may be scored by different workers), plus the input they finished
    without scoring (invalid or skipped)."""
    sides = [sum(m.get(f'reachwatch_batch_size_sum{{side="{side}"}}', 0.0)
                 for m in workers_metrics) for side in ("principal", "resource")]
    # A permission grant is about its resource only: the principal side never scores it.
    sides[0] += sum(value for m in workers_metrics for name, value in m.items()
                    if name.startswith("reachwatch_events_consumed_total{")
                    and 'outcome="grant"' in name)
    unscored = sum(value for m in workers_metrics for name, value in m.items()
                   if name.startswith("reachwatch_events_consumed_total{")
                   and any(f'outcome="{o}"' in name for o in ("invalid", "skipped")))
    return min(sides) + unscored


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            partitions = set(range(4))
        total = 0
        for partition in partitions:
            offset = await consumer.committed(TopicPartition(topic, partition))
            total += offset or 0
        return total
    finally:
        await consumer.stop()


def committed_offsets(bootstrap: str, group: str, topic: str) -> int:
    """Sum over ``topic``'s partitions of consumer group ``group``'s committed offsets: how
    much input the worker has checkpointed (Faust commits only after flushing the
    producer: alerts, envelopes and changelog writes of everything before it)."""
    return asyncio.run(_committed(bootstrap, group, topic))


def wait_ready(worker: Subprocess, timeout: float = 90.0) -> None:
    """Until the worker's web server answers and it holds partitions."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive():
            raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
        try:
            url = f"http://127.0.0.1:{worker.web_port}/status"
            with urllib.request.urlopen(url, timeout=2) as response:
                if b'"assigned":[]' not in response.read().replace(b" ", b""):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"worker not ready after {timeout}s:\n{worker.log_tail()}")


def run_baseline(mode: str, broker_url: str, topic: str, total: int, workdir: Path,
                 model_dir: Path | None = None, timeout: float = 300.0) -> dict[str, float]:
    """One ``naive_agent.py`` baseline over ``total`` preloaded events; its result JSON
    plus the process's peak RSS."""
    import orjson

    result = workdir / f"{mode}-{topic}.json"
    log_path = workdir / f"{mode}-{topic}.log"
    script = Path(__file__).with_name("naive_agent.py")
    argv = [sys.executable, str(script), mode, broker_url, topic, str(total), str(result)]
    if model_dir is not None:
        argv.append(str(model_dir))
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    proc = Subprocess(process, log_path)
    peak = 0
    try:
        deadline = time.monotonic() + timeout
        while proc.alive() and not result.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                peak = max(peak, peak_rss_bytes(proc.pid))
            except OSError:
                break
    finally:
        proc.stop()
    if not result.exists():
        raise RuntimeError(f"{mode} produced no result:\n{proc.log_tail()}")
    return {**orjson.loads(result.read_bytes()), "peak_rss": float(peak)}
