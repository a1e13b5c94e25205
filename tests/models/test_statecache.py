"""The decoded-state cache: recency order, capacity, and bytes that changed behind it."""

from __future__ import annotations

from reachwatch.models.sides import PRINCIPAL
from reachwatch.models.statecache import StateCache
from reachwatch.models.windows import EntityState


def _state() -> EntityState:
    return EntityState(PRINCIPAL, (900.0, 3600.0, 86400.0), cap=10, memory_cap=10)


def test_a_state_is_returned_only_for_the_bytes_it_matches():
    cache, state, raw = StateCache(4), _state(), b"encoded"
    cache.put("ana", state, raw)
    assert cache.take("ana", bytes(bytearray(raw))) is None  # equal, but replaced: decode anew
    cache.put("ana", state, raw)
    assert cache.take("ana", raw) is state
    assert "ana" not in cache  # taken until it is put back


def test_overflow_evicts_the_least_recently_used_beyond_capacity():
    cache = StateCache(2)
    for key in ("a", "b", "c"):
        cache.put(key, _state())
    cache.put("a", cache.take("a"))  # a used again: b is now the oldest
    assert [key for key, _, _ in cache.overflow()] == ["b"]
    assert cache.keys() == ["c", "a"]


def test_discard_says_whether_the_key_was_cached():
    cache = StateCache(2)
    cache.put("a", _state())
    assert cache.discard("a") and not cache.discard("a")
