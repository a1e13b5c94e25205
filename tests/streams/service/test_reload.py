"""The model watcher follows promotions and survives a broken promoted version."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
from prometheus_client import CollectorRegistry
from support.tinyorg import write_wide_version

from reachwatch.models.registry import Registry
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.reload import ModelWatcher


@pytest.fixture
def registry(tiny_registry, tmp_path) -> Registry:
    """A private copy with a second, unpromoted version of the same model."""
    copy = Registry(shutil.copytree(tiny_registry.root, tmp_path / "registry"))
    model = copy.load()
    copy.write(model.detectors, model.profiles, {**model.metadata, "note": "second"})
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


def _point_current_at(registry: Registry, version: str) -> None:
    """Rewrite CURRENT directly, as a hand edit or a file sync would (``promote`` verifies)."""
    tmp = registry.root / ".CURRENT.test"
    tmp.write_text(version + "\n")
    os.replace(tmp, registry.root / "CURRENT")


def _metadata_with_fewer_features(registry: Registry) -> str:
    """A correctly signed version whose metadata lists other features than this code's."""
    model = registry.load()
    features = {kind: list(names)[:-1] for kind, names in model.metadata["features"].items()}
    return registry.write(model.detectors, model.profiles, {**model.metadata, "features": features})


def _assert_kept_and_counted_once(
    registry: Registry, bad: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics(CollectorRegistry())
    watcher = ModelWatcher(registry, metrics=metrics)
    first = watcher.load()
    _point_current_at(registry, bad)
    with caplog.at_level(logging.ERROR, logger="reachwatch.streams.service.reload"):
        assert watcher.poll() is None
        assert watcher.poll() is None  # the same bad pointer is neither retried nor re-counted
    assert watcher.loaded_version == first.version
    assert metrics.model_reload_failures._value.get() == 1
    [record] = [r for r in caplog.records if r.name == "reachwatch.streams.service.reload"]
    assert bad in record.getMessage() and first.version in record.getMessage()
    assert reason in record.getMessage()


def test_current_pointing_at_a_missing_version_keeps_the_old_model(registry, caplog):
    _assert_kept_and_counted_once(
        registry, "20990101T000000Z-deadbeef", "unknown model version", caplog
    )


@pytest.mark.parametrize(
    ("make_version", "reason"),
    [
        (write_wide_version, "feature count mismatch"),
        (_metadata_with_fewer_features, "features differ"),
    ],
    ids=["forest-columns", "metadata-features"],
)
def test_a_version_with_another_feature_set_keeps_the_old_model(
    registry, caplog, make_version, reason
):
    _assert_kept_and_counted_once(registry, make_version(registry), reason, caplog)


def test_pinned_version_never_reloads(registry):
    watcher = ModelWatcher(registry, ref=registry.current_version())
    watcher.load()
    registry.promote(_other_version(registry))
    assert watcher.poll() is None


def test_lateness_override_reaches_the_loaded_config(registry):
    model = ModelWatcher(registry, allowed_lateness=42.0).load()
    assert model.config.allowed_lateness == 42.0


def test_every_load_is_checked_and_a_refused_promotion_keeps_the_old_model(registry):
    from reachwatch.models.errors import ConfigError

    checked: list[str] = []

    def check(metadata):
        checked.append(metadata["version"])
        if metadata.get("note") == "second":
            raise ConfigError(f"model {metadata['version']} was trained through another chain")

    metrics = Metrics(CollectorRegistry())
    watcher = ModelWatcher(registry, metrics=metrics, check=check)
    first = watcher.load()
    refused = _other_version(registry)
    registry.promote(refused)
    assert watcher.poll() is None
    assert checked == [first.version, refused]
    assert watcher.loaded_version == first.version
    assert metrics.model_reload_failures._value.get() == 1
    with pytest.raises(ConfigError, match="another chain"):
        ModelWatcher(registry, check=check).load()  # at start: the worker does not start
