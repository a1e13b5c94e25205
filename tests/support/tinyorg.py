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
    """Write a correctly signed version whose forests were fitted on one column more than
    this code's features (a model from another feature code); return its version id."""
    import numpy as np
    from sklearn.ensemble import IsolationForest

    from reachwatch.models.features import FEATURE_NAMES

    model = model or registry.load()
    rng = np.random.default_rng(0)
    forests = {
        kind: IsolationForest(n_estimators=5, random_state=0).fit(
            rng.normal(size=(64, len(FEATURE_NAMES[kind]) + 1))
        )
        for kind in model.kinds
    }
    return registry.write(forests, model.profiles, {**model.metadata, "note": "wide"})


