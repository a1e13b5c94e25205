"""Offline replay: the chain's size limits apply to every file's records; two jobs change
nothing."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import Limits
from reachwatch.models.registry import Registry
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.offline.replay import Tally, collect_events, run_replay

GOOD = {"ts": "2026-03-23T10:00:00Z", "principal": "ana", "resource": "hr.salaries"}


def _history(tmp_path: Path) -> Path:
    path = tmp_path / "history.jsonl"
    lines = [GOOD, {**GOOD, "principal": "p" * 40}]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def test_lowered_limit_rejects_records_the_default_accepts(tmp_path: Path) -> None:
    path = _history(tmp_path)
    default, lowered = Tally(), Tally()
    list(collect_events([path], Chain(get_adapter("native")), default))
    list(collect_events([path], Chain(get_adapter("native"), limits=Limits(max_id_length=16)),
                        lowered))
    assert (default.accepted, sum(default.rejected.values())) == (2, 0)
    assert (lowered.accepted, dict(lowered.rejected)) == (1, {"too_large": 1})


def test_two_jobs_replay_the_same_alerts_in_the_same_order(tiny_registry, tiny_history,
                                                             tmp_path: Path) -> None:
    # A copy of the tiny model that alerts on every qualifying read: many alerts, both kinds.
    model = tiny_registry.load()
    eager = Registry(tmp_path / "eager")
    detectors = {kind: copy.deepcopy(d) for kind, d in model.detectors.items()}
    for detector in detectors.values():
        detector.score_threshold_, detector.breadth_threshold_ = 0.0, -1e9
    eager_model = eager.load(eager.write(detectors, model.profiles, model.metadata))
    half = len(tiny_history) // 2
    files = [tiny_history[:half], tiny_history[half:]]  # two "files": history, then new days
    runs = {}
    for jobs in (1, 2):
        tally, alerts = Tally(), []
        run_replay(iter(files), Pipeline(eager_model), tally,
                   lambda a, out=alerts: out.append(orjson.dumps(a.to_json())),
                   batch_size=500, jobs=jobs)
        runs[jobs] = (tally.to_json(), alerts)
    assert runs[1] == runs[2]
    kinds = runs[1][0]["alerts_by_kind"]
    assert kinds.get("broad_reader", 0) > 0 and kinds.get("broad_audience", 0) > 0
