"""``reachwatch run`` started for the first time in an empty directory."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_first_run_creates_its_data_dir_with_parents(company, start_worker,
                                                       tmp_path: Path) -> None:
    here = tmp_path / "fresh"
    here.mkdir()
    # The model from elsewhere (--model), Faust's data at the default ./var/worker, whose
    # parent ./var does not exist yet.
    worker = start_worker(cwd=here, unset=("REACHWATCH_DATA_DIR",),
                          REACHWATCH_REGISTRY_DIR=str(company.registry))
    status = worker.wait_assigned()
    assert status["model_version"] == company.version
    assert (here / "var" / "worker").is_dir()
    assert worker.stop() == 0
    assert "Traceback" not in worker.log_path.read_text(errors="replace")
