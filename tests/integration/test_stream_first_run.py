"""``reachwatch run`` started for the first time in a directory with only its model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_first_run_creates_its_data_dir_with_parents(company, start_worker,
                                                       tmp_path: Path) -> None:
    here = tmp_path / "fresh"
    shutil.copytree(company.registry, here / "var" / "models")
    assert not (here / "var" / "worker").exists()
    # Defaults only: ./var/models for the model, ./var/worker for Faust's data.
    worker = start_worker(cwd=here, unset=("REACHWATCH_DATA_DIR", "REACHWATCH_REGISTRY_DIR"))
    status = worker.wait_assigned()
    assert status["model_version"] == company.version
    assert (here / "var" / "worker").is_dir()
    assert worker.stop() == 0
    assert "Traceback" not in worker.log_path.read_text(errors="replace")
