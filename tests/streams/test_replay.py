"""Offline replay's reading step: size limits apply to the records of every file."""

from __future__ import annotations

from pathlib import Path

import orjson

from reachwatch.streams.adapters import get_adapter
from reachwatch.streams.records import Limits, limits_in_force
from reachwatch.streams.replay import Tally, collect_events

GOOD = {"ts": "2026-03-23T10:00:00Z", "principal": "ana", "resource": "hr.salaries"}


def _history(tmp_path: Path) -> Path:
    path = tmp_path / "history.jsonl"
    lines = [GOOD, {**GOOD, "principal": "p" * 40}]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def test_lowered_limit_rejects_records_the_default_accepts(tmp_path: Path) -> None:
    path = _history(tmp_path)
    default, lowered = Tally(), Tally()
    list(collect_events([path], get_adapter("native"), None, default))
    list(collect_events([path], get_adapter("native"), None, lowered,
                        limits=Limits(max_id_length=16)))
    assert (default.accepted, sum(default.rejected.values())) == (2, 0)
    assert (lowered.accepted, dict(lowered.rejected)) == (1, {"too_large": 1})


def test_limits_are_not_in_force_between_files(tmp_path: Path) -> None:
    paths = [_history(tmp_path)] * 2
    tally = Tally()
    for _ in collect_events(paths, get_adapter("native"), None, tally,
                            limits=Limits(max_id_length=16)):
        assert limits_in_force() == Limits()
    assert dict(tally.rejected) == {"too_large": 2}
