"""Test-only helpers around the tiny organisation (``reachwatch.models.tinyorg``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from reachwatch.models.records import AccessEvent
from reachwatch.models.tinyorg import START, TEAMS, datasets, flood, history, office_day, people

__all__ = ["START", "TEAMS", "datasets", "flood", "history", "office_day", "people",
           "write_jsonl", "write_wide_version"]


def write_jsonl(path: Path, events: list[AccessEvent]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e.to_json()) + b"\n" for e in events))
    return path


def write_wide_version(registry: Any, model: Any = None) -> str:
    """Write a correctly signed version whose detectors were fitted on one column more
    than this code's features (a model from another feature code); return its version id."""
    import numpy as np

    from reachwatch.models.detector import BreadthDetector
    from reachwatch.models.sides import SIDES

    model = model or registry.load()
    rng = np.random.default_rng(0)
    detectors = {
        side.kind: BreadthDetector(kind=side.kind, n_estimators=5).fit(
            rng.normal(size=(64, len(side.features) + 1)), breadth=np.zeros(64)
        )
        for side in SIDES
    }
    return registry.write(detectors, model.profiles, {**model.metadata, "note": "wide"})


