"""compose.yaml as data, and its secrets made for real by the script `make secrets` runs.

Docker does not run on these machines, so the stack is checked structurally: the tests read
compose.yaml, run ``dashboards/secrets.sh`` into a temporary directory, and point the
``/run/secrets/...`` paths the services read at the files it made.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.opsstack import REPO

COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
WORKERS = sorted(name for name in SERVICES if name.startswith("worker-"))
SECRETS_SCRIPT = REPO / "dashboards" / "secrets.sh"
RUN_SECRETS = "/run/secrets/"


def make_secrets(directory: Path) -> Path:
    """Run the `make secrets` script into ``directory`` (created); returns it.

    Skips the calling test where openssl, the script's one dependency, is missing.
    """
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (dashboards/secrets.sh needs it)")
    subprocess.run(["sh", str(SECRETS_SCRIPT), str(directory)], check=True,
                   capture_output=True, text=True, timeout=120)
    return directory


def secret_files(directory: Path) -> dict[str, Path]:
    """Secret name (as mounted under /run/secrets) -> the file `make secrets` made for it."""
    out = {}
    for name, spec in COMPOSE["secrets"].items():
        source = Path(spec["file"])
        assert source.parts[0] == "secrets", (name, spec)
        out[name] = directory / Path(*source.parts[1:])
    return out


def mounted_secrets(service: str) -> set[str]:
    """Names of the secrets a service mounts (short syntax or ``source:``)."""
    return {s if isinstance(s, str) else s["source"] for s in SERVICES[service].get("secrets", [])}


def worker_environ(name: str, secrets_dir: Path) -> dict[str, str]:
    """A worker's compose environment with /run/secrets/X pointed at the made files."""
    files = secret_files(secrets_dir)
    env = {}
    for key, value in SERVICES[name]["environment"].items():
        value = str(value)
        if value.startswith(RUN_SECRETS):
            value = str(files[value.removeprefix(RUN_SECRETS)])
        env[key] = value
    return env
