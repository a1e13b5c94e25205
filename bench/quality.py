"""Detection quality on a family of simulated companies, on a held-out half.

    .venv/bin/python bench/quality.py [--companies 20] [--scale 1.0] [--jobs 2] [--tuning]
                                      [--previous e7668c7 | --no-previous] [--out bench/out]
                                      [--seeds 1,3,5] [--without-forest-gate]

Companies 1..N are drawn from the simulation family (``reachwatch simulate --seed K``).
The split is fixed and written down here: **odd seeds are the tuning half, even seeds the
held-out half**. Choose defaults on the tuning half (``--tuning`` reports it); quote
figures from the held-out half (the default report). Only the reported half is
generated and run.

For every company of that half: simulate it, then for each detector train on its history
and replay history + test period exactly as the commands do, and judge the alerts with
``models/evaluation.py`` against the labels:

- ``current``: this checkout's ``reachwatch train`` / ``reachwatch replay`` (``--jobs``);
- ``threshold_rule``: distinct resources per principal / readers per resource per hour
  above the history's p99.9 (``models/threshold_rule.py``);
- ``previous``: the last release (``--previous``, default e7668c7), checked out in a
  throwaway ``git worktree`` under the output folder with its own venv (built once and
  reused), run through its own CLI on the same files.

Companies run in parallel, ``cores // jobs`` at a time. Prints one table and writes
``quality.json`` and ``quality.md`` under ``--out`` (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from reachwatch.models.evaluation import Evaluation, duration, evaluate, scorecard
from reachwatch.models.forked import default_jobs
from reachwatch.models.records import parse_event
from reachwatch.models.simulation import draw_company, simulate
from reachwatch.models.threshold_rule import WINDOW_SECONDS, fit_threshold_rule

REPO = Path(__file__).resolve().parents[1]
PREVIOUS = "e7668c7"
DETECTORS = ("current", "no_forest_gate", "threshold_rule", "previous")
TITLES = {"current": "reachwatch (this checkout)",
          "no_forest_gate": "without the IsolationForest gate",
          "threshold_rule": "threshold rule", "previous": "previous release"}


def held_out(seed: int) -> bool:
    """The fixed split: even seeds are held out, odd seeds are for tuning."""
    return seed % 2 == 0


# --- the previous release ---------------------------------------------------------------

def previous_cli(ref: str) -> Path:
    """The previous release's ``reachwatch`` executable, from a worktree and venv of its own
    under bench/out (git-ignored; kept between runs, remove with ``git worktree remove``)."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = REPO / "bench" / "out" / f"previous-{sha}"
    cli = tree / ".venv" / "bin" / "reachwatch"
    stamp = tree / ".venv" / ".bench-installed"
    if stamp.exists():
        return cli
    if not (tree / "pyproject.toml").exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), sha],
                       check=True, capture_output=True)
    print(f"building a venv for {sha} in {tree} (once) ...", flush=True)
    python = os.environ.get("PYTHON", "python3.11")
    subprocess.run([python, "-m", "venv", str(tree / ".venv")], check=True)
    subprocess.run([str(tree / ".venv" / "bin" / "pip"), "install", "--quiet",
                    "--disable-pip-version-check", "-c", str(tree / "constraints.txt"), str(tree)],
                   check=True, capture_output=True)
    stamp.touch()
    return cli


# --- one company ------------------------------------------------------------------------

def _run(command: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    with log.open("ab") as sink:
        sink.write(("$ " + " ".join(command) + "\n").encode())
        sink.flush()
        result = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} {command[1]} failed; see {log}")
    return time.perf_counter() - started


def _train_and_replay(cli: list[str], folder: Path, name: str, jobs: int,
                      env: dict[str, str] | None = None) -> tuple[Path, dict]:
    work = folder / name
    work.mkdir(exist_ok=True)
    log = work / "commands.log"
    log.unlink(missing_ok=True)
    history, test = str(folder / "history.jsonl"), str(folder / "test.jsonl")
    alerts = work / "alerts.jsonl"
    train_s = _run([*cli, "train", history, "--out", str(work / "models"), "--promote",
                    "--quiet", "--jobs", str(jobs)], log, env)
    replay_s = _run([*cli, "replay", history, test, "--model", str(work / "models"),
                     "--alerts-out", str(alerts), "--jobs", str(jobs)], log, env)
    return alerts, {"train_s": round(train_s, 1), "replay_s": round(replay_s, 1)}


