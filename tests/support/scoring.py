"""Waiting for a live worker to have scored what it consumed (its own metrics)."""

from __future__ import annotations

import re
import time
from typing import Any


def counter(text: str, name: str, side: str) -> float:
    match = re.search(rf'^{name}{{side="{side}"}} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0



def wait_scored(worker: Any, total: int, timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited:\n{worker.log_tail()}")
        try:
            text = worker.metrics()
        except OSError:
            time.sleep(0.5)
            continue
        seen = {f"{metric}:{side}": counter(text, f"reachwatch_{metric}_total", side)
                for metric in ("events_scored", "events_late")
                for side in ("principal", "resource")}
        if all(seen[f"events_scored:{s}"] + seen[f"events_late:{s}"] >= total
               for s in ("principal", "resource")):
            return seen
        time.sleep(1.0)
    raise AssertionError(f"not all {total} events scored: {seen}\n{worker.log_tail()}")


