"""Worker restart with many entities in its tables: in-memory tables against RocksDB.

    .venv/bin/python bench/restart.py [--principals 100000] [--resources 1000000]
                                      [--stores memory://,rocksdb://] [--timeout 3600]

For each store (``REACHWATCH_STORE``): one embedded broker, one ``reachwatch run`` worker;
``bench/soak.py``'s reads (one per resource, over ``--principals`` principals) fill its
tables; then the worker is stopped (SIGTERM, by PID) and started again with the same app
id and data dir, and a few new reads are produced. Measured: the time to fill, the
worker's RSS once filled and after the restart, the time from the restart to the web
server answering with partitions assigned, and to **scoring resumed** (the new reads
scored on both sides, which waits for the tables' changelog recovery), and the data dir's
size on disk. ``memory://`` rebuilds every table from its changelog topic on start.

``rocksdb://`` keeps each table partition in RocksDB under the worker's data dir
(``streams/service/stores.py``: Faust's RocksDB store through ``rocksdict``, filing writes
made outside a stream event by their key's partition); the restarted worker opens the same
data dir and reads only the changelog written since.

Prints one JSON line per store and a table; processes are stopped by their PIDs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from harness import (
    Subprocess,
    completed_events,
    peak_rss_bytes,
    rss_bytes,
    start_worker,
    wait_ready,
)
from soak import produce, reads

from reachwatch.models.registry import Registry
from reachwatch.models.tinyorg import START, history
from reachwatch.models.training import TrainingParams, fit
from reachwatch.streams.local.broker import embedded_broker

MB = 2**20
PROBES = 200


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _wait_scored(worker: Subprocess, count: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive():
            raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
        try:
            if completed_events(worker.metrics()) >= count:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"not scored {count:.0f} in {timeout:.0f} s:\n{worker.log_tail()}")


def one_store(store: str, registry: Path, workdir: Path, args: argparse.Namespace) -> dict:
    env = {"REACHWATCH_STORE": store}
    app_id = "restart-" + store.split(":")[0]
    topic = f"{app_id}-events"
    result: dict[str, Any] = {"store": store, "principals": args.principals,
                              "resources": args.resources, "load": os.getloadavg()[0]}
    with embedded_broker(data_dir=workdir / f"broker-{app_id}") as broker:
        worker = start_worker(broker.url, registry, workdir, app_id, topic, f"{app_id}-alerts",
                              env)
        try:
            wait_ready(worker, timeout=120)
            started = time.monotonic()
            t0 = START + 30 * 86400
            produced = produce(broker.bootstrap, topic,
                               reads(args.resources, args.principals, args.resources, t0))
            _wait_scored(worker, produced, args.timeout)
            result["fill_s"] = round(time.monotonic() - started, 1)
            status = worker.status()
            result["entities"] = status["principals"] + status["resources"]
            result["rss_filled_mb"] = round(rss_bytes(worker.pid) / MB)
            result["peak_rss_filled_mb"] = round(peak_rss_bytes(worker.pid) / MB)
            time.sleep(3)  # the last commit and changelog flush
        finally:
            worker.stop(timeout=60)
        result["data_dir_mb"] = round(_dir_bytes(workdir / app_id) / MB, 1)
        restarted = time.monotonic()
        worker = start_worker(broker.url, registry, workdir, app_id, topic, f"{app_id}-alerts",
                              env)
        try:
            wait_ready(worker, timeout=args.timeout)
            result["ready_s"] = round(time.monotonic() - restarted, 1)
            # New reads after the restart: scored only once the tables are back.
            produce(broker.bootstrap, topic,
                    reads(PROBES, args.principals, args.resources, t0 + args.resources))
            resumed = _wait_scored(worker, PROBES, args.timeout)
            result["scoring_resumed_s"] = round(resumed - restarted, 1)
            status = worker.status()
            result["entities_after_restart"] = status["principals"] + status["resources"]
            result["rss_after_restart_mb"] = round(rss_bytes(worker.pid) / MB)
            result["peak_rss_after_restart_mb"] = round(peak_rss_bytes(worker.pid) / MB)
        finally:
            worker.stop(timeout=60)
    result["load_end"] = os.getloadavg()[0]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--principals", type=int, default=100_000)
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--stores", default="memory://")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("out")
                        / "restart.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from reachwatch.streams.service.settings import STORE_CHOICES

    for store in args.stores.split(","):
        if store not in STORE_CHOICES:
            parser.error(f"--stores: {store!r} is not one of {', '.join(STORE_CHOICES)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="reachwatch-restart-") as tmp:
        work = Path(tmp)
        fitted = fit(history(days=7), params=TrainingParams(n_estimators=50))
        registry = Registry(work / "registry")
        registry.promote(registry.write(fitted.detectors, fitted.profiles, fitted.metadata))
        for store in args.stores.split(","):
            results.append(one_store(store, work / "registry", work, args))
            print(orjson.dumps(results[-1]).decode(), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    keys = ["entities", "fill_s", "rss_filled_mb", "data_dir_mb", "ready_s",
            "scoring_resumed_s", "entities_after_restart", "rss_after_restart_mb", "load"]
    print("\n" + "store".ljust(12) + "".join(k.rjust(24) for k in keys))
    for r in results:
        print(r["store"].ljust(12) + "".join(
            (f"{r[k]:.1f}" if isinstance(r[k], float) else str(r[k])).rjust(24) for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
