from __future__ import annotations

from support.tinyorg import START

from reachwatch.models.features import DetectionConfig, FeatureBuilder
from reachwatch.models.records import AccessEvent
from reachwatch.models.sides import PRINCIPAL
from reachwatch.models.windows import encode_state
from reachwatch.streams.offline.statestore import StateStore


def _store_with(n: int, capacity: int) -> tuple[StateStore, FeatureBuilder]:
    builder = FeatureBuilder(DetectionConfig())
    store = StateStore(hot_capacity=capacity)
    for i in range(n):
        state = store.setdefault(f"p{i}", builder.new_state(PRINCIPAL))
        builder.view(AccessEvent(ts=START + i, principal=f"p{i}", resource="r"), state)
    return store, builder


def test_flush_keeps_only_the_most_recent_states_decoded():
    store, _ = _store_with(10, capacity=3)
    assert store.flush() == 7
    assert len(store) == 10
    assert store._hot.keys() == ["p7", "p8", "p9"]


def test_a_cold_state_comes_back_identical():
    store, _ = _store_with(5, capacity=1)
    before = encode_state(dict(store._hot.states())["p0"])  # without making it most recent
    store.flush()
    assert "p0" in store._cold
    assert encode_state(store["p0"]) == before


def test_changes_to_a_state_survive_being_flushed():
    store, builder = _store_with(3, capacity=1)
    state = store["p0"]
    builder.view(AccessEvent(ts=START + 100, principal="p0", resource="r2"), state)
    store["p1"]
    store["p2"]
    store.flush()
    assert store["p0"].windows[1].distinct == 2


def test_watermarks_are_known_without_decoding():
    store, _ = _store_with(4, capacity=1)
    store.flush()
    assert dict(store.watermarks()) == {f"p{i}": START + i for i in range(4)}
    del store["p0"]
    assert "p0" not in store and len(store) == 3
