"""At-least-once under saturation: a busy worker SIGKILLed at random moments loses nothing.

The worker is saturated with input (the whole test period produced at once) and killed
with SIGKILL several times at random moments, then restarted each time. Afterwards every
produced event has been scored on both sides at least once (the worker's scored-event
log, written once a batch is scored and its alerts published, before its states settle and
its envelopes are acknowledged), and every alert of the offline replay is on the alerts
topic (duplicates allowed, same ``alert_id``).

A kill while a batch's states settle can leave some of them durable: the replay finds those
reads already applied and judges them late against their entity, which is why the log is
written before the settle (it was after, and such kills lost 385 of an 886-read batch from
it). Events a restarted worker forwards a second time are recognised by their input
position (``reachwatch_events_repeated_total``).
"""

from __future__ import annotations

import random
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.producing import produce_keyed
from support.scoring import counter

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import parse_event
from reachwatch.models.registry import Registry

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
]

KILLS = 3


def _scored(log: Path) -> dict[str, Counter[tuple[float, str, str]]]:
    sides: dict[str, Counter[tuple[float, str, str]]] = {"principal": Counter(),
                                                         "resource": Counter()}
    if not log.exists():
        return sides
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or parts[0] not in sides:
            continue  # the line a SIGKILL cut short
        try:
            key = (float(parts[1]), parts[2], parts[3])
        except ValueError:
            continue
        sides[parts[0]][key] += 1
    return sides


def _missing(produced: Counter[Any], scored: dict[str, Counter[Any]]) -> dict[str, int]:
    return {side: sum(1 for key in produced if key not in counts)
            for side, counts in scored.items()}


def _read_again(text: str) -> dict[str, float]:
    """Per stage, the last worker's seeks back to a message Faust never handed over."""
    found = re.findall(r'^reachwatch_partitions_read_again_total\{stage="(\w+)"\} (\S+)$',
                       text, re.M)
    return {stage: float(value) for stage, value in found}


def test_sigkilled_saturated_worker_scores_every_event_at_least_once(
        company, service, start_worker, clients):
    rng = random.Random(11)
    lines = [raw for _, raw in company.test_lines]
    events = [parse_event(orjson.loads(raw)) for raw in lines]
    produced = Counter((e.ts, e.principal, e.resource) for e in events)
    pipeline = Pipeline(Registry(company.registry).load(company.version))
    expected = {(a.kind, a.entity, a.alert_id)
                for side in (pipeline.observe_principals, pipeline.observe_resources)
                for a in side(events, {}).alerts}
    assert expected
    log = service.workdir / "scored.tsv"
    env = {"REACHWATCH_SCORED_LOG_FILE": str(log),
           # One record per producer batch: the embedded broker's changelog recovery stops
           # early on multi-record batches (streams/service/settings.py).
           "REACHWATCH_PRODUCER_MAX_BATCH_SIZE": "1"}
    worker = start_worker(**env)
    worker.wait_assigned()
    produce_keyed(service.broker.bootstrap, service.input_topic, lines)
    kills = []
    for _ in range(KILLS):
        # A random moment while it works through the backlog.
        time.sleep(rng.uniform(1.0, 4.0))
        kills.append(sum(_scored(log)["resource"].values()))
        assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
        worker = start_worker(**env)
        worker.wait_assigned()
    deadline = time.monotonic() + 300
    missing = _missing(produced, _scored(log))
    while any(missing.values()) and time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.log_tail()
        time.sleep(2)
        missing = _missing(produced, _scored(log))
    scored = _scored(log)
    text = worker.metrics()
    last = {f"{metric}:{side}": counter(text, f"reachwatch_{metric}_total", side)
            for metric in ("events_late", "events_repeated") for side in ("principal", "resource")}
    print(f"killed at {kills} resource-side events scored; produced {len(lines)}, scored "
          f"principal {sum(scored['principal'].values())} resource "
          f"{sum(scored['resource'].values())} (with replays), missing {missing}; "
          f"last worker {last}, partitions read again {_read_again(text)}")
    assert missing == {"principal": 0, "resource": 0}, worker.log_tail()
    alerts = clients.read_topic(
        service.alerts_topic,
        lambda r: expected <= {(a["kind"], a["entity"], a["alert_id"]) for a in r},
        timeout=60,
    )
    got = {(a["kind"], a["entity"], a["alert_id"]) for a in alerts}
    assert expected <= got, f"missing alerts {sorted(expected - got)[:5]}"
