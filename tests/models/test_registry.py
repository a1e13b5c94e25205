from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import orjson
import pytest
from support.tinyorg import write_wide_version

from reachwatch.models.errors import ModelIntegrityError, RegistryError
from reachwatch.models.registry import Registry


@pytest.fixture()
def registry(tiny_registry: Registry, tmp_path: Path) -> Registry:
    """A private copy, so tests may tamper with it."""
    root = tmp_path / "models"
    shutil.copytree(tiny_registry.root, root)
    return Registry(root)


def _resign_metadata(folder: Path, meta: dict) -> None:
    raw = orjson.dumps(meta)
    (folder / "metadata.json").write_bytes(raw)
    (folder / "metadata.sha256").write_text(hashlib.sha256(raw).hexdigest())


def test_load_returns_the_promoted_version(registry):
    model = registry.load()
    assert model.version == registry.current_version()
    assert set(model.detectors) == {"broad_reader", "broad_audience"}
    # The detector the registry serves is the fitted estimator, its gates included.
    detector = model.detectors["broad_reader"]
    assert detector.kind == "broad_reader"
    assert detector.score_threshold_ == model.metadata["thresholds"]["broad_reader"]["score"]


def test_a_flipped_byte_in_the_model_is_refused(registry):
    path = registry.root / registry.current_version() / "model.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="model.skops checksum mismatch"):
        registry.load()


def test_edited_thresholds_are_refused(registry):
    meta_path = registry.root / registry.current_version() / "metadata.json"
    meta = orjson.loads(meta_path.read_bytes())
    meta["thresholds"]["broad_reader"]["score"] = 0.99  # silence the detector
    meta_path.write_bytes(orjson.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="metadata.json checksum mismatch"):
        registry.load()


def test_a_pickle_payload_is_never_executed(registry, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    folder = registry.root / registry.current_version()
    (folder / "model.skops").write_bytes(pickle.dumps(Payload()))
    meta = orjson.loads((folder / "metadata.json").read_bytes())
    meta["sha256"]["model.skops"] = hashlib.sha256(
        (folder / "model.skops").read_bytes()
    ).hexdigest()
    _resign_metadata(folder, meta)  # an attacker who can also rewrite the checksums
    with pytest.raises(ModelIntegrityError):
        registry.load()
    assert not marker.exists()


def test_a_model_with_other_features_is_refused(registry):
    folder = registry.root / registry.current_version()
    meta = orjson.loads((folder / "metadata.json").read_bytes())
    meta["features"]["broad_reader"] = meta["features"]["broad_reader"][:-1]
    _resign_metadata(folder, meta)
    with pytest.raises(ModelIntegrityError, match="features differ"):
        registry.load()


def test_a_model_of_the_previous_format_is_refused_with_what_to_do(registry):
    """A format-2 model has no largest read per dataset: served by this version its
    heavy-read gate would judge what it was not fitted on, so it is refused, saying why."""
    folder = registry.root / registry.current_version()
    meta = orjson.loads((folder / "metadata.json").read_bytes())
    meta["format_version"] = 2
    _resign_metadata(folder, meta)
    with pytest.raises(ModelIntegrityError, match="format 2 is not 3 .*train a new one"):
        registry.load()


def test_detectors_fitted_on_other_columns_are_refused(registry):
    # Metadata names the right features and every checksum holds: only the detectors' own
    # input width betrays a model trained by another feature code.
    wide = write_wide_version(registry)
    with pytest.raises(ModelIntegrityError, match=f"model {wide}: .* feature count mismatch"):
        registry.load(wide)
    # ...and an operator cannot promote it: the pointer does not move.
    current = registry.current_version()
    with pytest.raises(ModelIntegrityError, match="feature count mismatch"):
        registry.promote(wide)
    assert registry.current_version() == current


def test_promote_and_rollback_move_the_pointer(registry, tiny_history):
    from reachwatch.models.training import TrainingParams, fit

    first = registry.current_version()
    fitted = fit(tiny_history[:5000], params=TrainingParams(n_estimators=10, seed=9))
    fitted.metadata["created_ts"] += 5  # a later stamp than the fixture's version
    second = registry.write(fitted.detectors, fitted.profiles, fitted.metadata)
    assert second != first
    registry.promote(second)
    assert registry.load().version == second
    assert registry.rollback() == first
    assert registry.current_version() == first


def test_unknown_version_is_a_clear_error(registry):
    with pytest.raises(RegistryError, match="unknown model version 'nope'"):
        registry.load("nope")


def test_empty_registry_says_so(tmp_path):
    with pytest.raises(RegistryError, match="no model versions"):
        Registry(tmp_path).load()


def test_who_alone_read_a_resource_is_stored_with_the_peer_keys(registry, tiny_history):
    """Serving leaves a reader out of its own peers as training did: the resources only
    one member of a group read come back with that member's key."""
    from reachwatch.models.features import PeerProfiles, group_readers

    expected = {g: r.sole() for g, r in group_readers(tiny_history).items()}
    loaded = registry.load().profiles
    assert isinstance(loaded, PeerProfiles)
    assert any(loaded.sole.values())
    assert {g: s for g, s in loaded.sole.items() if s} == {
        g: s for g, s in expected.items() if s and g in loaded.resources
    }


def test_each_datasets_largest_read_is_stored_with_the_profiles(registry):
    """Serving knows what "the whole table" is as training did: each dataset's largest
    allowed read (``features.largest_reads``) comes back, key for key."""
    from reachwatch.models.features import largest_reads, resource_key
    from reachwatch.models.records import AccessEvent

    reads = [AccessEvent(ts=float(i), principal="p", resource=f"ds{i % 3}", records=n)
             for i, n in enumerate((10, 2_000_000, 7, 40, 3, 9))]
    largest = largest_reads(reads)
    assert largest == {resource_key("ds0"): 40.0, resource_key("ds1"): 2_000_000.0,
                       resource_key("ds2"): 9.0}
    model = registry.load()
    model.profiles.largest = largest
    version = registry.write(model.detectors, model.profiles, model.metadata)
    assert registry.load(version).profiles.largest == largest
    assert model.version != version


def test_each_groups_reach_is_stored_with_the_profiles(registry, tiny_history):
    """Serving lowers an alert for reach as training measured it: every group's teams
    whose sensitive data its people read come back, team for team; a model stored
    before reach existed loads with none (no alert is lowered for it)."""
    from reachwatch.models.features import peer_reach

    loaded = registry.load()
    expected = peer_reach(tiny_history)
    assert expected and loaded.profiles.reach == expected
    folder = registry.root / loaded.version
    meta = orjson.loads((folder / "metadata.json").read_bytes())
    del meta["profiles"]["reach"]
    _resign_metadata(folder, meta)
    assert registry.load(loaded.version).profiles.reach == {}
