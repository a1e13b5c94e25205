"""The load every throughput benchmark runs on: one drawn company of realistic size, and a
model of each release trained on its history through that release's own CLI.

Company 16 of the simulation family at scale 1.4 (``simulate(out, seed=16, scale=1.4)``):
885 people and 18 services in 24 teams over 4 offices, 1,793 datasets, 20 days of history
(1,057,810 reads) and a 2-day test period (119,359 reads, 7 incidents). Its history is
also the "train on 1M events" load. Events are the native single-event JSON lines a log
shipper writes (~330 bytes each).

Everything is cached under ``bench/out/load/`` (git-ignored): the simulation (seconds) and
the two trained models (minutes each), with the training time, peak RSS and load average
measured when they were trained in ``train-<name>.json``. ``--retrain`` (``run.py``)
trains them again and measures afresh.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
SEED = 16
SCALE = 1.4
PREVIOUS = "e7668c7"  # the release before issue 13's redesign (bench/quality.py's too)


def load_average() -> float:
    """The 1-minute load average: the machine is shared, so every figure carries it."""
    return os.getloadavg()[0]


@dataclass(frozen=True)
class Company:
    folder: Path
    summary: dict[str, Any]

    @property
    def history(self) -> Path:
        return self.folder / "history.jsonl"

    @property
    def test(self) -> Path:
        return self.folder / "test.jsonl"

    def describe(self) -> str:
        s = self.summary
        return (f"company {s['seed']} x{s['scale']}: {s['people']} people + {s['services']} "
                f"services, {s['datasets']:,} datasets, {s['history_days']} days of history "
                f"({s['history_events']:,} reads), test period {s['test_events']:,} reads")

    def stream_lines(self, count: int) -> list[bytes]:
        """The first ``count`` reads of the test period (with its incidents, so alerts are
        published), as the raw JSON lines a shipper would write."""
        lines: list[bytes] = []
        with self.test.open("rb") as handle:
            for line in handle:
                if line.strip():
                    lines.append(line.rstrip(b"\n"))
                    if len(lines) >= count:
                        break
        return lines


def company(seed: int = SEED, scale: float = SCALE) -> Company:
    from reachwatch.models.simulation import simulate

    folder = OUT / "load" / f"company-{seed}-x{scale}"
    summary_path = folder / "summary.json"
    if not summary_path.exists():
        print(f"simulating company {seed} at scale {scale} ...", flush=True)
        summary = simulate(folder, seed=seed, scale=scale)
        summary_path.write_bytes(orjson.dumps(summary.to_json()))
    return Company(folder, orjson.loads(summary_path.read_bytes()))


def current_cli() -> list[str]:
    return [sys.executable, "-m", "reachwatch.streams.cli"]


def previous_cli() -> list[str]:
    """The previous release's CLI, built once by bench/quality.py's helper (shared)."""
    from quality import previous_cli as build

    return [str(build(PREVIOUS))]


def timed_command(command: list[str], log: Path) -> dict[str, float]:
    """Run ``command`` to completion; its wall time, CPU time and peak RSS (from wait4)."""
    load = load_average()
    started = time.perf_counter()
    with log.open("ab") as sink:
        sink.write(("$ " + " ".join(command) + "\n").encode())
        sink.flush()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed; see {log}")
    # ru_maxrss of the children is the largest of the process and its forked jobs.
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss": usage.ru_maxrss * 1024.0, "load": load}


def code_version(name: str) -> str:
    """What a cached model depends on: the git tree of ``models/`` (this checkout; a change
    of the core can change the model format) or the previous release's commit."""
    ref = PREVIOUS if name == "previous" else "HEAD"
    return subprocess.run(["git", "-C", str(BENCH.parent), "rev-parse", f"{ref}:models"],
                          check=True, capture_output=True, text=True).stdout.strip()


def trained_model(load: Company, name: str, cli: list[str], retrain: bool = False,
                  jobs: int = 2) -> tuple[Path, dict[str, Any]]:
    """A promoted model of release ``name`` trained on the company's history through its own
    ``reachwatch train``, and the training's timing (measured now or when it was cached);
    trained again when ``models/`` changed since."""
    registry = load.folder / f"model-{name}"
    record = load.folder / f"train-{name}.json"
    code = code_version(name)
    if record.exists() and orjson.loads(record.read_bytes()).get("code") != code:
        retrain = True
    if retrain or not record.exists():
        if registry.exists():
            import shutil

            shutil.rmtree(registry)
        print(f"training the {name} model on {load.summary['history_events']:,} reads "
              f"(--jobs {jobs}) ...", flush=True)
        timing = timed_command([*cli, "train", str(load.history), "--out", str(registry),
                                "--promote", "--quiet", "--jobs", str(jobs)],
                               load.folder / f"train-{name}.log")
        timing.update(events=load.summary["history_events"], jobs=jobs, code=code,
                      measured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        record.write_bytes(orjson.dumps(timing))
        print(f"  {timing['seconds']:.0f} s, peak RSS {timing['peak_rss'] / 2**30:.1f} GiB",
              flush=True)
    return registry, orjson.loads(record.read_bytes())


def main() -> None:
    """Prepare the load (simulate and train both models) without running the benchmarks."""
    load = company()
    print(load.describe())
    for name, cli in (("current", current_cli()), ("previous", previous_cli())):
        registry, timing = trained_model(load, name, cli, retrain="--retrain" in sys.argv)
        print(f"{name}: {registry} trained in {timing['seconds']:.0f} s")


if __name__ == "__main__":
    main()
