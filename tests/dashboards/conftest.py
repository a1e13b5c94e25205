from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.compose import make_secrets
from support.opsstack import PrometheusProcess, find_binary, run_tool, write_prometheus_config  # noqa: F401

# `make tools` installs these from Debian (packages prometheus, prometheus-alertmanager).
MISSING = "not installed; `make tools` (Debian prometheus, prometheus-alertmanager) provides it"


def _binary(*names: str) -> str:
    path = find_binary(*names)
    if path is None:
        pytest.skip(f"{names[0]} {MISSING}")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _binary("amtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _binary("prometheus")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    return _binary("alertmanager", "prometheus-alertmanager")


@pytest.fixture(scope="session")
def empty_prometheus(
    prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    """A real Prometheus with an empty TSDB and no targets: a PromQL parser with an API."""
    workdir = tmp_path_factory.mktemp("prometheus-empty")
    config = write_prometheus_config(workdir / "prometheus.yml")
    with PrometheusProcess(prometheus_bin, config, workdir) as prometheus:
        prometheus.wait_ready()
        yield prometheus


@pytest.fixture(scope="session")
def compose_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The secrets compose.yaml mounts, made by the script `make secrets` runs."""
    return make_secrets(tmp_path_factory.mktemp("compose") / "secrets")