def _threshold_rule(folder: Path) -> tuple[Path, dict]:
    started = time.perf_counter()
    history = [parse_event(orjson.loads(line))
               for line in (folder / "history.jsonl").read_bytes().splitlines()]
    test = [parse_event(orjson.loads(line))
            for line in (folder / "test.jsonl").read_bytes().splitlines()]
    rule = fit_threshold_rule(history)
    # The last hour of history warms the sliding windows at the start of the test period.
    warm = [e for e in history if e.ts > history[-1].ts - WINDOW_SECONDS]
    alerts = rule.alerts(warm + test)
    work = folder / "threshold_rule"
    work.mkdir(exist_ok=True)
    path = work / "alerts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts))
    return path, {"fit_and_alert_s": round(time.perf_counter() - started, 1)}


def _without_forest_gate(folder: Path) -> tuple[Path, dict]:
    """The ``current`` model with its IsolationForest gate opened (score threshold 0): what
    the breadth gates alone alert, replayed in-process on the same files."""
    from reachwatch.models.pipeline import Pipeline
    from reachwatch.models.registry import Registry
    from reachwatch.streams.formats.adapters import get_adapter
    from reachwatch.streams.ingest.chain import Chain
    from reachwatch.streams.offline.replay import Tally, collect_events, run_replay

    started = time.perf_counter()
    model = Registry(folder / "current" / "models").load()
    for detector in model.detectors.values():
        detector.score_threshold_ = 0.0
    files = [folder / "history.jsonl", folder / "test.jsonl"]
    alerts: list[dict] = []
    events = collect_events(files, Chain(get_adapter("native")), Tally(), keep_grants=True)
    run_replay(events, Pipeline(model), Tally(), lambda a: alerts.append(a.to_json()))
    work = folder / "no_forest_gate"
    work.mkdir(exist_ok=True)
    path = work / "alerts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts))
    return path, {"replay_s": round(time.perf_counter() - started, 1)}


def one_company(seed: int, scale: float, out: Path, jobs: int, previous: str | None,
                ablate: bool = False) -> dict:
    folder = out / f"company-{seed:03d}"
    started = time.perf_counter()
    summary = simulate(folder, seed=seed, scale=scale)
    timings: dict[str, Any] = {"simulate_s": round(time.perf_counter() - started, 1)}
    labels = orjson.loads((folder / "labels.json").read_bytes())
    runs: dict[str, tuple[Path, dict]] = {
        "current": _train_and_replay([sys.executable, "-m", "reachwatch.streams.cli"], folder,
                                     "current", jobs),
        "threshold_rule": _threshold_rule(folder),
    }
    if ablate:
        runs["no_forest_gate"] = _without_forest_gate(folder)
    if previous:
        # The previous release runs its own installed code: a PYTHONPATH pointing at this
        # checkout's package would make it import this version instead.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        runs["previous"] = _train_and_replay([previous], folder, "previous", jobs, env)
    result: dict[str, Any] = {"seed": seed, "company": summary.to_json(), "timings": timings,
                              "detectors": {}}
    for name, (alerts_path, timing) in runs.items():
        alerts = [orjson.loads(line) for line in alerts_path.read_bytes().splitlines() if line]
        judged = evaluate(labels, alerts)
        (alerts_path.parent / "evaluation.txt").write_text(judged.render() + "\n")
        result["detectors"][name] = {"evaluation": judged.to_json(), "timing": timing}
    timings["total_s"] = round(time.perf_counter() - started, 1)
    return result


# --- report -----------------------------------------------------------------------------

def _recall(score: dict) -> str:
    if not score["incidents"]:
        return "-"
    return f"{score['caught']}/{score['incidents']} ({score['recall']:.0%})"


def _ttd(score: dict) -> str:
    if not score["caught"]:
        return "-"
    worst = duration(score["ttd_worst_s"])
    if score["missed"]:
        worst += f" +{score['missed']} missed"
    return f"{duration(score['ttd_median_s'])} / {worst}"


def _lookalikes(card: dict) -> str:
    severities = ", ".join(f"{k} {v}" for k, v in card["look_alike_hits_by_severity"].items())
    return f"{card['look_alike_hits']}/{card['look_alikes']}" + (f" ({severities})"
                                                                    if severities else "")


def table(cards: dict[str, dict]) -> list[list[str]]:
    names = list(cards)
    rows = [["", *(TITLES[n] for n in names)]]
    rows.append(["incidents caught", *(_recall(cards[n]) for n in names)])
    types = sorted({t for card in cards.values() for t in card["by_type"]})
    for kind in types:
        rows.append([f"  {kind}", *(_recall(cards[n]["by_type"].get(kind, _empty()))
                                    for n in names)])
    rows.append(["exposure detect median / worst",
                 *(_ttd(cards[n]["exposures"]) for n in names)])
    for key in sorted({k for card in cards.values() for k in card["exposures_by_variant"]}):
        rows.append([f"  exposure {key}",
                     *(f"{_recall(cards[n]['exposures_by_variant'].get(key, _empty()))}, "
                       f"{_ttd(cards[n]['exposures_by_variant'].get(key, _empty()))}"
                       for n in names)])
    for kind in types:
        if kind != "exposure":
            rows.append([f"detect median / worst: {kind}",
                         *(_ttd(cards[n]["by_type"].get(kind, _empty())) for n in names)])
    rows.append(["false-positive entities per company-day",
                 *(f"{cards[n]['false_positive_entities_per_company_day']:.2f} "
                   f"({cards[n]['false_positive_entities']})" for n in names)])
    rows.append(["look-alikes alerted (by severity)", *(_lookalikes(cards[n]) for n in names)])
    rows.append(["look-alikes alerted above low",
                 *(str(cards[n]["look_alikes_above_low"]) for n in names)])
    hit_types = sorted({t for card in cards.values() for t in card["look_alike_hits_by_type"]})
    for kind in hit_types:
        rows.append([f"  {kind}",
                     *(str(cards[n]["look_alike_hits_by_type"].get(kind, 0)) for n in names)])
    return rows


