"""The model registry: versioned artifacts on disk, a promoted ``CURRENT`` pointer.

Layout of a registry directory (default ``./var/models``)::

    CURRENT                 version id of the promoted model (atomic rename on promote)
    promotions.jsonl        who-promoted-what log, newest last (rollback walks it back)
    <version>/model.skops   the fitted detector of each alert kind (skops: no pickle)
    <version>/profiles.npz  peer profiles' resource keys, their sole readers, each dataset's
                            largest read (numpy, no pickle)
    <version>/metadata.json features, thresholds, config, training window, counts,
                            library versions, sha256 of the two files above
    <version>/metadata.sha256
    <version>/card.md, scores.png   the model card

Loading checks every sha256 before deserialising anything, and skops loads only the
allow-listed types; a tampered, truncated or incompatible artifact raises
``ModelIntegrityError`` and is never executed.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import skops.io as sio

from reachwatch.models.detector import BreadthDetector
from reachwatch.models.errors import ModelIntegrityError, RegistryError
from reachwatch.models.features import DetectionConfig, PeerProfiles
from reachwatch.models.sides import SIDES

# 2: the stored artifact is the fitted ``BreadthDetector`` of each kind (1 stored bare
# IsolationForests); 3: profiles hold each dataset's largest read, without which heavy
# reads (whole tables) are not what the calibrated gates were fitted on. A 0.x reads
# only its own format.
FORMAT_VERSION = 3
# Types skops may rebuild beyond its built-in trusted set. Anything else in a model file
# is refused before loading.
ALLOWED_TYPES = ("reachwatch.models.detector.BreadthDetector", "sklearn.tree._tree.Tree")
MODEL_FILE = "model.skops"
PROFILES_FILE = "profiles.npz"
METADATA_FILE = "metadata.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class LoadedModel:
    version: str
    config: DetectionConfig
    profiles: PeerProfiles
    detectors: dict[str, BreadthDetector]  # by alert kind
    metadata: dict[str, Any]

    @property
    def trained_at(self) -> float:
        return float(self.metadata.get("created_ts", 0.0))


def _write_atomic(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


class Registry:
    """Versions under one directory; ``load`` verifies before it deserialises."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # -- writing ---------------------------------------------------------------------
    def write(
        self,
        detectors: dict[str, BreadthDetector],
        profiles: PeerProfiles,
        metadata: dict[str, Any],
    ) -> str:
        """Store a new version (fitted detectors by alert kind) and return its id (not
        promoted yet)."""
        self.root.mkdir(parents=True, exist_ok=True)
        model_bytes = sio.dumps(detectors)
        keys = {
            f"group:{group}": np.fromiter(sorted(k), dtype=np.uint64, count=len(k))
            for group, k in profiles.resources.items()
        }
        # The resources only one member read, with that member's key (rows of two).
        keys.update({
            f"sole:{group}": np.asarray(sorted(only.items()), dtype=np.uint64).reshape(-1, 2)
            for group, only in profiles.sole.items()
        })
        # Each dataset's largest read (``PeerProfiles.largest``): keys and records apart.
        largest = sorted(profiles.largest.items())
        keys["largest:keys"] = np.asarray([k for k, _ in largest], dtype=np.uint64)
        keys["largest:records"] = np.asarray([v for _, v in largest], dtype=np.float64)
        content = hashlib.sha256(model_bytes).hexdigest()
        stamp = time.strftime(
            "%Y%m%dT%H%M%SZ", time.gmtime(metadata.get("created_ts", time.time()))
        )
        version = f"{stamp}-{content[:8]}"
        folder = self.root / version
        tmp = self.root / f".{version}.partial"
        tmp.mkdir(parents=True, exist_ok=False)
        (tmp / MODEL_FILE).write_bytes(model_bytes)
        with (tmp / PROFILES_FILE).open("wb") as handle:
            np.savez_compressed(handle, **keys)
        meta = dict(metadata)
        meta.update(
            format_version=FORMAT_VERSION,
            version=version,
            profiles={
                "baselines": profiles.baselines,
                "hours": profiles.hours,
                "reach": {group: sorted(teams) for group, teams in profiles.reach.items()},
            },
            sha256={
                MODEL_FILE: sha256_file(tmp / MODEL_FILE),
                PROFILES_FILE: sha256_file(tmp / PROFILES_FILE),
            },
        )
        meta_bytes = orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        (tmp / METADATA_FILE).write_bytes(meta_bytes)
        (tmp / "metadata.sha256").write_text(hashlib.sha256(meta_bytes).hexdigest() + "\n")
        os.replace(tmp, folder)
        return version

    # -- pointers --------------------------------------------------------------------
    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and (p / METADATA_FILE).exists()
        )

    def current_version(self) -> str | None:
        pointer = self.root / "CURRENT"
        try:
            text = pointer.read_text().strip()
        except FileNotFoundError:
            return None
        return text or None

    def promote(self, version: str, *, who: str = "cli") -> None:
        version = self.resolve(version)
        # A full load, not just the checksums: a version whose detectors do not fit the
        # code's features is refused here, not later by every worker that follows CURRENT.
        self.load(version)
        self._set_current(version, action="promote", who=who)

    def rollback(self, *, who: str = "cli") -> str:
        """Re-promote the version that was current before the present one."""
        history = [row["version"] for row in self.promotions()]
        current = self.current_version()
        while history and history[-1] == current:
            history.pop()
        if not history:
            raise RegistryError("nothing to roll back to: no earlier promoted version")
        previous = history[-1]
        self.load(previous)
        self._set_current(previous, action="rollback", who=who)
        return previous

    def promotions(self) -> Iterator[dict[str, Any]]:
        log = self.root / "promotions.jsonl"
        if not log.exists():
            return iter(())
        return (orjson.loads(line) for line in log.read_bytes().splitlines() if line.strip())

    def _set_current(self, version: str, *, action: str, who: str) -> None:
        _write_atomic(self.root / "CURRENT", (version + "\n").encode())
        row = {"ts": time.time(), "action": action, "version": version, "who": who}
        with (self.root / "promotions.jsonl").open("ab") as handle:
            handle.write(orjson.dumps(row) + b"\n")

    def resolve(self, ref: str | None) -> str:
        """A version id from 'current', a full id, or a unique prefix."""
        if ref in (None, "", "current"):
            current = self.current_version()
            if current is None:
                available = self.versions()
                if not available:
                    raise RegistryError(f"no model versions in {self.root}")
                raise RegistryError(
                    f"no promoted model in {self.root}; run `reachwatch models promote "
                    f"{available[-1]}`"
                )
            return current
        assert ref is not None
        versions = self.versions()
        if ref in versions:
            return ref
        matches = [v for v in versions if v.startswith(ref) or v.endswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RegistryError(f"unknown model version {ref!r} in {self.root}")
        raise RegistryError(f"ambiguous model version {ref!r}: {', '.join(matches)}")

    def metadata(self, version: str) -> dict[str, Any]:
        return self.verify(self.resolve(version))

    # -- loading ---------------------------------------------------------------------
    def verify(self, version: str) -> dict[str, Any]:
        """Check every checksum of a version; return its metadata."""
        folder = self.root / version
        meta_path = folder / METADATA_FILE
        try:
            meta_bytes = meta_path.read_bytes()
            expected = (folder / "metadata.sha256").read_text().split()[0]
        except (FileNotFoundError, IndexError) as exc:
            raise ModelIntegrityError(f"model {version}: missing file ({exc})") from None
        if hashlib.sha256(meta_bytes).hexdigest() != expected:
            raise ModelIntegrityError(f"model {version}: metadata.json checksum mismatch")
        try:
            meta = orjson.loads(meta_bytes)
        except orjson.JSONDecodeError as exc:
            raise ModelIntegrityError(f"model {version}: unreadable metadata ({exc})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelIntegrityError(
                f"model {version}: format {meta.get('format_version')} is not "
                f"{FORMAT_VERSION} (another reachwatch version wrote it; train a new one)"
            )
        for name, digest in meta.get("sha256", {}).items():
            path = folder / name
            if not path.exists():
                raise ModelIntegrityError(f"model {version}: {name} is missing")
            if sha256_file(path) != digest:
                raise ModelIntegrityError(f"model {version}: {name} checksum mismatch")
        for side in SIDES:
            names = meta.get("features", {}).get(side.kind)
            if names != list(side.features):
                raise ModelIntegrityError(
                    f"model {version}: {side.kind} features differ from this reachwatch's "
                    "(trained by another version; retrain)"
                )
        return meta

    def load(self, ref: str | None = "current") -> LoadedModel:
        version = self.resolve(ref)
        meta = self.verify(version)
        folder = self.root / version
        model_path = folder / MODEL_FILE
        try:
            untrusted = sio.get_untrusted_types(file=model_path)
        except Exception as exc:  # not a skops zip at all (e.g. a pickle)
            raise ModelIntegrityError(f"model {version}: not a skops file ({exc})") from None
        refused = sorted(set(untrusted) - set(ALLOWED_TYPES))
        if refused:
            raise ModelIntegrityError(
                f"model {version}: refusing to load non-allow-listed types {refused}"
            )
        try:
            stored = sio.load(model_path, trusted=list(untrusted))
        except Exception as exc:  # skops raises many types on malformed files
            raise ModelIntegrityError(f"model {version}: cannot load model ({exc})") from None
        with np.load(folder / PROFILES_FILE, allow_pickle=False) as npz:
            resources = {
                name.split(":", 1)[1]: frozenset(int(k) for k in npz[name])
                for name in npz.files
                if name.startswith("group:")
            }
            sole = {
                name.split(":", 1)[1]: {int(k): int(m) for k, m in npz[name]}
                for name in npz.files
                if name.startswith("sole:")
            }
            largest = (
                dict(zip(npz["largest:keys"].tolist(), npz["largest:records"].tolist(),
                         strict=True))
                if "largest:keys" in npz.files
                else {}
            )
        profiles = PeerProfiles(
            baselines=meta["profiles"]["baselines"],
            resources=resources,
            hours=meta["profiles"]["hours"],
            sole=sole,
            largest=largest,
            # Absent from models stored before it: no alert is then lowered for reach.
            reach={
                group: frozenset(teams)
                for group, teams in meta["profiles"].get("reach", {}).items()
            },
        )
        detectors: dict[str, BreadthDetector] = {}
        for side in SIDES:
            detector = stored.get(side.kind) if isinstance(stored, dict) else None
            if not isinstance(detector, BreadthDetector) or detector.kind != side.kind:
                raise ModelIntegrityError(f"model {version}: no fitted detector for {side.kind}")
            if detector.n_features_in_ != len(side.features):
                raise ModelIntegrityError(f"model {version}: {side.kind} feature count mismatch")
            detector.score(np.zeros((0, detector.n_features_in_)))  # flattens it now
            detectors[side.kind] = detector
        config = DetectionConfig.from_json(meta["config"])
        return LoadedModel(version, config, profiles, detectors, meta)

    def remove_partial(self) -> None:
        for path in self.root.glob(".*.partial"):
            for child in path.iterdir():
                child.unlink()
            path.rmdir()


def ratio_text(log_ratio: float) -> str:
    """A log-ratio as a human multiplier ("4.2x")."""
    return f"{math.exp(log_ratio):.1f}x"
