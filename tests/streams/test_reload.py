"""The model watcher follows promotions and survives a broken promoted version."""

from __future__ import annotations

import shutil

import pytest
from prometheus_client import CollectorRegistry

from reachwatch.models.registry import Registry
from reachwatch.streams.metrics import Metrics
from reachwatch.streams.reload import ModelWatcher


@pytest.fixture
def registry(tiny_registry, tmp_path) -> Registry:
    """A private copy with a second, unpromoted version of the same model."""
    copy = Registry(shutil.copytree(tiny_registry.root, tmp_path / "registry"))
    model = copy.load()
    forests = {kind: k.forest for kind, k in model.kinds.items()}
    copy.write(forests, model.profiles, {**model.metadata, "note": "second"})
    return copy


def _other_version(registry: Registry) -> str:
    return next(v for v in registry.versions() if v != registry.current_version())


def test_poll_is_quiet_until_a_promotion(registry):
    watcher = ModelWatcher(registry)
    first = watcher.load()
    assert watcher.poll() is None
    registry.promote(_other_version(registry))
    swapped = watcher.poll()
    assert swapped is not None and swapped.version != first.version
    assert watcher.poll() is None


def test_broken_promoted_version_keeps_the_old_model_and_is_counted(registry):
    metrics = Metrics(CollectorRegistry())
    watcher = ModelWatcher(registry, metrics=metrics)
    first = watcher.load()
    broken = _other_version(registry)
    registry.promote(broken)
    (registry.root / broken / "model.skops").write_bytes(b"tampered")
    assert watcher.poll() is None
    assert watcher.loaded_version == first.version
    assert metrics.model_reload_failures._value.get() == 1
    assert watcher.poll() is None  # not retried (nor re-counted) until the pointer moves
    assert metrics.model_reload_failures._value.get() == 1


def test_pinned_version_never_reloads(registry):
    watcher = ModelWatcher(registry, ref=registry.current_version())
    watcher.load()
    registry.promote(_other_version(registry))
    assert watcher.poll() is None


def test_lateness_override_reaches_the_loaded_config(registry):
    model = ModelWatcher(registry, allowed_lateness=42.0).load()
    assert model.config.allowed_lateness == 42.0
