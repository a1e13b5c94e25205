"""``make bench``: every throughput figure of issue 13 in one table, measured in one run.

    .venv/bin/python bench/run.py [--events 60000] [--rates 1,10000,30000] [--seconds 10]
                                  [--steady-minutes 1] [--long] [--retrain] [--no-previous]

The load (``bench/load.py``): company 16 of the drawn family at scale 1.4 (885 people,
18 services, 1,793 datasets, 20 days of history), its reads as single-event JSON messages
on 4 partitions of the embedded tansu broker; every process is started here on free
loopback ports and stopped by its PID. Side by side, on the same preloaded topic:

- the raw limit: aiokafka ``getmany`` + orjson decode in one process;
- a plain Faust agent doing nothing (a dict update per event);
- the naive per-event design (a Faust agent calling ``score_samples`` per event);
- the previous reachwatch (e7668c7, from its own worktree and venv under bench/out);
- this checkout's ``reachwatch run``;

events/s end to end (both sides scored, alerts published, input offsets committed, from
the worker's own metrics and the group's committed offsets), CPU µs per event from
/proc, peak RSS, and this checkout's ratio to each. Then this checkout's CPU per event at
a steady 1,000 ev/s (``steady.py``), event-to-alert p50/p99 at the offered ``--rates``
(``latency.py``), offline ``reachwatch replay`` in one process, ``reachwatch train`` on the
1.06M-read history, and two workers against one. Every figure carries the 1-minute load
average when it was measured (the machine is shared) and its target from the issue.

Default ~8–10 min once the load is cached (the first run simulates and trains both
models, ~5 min more). ``--long``: the steady run for 10 minutes (RSS flat?). ``--retrain``:
train both models again to measure training now. ``bench/soak.py`` (100k principals x 1M
resources) and ``bench/restart.py`` (memory vs RocksDB tables) run apart: tens of minutes.
Writes ``bench/out/bench.json``, ``bench/out/bench.md`` and ``bench/out/bench.png``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from harness import preload, run_baseline
from latency import Latency, measure, probe_model
from load import (
    OUT,
    Company,
    company,
    current_cli,
    load_average,
    previous_cli,
    timed_command,
    trained_model,
)
from throughput import Throughput, worker_throughput

from reachwatch.streams.local.broker import BrokerProcess, embedded_broker

NAIVE_EVENTS = 1000  # ~5 ms per event: more would only make the bench longer
TARGET_EVENTS_S = 50_000


@dataclass
class Row:
    """One line of the table: a figure, its value, a ratio, the target and the load."""

    section: str
    name: str
    value: str
    ratio: str = ""
    target: str = ""
    load: float | None = None
    met: bool | None = None


def _rate(value: float) -> str:
    return f"{value:,.0f} ev/s"


def _met(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: ""}[met]


def render_text(rows: list[Row], heading: str) -> str:
    cells = [["", "value", "this ÷ it / ratio", "target", "met", "load"]]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            cells.append([row.section, "", "", "", "", ""])
        cells.append(["  " + row.name, row.value, row.ratio, row.target, _met(row.met),
                      "" if row.load is None else f"{row.load:.1f}"])
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines = [heading, ""]
    for index, c in enumerate(cells):
        lines.append("  ".join(x.ljust(w) if i == 0 else x.rjust(w)
                               for i, (x, w) in enumerate(zip(c, widths, strict=True))).rstrip())
        if index == 0:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    return "\n".join(lines)


def render_markdown(rows: list[Row]) -> str:
    lines = ["| figure | value | this ÷ it, ratio | target | met | load |",
             "|---|---:|---:|---:|:-:|---:|"]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(f"| **{row.section}** | | | | | |")
        lines.append(f"| {row.name} | {row.value} | {row.ratio} | {row.target} | "
                     f"{_met(row.met)} | {'' if row.load is None else f'{row.load:.1f}'} |")
    return "\n".join(lines)


def chart(designs: list[dict[str, Any]], latencies: list[Latency], path: Path,
          heading: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.4))
    names = [d["design"] for d in designs]
    left.barh(names, [d["per_second"] for d in designs], color="#4477aa")
    left.axvline(TARGET_EVENTS_S, color="#cc3311", linewidth=1, linestyle="--")
    left.text(TARGET_EVENTS_S, -0.6, " target", color="#cc3311", va="bottom")
    left.set_xscale("log")
    left.set_xlabel("events/s, one process (log)")
    left.set_title("Throughput, preloaded single-event messages")
    for index, d in enumerate(designs):
        left.text(d["per_second"], index, f" {d['per_second']:,.0f}", va="center")
    left.invert_yaxis()
    middle.barh(names, [d["cpu_per_event"] * 1e6 for d in designs], color="#ee7733")
    middle.set_xscale("log")
    middle.set_xlabel("CPU µs per event (log)")
    middle.set_title("CPU per event while draining")
    middle.set_yticks([])
    middle.invert_yaxis()
    rates = [lat.rate for lat in latencies]
    right.plot(rates, [lat.p50 for lat in latencies], "o-", label="p50")
    right.plot(rates, [lat.p99 for lat in latencies], "s--", label="p99")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("offered events/s")
    right.set_ylabel("event-to-alert latency, s (log)")
    right.set_title("This checkout: latency (probes)")
    right.axhline(1.0, color="grey", linewidth=0.8)
    for lat in latencies:
        if lat.probes_seen < lat.probes_sent:
            # Saturated: the percentiles are of the probes that came back in 10 s at all.
            right.annotate(f"saturated\n{lat.probes_seen}/{lat.probes_sent} back",
                           (lat.rate, lat.p50 if lat.probes_seen else 1.0), fontsize=8,
                           color="#cc3311", ha="right")
    right.legend()
    fig.suptitle(heading, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _design(name: str, events: float, seconds: float, cpu: float, rss: float,
            load: float) -> dict[str, Any]:
    return {"design": name, "events": int(events), "seconds": seconds,
            "per_second": events / seconds, "cpu_per_event": cpu / events,
            "peak_rss": rss, "load": load}


def _from_throughput(name: str, result: Throughput) -> dict[str, Any]:
    return {**_design(name, result.events, result.seconds, result.cpu_seconds,
                      result.peak_rss, result.load),
            "commit_lag": result.commit_lag, "batch_sizes": result.batch_sizes,
            "workers": result.workers}


def throughput(broker: BrokerProcess, lines: list[bytes], work: Path,
               models: dict[str, Path], clis: dict[str, list[str]],
               two_workers: bool) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    topic = f"bench-base-{uuid.uuid4().hex[:6]}"
    preload(broker.bootstrap, topic, lines)
    designs: list[dict[str, Any]] = []
    for mode, name, count in (("aiokafka", "aiokafka getmany + orjson (the limit)", len(lines)),
                              ("faust-noop", "Faust agent, no-op", len(lines)),
                              ("faust-chunked-noop", "Faust agent, no-op, chunked input",
                               len(lines)),
                              ("faust-sklearn", "naive Faust + score_samples per event",
                               NAIVE_EVENTS)):
        load = load_average()
        result = run_baseline(mode, broker.url, topic, count, work, models["current"])
        designs.append(_design(name, result["events"], result["seconds"],
                               result["cpu_seconds"], result["peak_rss"], load))
        print(f"{name}: {designs[-1]['per_second']:,.0f} events/s", flush=True)
    for release, name in (("previous", "previous reachwatch (e7668c7)"),
                          ("current", "this checkout")):
        if release not in models:
            continue
        result = worker_throughput(broker, models[release], lines, work, topic=topic,
                                   command=clis[release])
        designs.append(_from_throughput(name, result))
        print(f"{name}: {result.per_second:,.0f} events/s, "
              f"{result.cpu_per_event * 1e6:,.0f} µs/event", flush=True)
    # The design before chunked input (issue 13 §1): a Faust message per input record.
    result = worker_throughput(broker, models["current"], lines, work, topic=topic,
                               extra_env={"REACHWATCH_INPUT_CHUNK": "1"})
    designs.append(_from_throughput("this checkout, a message per record", result))
    print(f"a message per record: {result.per_second:,.0f} events/s", flush=True)
    pair = None
    if two_workers:
        result = worker_throughput(broker, models["current"], lines, work, topic=topic,
                                   workers=2)
        pair = _from_throughput("this checkout, two workers", result)
        print(f"two workers: {result.per_second:,.0f} events/s", flush=True)
    return designs, pair


def steady(broker: BrokerProcess, model: Path, lines: list[bytes], work: Path,
           minutes: float) -> dict[str, Any]:
    import steady as steady_bench

    args = argparse.Namespace(rate=1000.0, minutes=minutes, sample_every=5.0,
                              json=OUT / "steady.json", lines=len(lines))
    background = [orjson.loads(line) for line in lines]
    load = load_average()
    summary = steady_bench.run(broker, model, background, work, args, [])
    return {**summary, "load": (load + load_average()) / 2}


def offline(load: Company, model: Path, cli: list[str], name: str) -> dict[str, Any]:
    alerts = OUT / f"replay-{name}.jsonl"
    timing = timed_command([*cli, "replay", str(load.test), "--model", str(model),
                            "--alerts-out", str(alerts), "--jobs", "1"],
                           OUT / f"replay-{name}.log")
    events = load.summary["test_events"]
    return {**timing, "events": events, "per_second": events / timing["seconds"]}


def build_rows(load: Company, designs: list[dict[str, Any]], pair: dict[str, Any] | None,
               steady_run: dict[str, Any] | None, latencies: list[Latency],
               replays: dict[str, dict[str, Any]], trains: dict[str, dict[str, Any]],
               events: int) -> list[Row]:
    ours = next(d for d in designs if d["design"] == "this checkout")
    limit = designs[0]
    section = f"one process draining {events:,} preloaded reads (4 partitions)"
    rows = []
    for d in designs:
        is_ours = d is ours
        rows.append(Row(section, d["design"],
                        f"{_rate(d['per_second'])}, {d['cpu_per_event'] * 1e6:,.0f} µs/ev, "
                        f"{d['peak_rss'] / 2**20:,.0f} MiB",
                        "1" if is_ours else f"{ours['per_second'] / d['per_second']:.3g}",
                        f"≥ {TARGET_EVENTS_S:,} ev/s" if is_ours else "", d["load"],
                        ours["per_second"] >= TARGET_EVENTS_S if is_ours else None))
    rows.append(Row(section, "this checkout ÷ the limit (same run)",
                    f"{ours['per_second'] / limit['per_second']:.4f}", "", "(0.012 at issue)"))
    section = "this checkout, targets of issue 13"
    if steady_run:
        per_event = steady_run.get("cpu_s_per_event")
        rows.append(Row(section, f"CPU per event at a steady 1,000 ev/s "
                                 f"({steady_run['minutes']:g} min)",
                        f"{per_event * 1e6:,.0f} µs" if per_event else "n/a", "",
                        "≤ 40 µs", steady_run["load"],
                        per_event is not None and per_event <= 40e-6))
        slope = steady_run["rss_slope_mb_per_min_second_half"]
        rows.append(Row(section, f"RSS slope, second half of the steady run "
                                 f"({steady_run['minutes']:g} min)",
                        f"{slope:+.2f} MB/min (peak {steady_run['peak_rss_mb']:.0f} MB)", "",
                        "flat over 10 min", steady_run["load"],
                        abs(slope) < 0.5 if steady_run["minutes"] >= 10 else None))
    for lat in latencies:
        target = {1.0: "no collapse", 10_000.0: "p99 ≤ 1 s", 30_000.0: "p99 ≤ 2 s"}.get(
            lat.rate, "")
        limit_s = {10_000.0: 1.0, 30_000.0: 2.0}.get(lat.rate)
        complete = lat.probes_seen == lat.probes_sent
        value = (f"p50 {lat.p50:.2f} s, p99 {lat.p99:.2f} s" if complete else
                 f"saturated: {lat.probes_seen}/{lat.probes_sent} probes back in 10 s"
                 + (f" (p50 {lat.p50:.1f} s of those)" if lat.probes_seen else ""))
        met = (complete and lat.p99 <= limit_s) if limit_s else (
            complete and lat.p99 < 1.0 if lat.rate <= 1 else None)
        rows.append(Row(section, f"event→alert at {lat.rate:,.0f} ev/s offered "
                                 f"({lat.achieved_rate:,.0f} achieved)",
                        value, "", target, lat.load, met))
    for name, replay in replays.items():
        label = "this checkout" if name == "current" else "previous"
        rows.append(Row(section, f"offline replay, one process ({label}, "
                                 f"{replay['events']:,} reads, incl. start-up)",
                        _rate(replay["per_second"]),
                        "" if name == "current" else
                        f"{replays['current']['per_second'] / replay['per_second']:.2f}"
                        if "current" in replays else "",
                        "≥ 100,000 ev/s" if name == "current" else "", replay["load"],
                        replay["per_second"] >= 100_000 if name == "current" else None))
    for name, train in trains.items():
        label = "this checkout" if name == "current" else "previous"
        rows.append(Row(section, f"train on {train['events']:,} reads ({label}, --jobs "
                                 f"{train['jobs']}, measured {train['measured']})",
                        f"{train['seconds']:.0f} s, peak RSS {train['peak_rss'] / 2**30:.1f} GiB",
                        "" if name == "current" or "current" not in trains else
                        f"{train['seconds'] / trains['current']['seconds']:.2f}×",
                        "< 60 s" if name == "current" else "", train["load"],
                        train["seconds"] < 60 and train["events"] >= 1_000_000
                        if name == "current" else None))
    if pair:
        ratio = pair["per_second"] / ours["per_second"]
        rows.append(Row(section, "two workers ÷ one (same topic, same run)",
                        f"{_rate(pair['per_second'])} vs {_rate(ours['per_second'])}",
                        f"{ratio:.2f}", "≥ 1.7", pair["load"], ratio >= 1.7))
    rows.append(Row(section, "100k principals × 1M resources, worker peak RSS",
                    "bench/soak.py (not in make bench)", "", "< 1.5 GB"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000,
                        help="reads of the test period to drain (max 119,359)")
    parser.add_argument("--rates", default="1,10000,30000")
    parser.add_argument("--seconds", type=float, default=10.0, help="per offered rate")
    parser.add_argument("--steady-minutes", type=float, default=1.0)
    parser.add_argument("--long", action="store_true", help="steady run of 10 minutes")
    parser.add_argument("--retrain", action="store_true", help="train both models again")
    parser.add_argument("--no-previous", action="store_true")
    parser.add_argument("--no-two-workers", action="store_true")
    args = parser.parse_args()
    if args.long:
        args.steady_minutes = 10.0
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    load = company()
    print(load.describe(), flush=True)
    clis = {"current": current_cli()}
    if not args.no_previous:
        clis["previous"] = previous_cli()
    models, trains = {}, {}
    for name, cli in clis.items():
        models[name], trains[name] = trained_model(load, name, cli, retrain=args.retrain)
    lines = load.stream_lines(args.events)
    latencies: list[Latency] = []
    with tempfile.TemporaryDirectory() as tmp, embedded_broker() as broker:
        work = Path(tmp)
        designs, pair = throughput(broker, lines, work, models, clis,
                                   not args.no_two_workers)
        steady_run = steady(broker, models["current"], lines[:50_000], work,
                            args.steady_minutes) if args.steady_minutes > 0 else None
        latencies = measure(broker, probe_model(models["current"], work / "probe-model"),
                            lines, work, [float(r) for r in args.rates.split(",")],
                            args.seconds)
    replays = {name: offline(load, models[name], clis[name], name)
               for name in ("previous", "current") if name in clis}
    rows = build_rows(load, designs, pair, steady_run, latencies, replays, trains, len(lines))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    heading = (f"reachwatch bench, {when}, {platform.node()} ({os.cpu_count()} CPUs, load "
               f"{load_average():.1f} at the end), {(time.monotonic() - started) / 60:.1f} min; "
               f"{load.describe()}")
    text = render_text(rows, heading)
    print("\n" + text)
    (OUT / "bench.md").write_text(f"{heading}\n\n{render_markdown(rows)}\n")
    (OUT / "bench.json").write_bytes(orjson.dumps(
        {"heading": heading, "argv": sys.argv[1:], "company": load.summary,
         "designs": designs, "two_workers": pair, "steady": steady_run,
         "latency": [asdict(lat) for lat in latencies], "replay": replays, "train": trains,
         "rows": [asdict(r) for r in rows]}, option=orjson.OPT_INDENT_2))
    chart(designs, latencies, OUT / "bench.png", heading[:160])
    print(f"\nwrote {OUT / 'bench.md'}, {OUT / 'bench.json'} and {OUT / 'bench.png'}")


if __name__ == "__main__":
    main()