def _empty() -> dict:
    return {"incidents": 0, "caught": 0, "missed": 0, "recall": None, "ttd_median_s": None,
            "ttd_worst_s": None}


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=20, help="seeds 1..N (>= 2)")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="processes per train/replay (one per side)")
    parser.add_argument("--tuning", action="store_true",
                        help="report the tuning half (odd seeds) instead of the held-out half")
    parser.add_argument("--previous", default=PREVIOUS, help="git ref of the previous release")
    parser.add_argument("--no-previous", action="store_true", help="skip the previous release")
    parser.add_argument("--out", type=Path, default=Path("bench/out/quality"))
    parser.add_argument("--without-forest-gate", action="store_true",
                        help="also replay the current model with its score gate opened")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds of the chosen half only (quick iterations)")
    args = parser.parse_args()
    if args.companies < 2:
        parser.error("--companies must be at least 2 (one per half)")
    started = time.perf_counter()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    half = "tuning" if args.tuning else "held-out"
    seeds = [s for s in range(1, args.companies + 1) if held_out(s) != args.tuning]
    if args.seeds:
        chosen = [int(x) for x in args.seeds.split(",")]
        if any(held_out(s) == args.tuning for s in chosen):
            parser.error(f"--seeds must all belong to the {half} half")
        seeds = chosen
    previous = None if args.no_previous else str(previous_cli(args.previous))
    parallel = max(1, (os.cpu_count() or 1) // args.jobs)
    print(f"{half} half: companies {seeds}, scale {args.scale}, --jobs {args.jobs}, "
          f"{parallel} at a time", flush=True)
    results = []
    with ProcessPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(one_company, s, args.scale, out, args.jobs, previous,
                               args.without_forest_gate) for s in seeds]
        for future in futures:
            result = future.result()
            results.append(result)
            c = result["company"]
            caught = ", ".join(
                f"{n} {len(d['evaluation']['caught'])}/{c['incidents']} "
                f"fp {d['evaluation']['false_positive_entities']}"
                for n, d in result["detectors"].items())
            print(f"company {result['seed']:>3}: {c['people']} people, {c['teams']} teams, "
                  f"{c['offices']} offices, {c['history_events'] + c['test_events']:,} events, "
                  f"{result['timings']['total_s']:.0f}s | {caught}", flush=True)
    names = [n for n in DETECTORS if all(n in r["detectors"] for r in results)]
    cards = {}
    for name in names:
        evaluations = [Evaluation.from_json(r["detectors"][name]["evaluation"]) for r in results]
        cards[name] = scorecard(evaluations)
    rows = table(cards)
    elapsed = time.perf_counter() - started
    heading = (f"{half} half of {args.companies} companies (seeds {seeds[0]}..{seeds[-1]}, "
               f"{'odd' if args.tuning else 'even'}), scale {args.scale}; "
               f"run took {elapsed / 60:.1f} min")
    print("\n== " + heading)
    print(render_text(rows))
    drawn = {str(s): _drawn(s) for s in range(1, args.companies + 1)}
    document = {"half": half, "companies": args.companies, "seeds": seeds,
                "scale": args.scale, "jobs": args.jobs, "elapsed_s": round(elapsed, 1),
                "previous": args.previous if previous else None, "scorecards": cards,
                "results": results, "drawn": drawn}
    stem = "quality-tuning" if args.tuning else "quality"
    (out / f"{stem}.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    (out / f"{stem}.md").write_text(f"{heading}\n\n{render_markdown(rows)}\n")
    print(f"\nwrote {out / (stem + '.json')} and {out / (stem + '.md')}")


def _drawn(seed: int) -> dict[str, Any]:
    params = draw_company(seed)
    return {"held_out": held_out(seed), "offices": [o.name for o in params.offices],
            "teams": len(params.teams), "people": sum(t.size for t in params.teams),
            "history_days": params.history_days, "test_days": params.test_days}


if __name__ == "__main__":
    main()
