"""Chunked input (issue 13 §1) side by side with a message per record, in one run.

    .venv/bin/python bench/chunks.py [--events 60000] [--rounds 2] [--chunks 1,500]

On the bench load (``bench/load.py``: company 16 at scale 1.4, its model trained by
``reachwatch train``), the first ``--events`` reads of its test period as single-event
JSON messages on 4 partitions of one embedded broker, drained by, in turn:

- aiokafka ``getmany`` + orjson (the limit), a no-op Faust agent with a message per
  record, the same agent with chunked input (Faust's own cost per record, both ways);
- ``reachwatch run`` with ``REACHWATCH_INPUT_CHUNK`` = each of ``--chunks`` (1 = a message
  per record, the design before), ``--rounds`` times in alternating order (the machine is
  shared: A/B/B/A keeps a drift in load from reading as a difference).

Events/s end to end as in ``bench/throughput.py`` (both sides scored, offsets committed),
CPU µs per event from /proc. Writes ``bench/out/chunks.json`` and ``bench/out/chunks.md``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from harness import preload, run_baseline
from load import OUT, company, current_cli, load_average, trained_model
from throughput import worker_throughput

from reachwatch.streams.local.broker import embedded_broker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunks", default="1,500")
    args = parser.parse_args()
    chunks = [int(c) for c in args.chunks.split(",")]
    load = company()
    model, _ = trained_model(load, "current", current_cli())
    lines = load.stream_lines(args.events)
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, embedded_broker() as broker:
        work = Path(tmp)
        topic = f"bench-chunks-{uuid.uuid4().hex[:6]}"
        preload(broker.bootstrap, topic, lines)
        for mode in ("aiokafka", "faust-noop", "faust-chunked-noop"):
            at = load_average()
            result = run_baseline(mode, broker.url, topic, len(lines), work)
            rows.append({"design": mode, "chunk": None, "load": at,
                         "per_second": result["events"] / result["seconds"],
                         "cpu_us": 1e6 * result["cpu_seconds"] / result["events"],
                         "rss_mib": result["peak_rss"] / 2**20})
            print(f"{mode}: {rows[-1]['per_second']:,.0f} ev/s, {rows[-1]['cpu_us']:.1f} µs/ev",
                  flush=True)
        for round_ in range(args.rounds):
            order = chunks if round_ % 2 == 0 else chunks[::-1]
            for chunk in order:
                at = load_average()
                result = worker_throughput(broker, model, lines, work, topic=topic,
                                           extra_env={"REACHWATCH_INPUT_CHUNK": str(chunk)})
                rows.append({"design": "reachwatch", "chunk": chunk, "round": round_,
                             "load": at, "per_second": result.per_second,
                             "cpu_us": 1e6 * result.cpu_per_event,
                             "rss_mib": result.peak_rss / 2**20,
                             "commit_lag_s": result.commit_lag})
                print(f"reachwatch, input_chunk={chunk} (round {round_ + 1}): "
                      f"{result.per_second:,.0f} ev/s, {1e6 * result.cpu_per_event:.0f} µs/ev",
                      flush=True)
    limit = rows[0]["per_second"]
    lines_md = [f"chunks bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                f"{(time.monotonic() - started) / 60:.1f} min; {load.describe()}; "
                f"{len(lines):,} reads", "",
                "| design | input_chunk | events/s | CPU µs/event | peak RSS | ÷ limit | load |",
                "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines_md.append(f"| {row['design']} | {row['chunk'] or ''} | {row['per_second']:,.0f} | "
                        f"{row['cpu_us']:.1f} | {row['rss_mib']:.0f} MiB | "
                        f"{row['per_second'] / limit:.4f} | {row['load']:.1f} |")
    lines_md.append("")
    for chunk in chunks:
        mine = [r for r in rows if r["chunk"] == chunk]
        rate = statistics.median(r["per_second"] for r in mine)
        cpu = statistics.median(r["cpu_us"] for r in mine)
        lines_md.append(f"input_chunk={chunk}: median {rate:,.0f} ev/s, {cpu:.0f} µs/ev "
                        f"over {len(mine)} run(s)")
    text = "\n".join(lines_md)
    print("\n" + text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "chunks.md").write_text(text + "\n")
    (OUT / "chunks.json").write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
