"""Why an incident was missed or a look-alike alerted: the feature views of its reads.

    .venv/bin/python bench/views.py bench/out/quality/company-007 [INC-3 BEN-15 ...]

For a company folder that ``bench/quality.py`` left behind (``labels.json``, history and
test files, the trained ``current/models``), replays history + test in-process exactly as
``reachwatch replay`` does and prints, per labelled incident or look-alike (all, or the
ids given): its alerts in the test period, the detector's score threshold and the highest
score among the entity's reads in the labelled period, and for every gated metric its
largest breadth against its calibrated gate, with the value, own and peer baselines
behind it. Read it on the tuning half only: the held-out half is for reporting.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import parse_timestamp
from reachwatch.models.registry import Registry
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.offline.replay import Tally, collect_events, run_replay

GRACE = 7200.0  # as models.evaluation: alerts up to 2 h after an incident's end count


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    folder, only = Path(argv[0]), set(argv[1:])
    labels = orjson.loads((folder / "labels.json").read_bytes())
    items = [i for i in labels["incidents"] + labels["benign"] if not only or i["id"] in only]
    test_start = parse_timestamp(labels["test_start"])
    watched = {(i["kind"], i["entity"]) for i in items}
    model = Registry(folder / "current" / "models").load()
    pipeline = Pipeline(model)
    views = defaultdict(list)
    build = pipeline.features.view

    def view(event, state):  # the pipeline calls features.view per read: keep watched ones
        v = build(event, state)
        if v is not None and event.ts >= test_start - 3600 and (v.kind, v.entity) in watched:
            views[(v.kind, v.entity)].append(v)
        return v

    pipeline.features.view = view
    alerts = []
    files = [folder / "history.jsonl", folder / "test.jsonl"]
    events = collect_events(files, Chain(get_adapter("native")), Tally(), keep_grants=True)
    run_replay(events, pipeline, Tally(), lambda a: alerts.append(a.to_json()))
    by_entity = defaultdict(list)
    for alert in alerts:
        if parse_timestamp(alert["ts"]) >= test_start:
            by_entity[(alert["kind"], alert["entity"])].append(alert)
    for item in items:
        key = (item["kind"], item["entity"])
        detector = model.detectors[item["kind"]]
        low = parse_timestamp(item["start"]) if "start" in item else test_start
        high = parse_timestamp(item["end"]) + GRACE if "end" in item else float("inf")
        reads = [v for v in views.get(key, []) if low - 1 <= v.event.ts <= high]
        print(f"\n### {item['id']} {item['type']} {item['kind']} {item['entity']} "
              f"{item.get('variant', '')} {item.get('description', '')[:150]}")
        for alert in by_entity.get(key, [])[:3]:
            print(f"  alert {alert['ts']} {alert['severity']}: {alert['summary'][:160]}")
        if not reads:
            print("  no reads in the labelled period")
            continue
        scores = detector.score(np.asarray([v.vector for v in reads]))
        print(f"  {len(reads)} reads; score threshold {detector.score_threshold_:.3f}, "
              f"highest score {scores.max():.3f}")
        for metric, gate in detector.metric_gates_.items():
            values = [v.breadths.get(metric, -np.inf) for v in reads]
            top = reads[int(np.argmax(values))]
            print(f"   {metric:34s} {max(values):7.2f} vs gate {gate:.2f} "
                  f"({max(values) / gate:.2f}x): value {top.metrics.get(metric, np.nan):.1f}, "
                  f"own {top.own.get(metric, np.nan):.2f}, peer {top.peer.get(metric, np.nan):.2f}"
                  f", {top.event.ts - low:.0f} s in, {top.event.sensitivity}")


if __name__ == "__main__":
    main(sys.argv[1:])
