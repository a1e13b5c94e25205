"""Cardinality attack at library level: a flood of never-seen principals.

2,500 distinct new principals per second of event time go through ``Pipeline`` with the
stream's periodic sweep (``Pipeline.expire_idle``). State then holds at most what arrived
within the idle TTL plus one sweep interval, whatever the attack's length; without the
sweep it grows with every principal. The TTL is shortened to a second here so the bound
shows in a few seconds of run time; ``bench/cardinality.py`` measures memory (RSS) the
same way at full length.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from support.tinyorg import flood

from reachwatch.models.pipeline import Pipeline

RATE = 2_500  # new principals per second of event time
SECONDS = 4
TTL = 1.0  # seconds of event time
SWEEP = 1.0
BATCH = 500
START = 1_773_738_000.0  # after the tiny organisation's history


def attack(pipeline: Pipeline, *, sweep: bool) -> tuple[list[int], int]:
    """Principal states held after each second, and reads scored."""
    states: dict[str, Any] = {}
    held, scored, next_sweep = [], 0, START
    for second in range(SECONDS):
        events = flood(START, second, RATE, datasets=24)
        for start in range(0, len(events), BATCH):
            chunk = events[start : start + BATCH]
            if sweep and chunk[-1].ts >= next_sweep:
                pipeline.expire_idle(states, chunk[-1].ts)
                next_sweep = chunk[-1].ts + SWEEP
            scored += pipeline.observe_principals(chunk, states).scored
        held.append(len(states))
    return held, scored


def short_lived(model: Any) -> Pipeline:
    return Pipeline(replace(model, config=replace(model.config, idle_ttl_days=TTL / 86400)))


def test_expiry_bounds_principal_state_under_a_flood_of_new_principals(tiny_model) -> None:
    held, scored = attack(short_lived(tiny_model), sweep=True)
    assert scored == RATE * SECONDS  # the flood is scored, not dropped
    bound = RATE * (TTL + SWEEP) + BATCH
    assert max(held) <= bound
    assert held[-1] <= held[1]  # flat once the first TTL has passed, not growing


def test_without_a_sweep_state_grows_with_every_new_principal(tiny_model) -> None:
    held, _ = attack(short_lived(tiny_model), sweep=False)
    assert held == [RATE * (s + 1) for s in range(SECONDS)]
