"""A live worker survives a broken promoted model: it keeps scoring with the one it has.

One worker follows ``current`` on a private copy of the registry while ``CURRENT`` is
pointed, in turn, at a version that does not exist, at one whose model bytes were tampered
with, and at one whose forests were fitted on another feature set. Each must be counted
once in ``reachwatch_model_reload_failures_total`` and change nothing else: same model,
same process, and the incident still comes out scored by the original model.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.tinyorg import write_wide_version

from reachwatch.models.registry import LoadedModel, Registry

pytestmark = pytest.mark.integration

FAILURES = "reachwatch_model_reload_failures"


def _reload_failures(worker) -> float:
    for family in text_string_to_metric_families(worker.metrics()):
        if family.name == FAILURES:
            return sum(s.value for s in family.samples if s.name == f"{FAILURES}_total")
    raise AssertionError(f"{FAILURES}_total missing from the worker's /metrics")


def _point_current_at(root: Path, version: str) -> None:
    # Written directly, as a hand edit or a file sync would: ``promote`` verifies first and
    # would refuse the first two faults before any worker could see them.
    tmp = root / ".CURRENT.test"
    tmp.write_text(version + "\n")
    os.replace(tmp, root / "CURRENT")


def _missing_version(registry: Registry, model: LoadedModel) -> str:
    return "20990101T000000Z-deadbeef"


def _tampered_version(registry: Registry, model: LoadedModel) -> str:
    """A copy of ``model`` with one byte of its model file flipped (sha256 fails)."""
    metadata = {**model.metadata, "note": "tampered"}
    version = registry.write(model.detectors, model.profiles, metadata)
    path = registry.root / version / "model.skops"
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    path.write_bytes(bytes(payload))
    return version


# (fault, how to make such a version, what the worker's log must say about it)
FAULTS: list[tuple[str, Callable[[Registry, LoadedModel], str], str]] = [
    ("missing", _missing_version, "unknown model version"),
    ("tampered", _tampered_version, "model.skops checksum mismatch"),
    ("wrong feature set", write_wide_version, "feature count mismatch"),
]


def test_broken_promotions_keep_the_original_model_scoring(
    company, service, start_worker, clients, tmp_path
):
    # A private copy: pointing the shared registry at broken versions would hurt other tests.
    service.registry = shutil.copytree(company.registry, tmp_path / "registry")
    registry = Registry(service.registry)
    original = registry.load(company.version)
    worker = start_worker()
    worker.wait_assigned()
    worker.wait_until(lambda s: s.get("model_version") == company.version, 30, "first model")
    pid = worker.pid
    failures = _reload_failures(worker)

    for name, make_version, reason in FAULTS:
        bad = make_version(registry, original)
        _point_current_at(registry.root, bad)
        deadline = time.monotonic() + 20
        while _reload_failures(worker) < failures + 1 and time.monotonic() < deadline:
            assert worker.process.poll() is None, f"worker died on the {name} version"
            time.sleep(0.2)
        assert _reload_failures(worker) == failures + 1, (
            f"{name} version {bad} not counted once\n{worker.log_tail()}"
        )
        failures += 1
        assert worker.status()["model_version"] == company.version
        assert worker.pid == pid and worker.process.poll() is None
        said = [line for line in worker.log_path.read_text(errors="replace").splitlines()
                if f"promoted model {bad} failed to load" in line]
        assert len(said) == 1 and reason in said[0], f"log about the {name} version: {said}"

    entity = company.incident["entity"]
    lines = company.lines_between(company.incident_start - 3600, company.incident_end)
    clients.produce_confluent(service.input_topic, lines)
    alerts = clients.read_topic(
        service.alerts_topic, lambda r: any(a["entity"] == entity for a in r), timeout=90
    )

    mine = [a for a in alerts if a["entity"] == entity]
    assert mine, f"no alert for {entity}; status {worker.status()}\n{worker.log_tail()}"
    assert {a["model_version"] for a in alerts} == {company.version}
    assert worker.pid == pid and worker.process.poll() is None
    # The last bad pointer is still in place: not retried, so still counted once each.
    assert _reload_failures(worker) == failures
