"""Shared fixtures: the tiny organisation (tests/support/tinyorg.py) and a model trained on it."""

from __future__ import annotations

import pytest
from support.tinyorg import history

from reachwatch.models.records import AccessEvent
from reachwatch.models.registry import Registry
from reachwatch.models.training import TrainingParams, fit


@pytest.fixture(scope="session")
def tiny_history() -> list[AccessEvent]:
    return history()


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory, tiny_history) -> Registry:
    """A registry holding one promoted model trained on the tiny organisation."""
    root = tmp_path_factory.mktemp("registry")
    fitted = fit(tiny_history, params=TrainingParams(n_estimators=60, seed=3))
    registry = Registry(root)
    version = registry.write(fitted.detectors, fitted.profiles, fitted.metadata)
    registry.promote(version)
    return registry


@pytest.fixture(scope="session")
def tiny_model(tiny_registry):
    return tiny_registry.load()
