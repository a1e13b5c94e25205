"""A side's table read through the decoded cache: what a batch did not change stays decoded."""

from __future__ import annotations

from reachwatch.models.sides import PRINCIPAL
from reachwatch.models.windows import EntityState, encode_state
from reachwatch.streams.service.statecache import DecodedStates

SPANS = (900.0, 3600.0, 86400.0)


def test_states_a_batch_left_unchanged_stay_decoded_and_changed_ones_are_stored():
    table = {}
    for key in ("ana", "bob"):
        state = EntityState(PRINCIPAL, SPANS, cap=10, memory_cap=10)
        table[key.encode()] = encode_state(state)
    cache = DecodedStates(capacity=8)
    states = cache.load(table, ["ana", "bob"])
    states["bob"].events = 3  # bob's reads were applied; ana's were all repeats
    cache.store(table, states, ["bob"])
    cache.put_back(table, states, ["bob"])
    again = cache.load(table, ["ana", "bob"])
    assert again["ana"] is states["ana"]  # not decoded anew
    assert again["bob"] is states["bob"] and again["bob"].events == 3


def test_put_back_keeps_the_capacity():
    table = {}
    for i in range(5):
        table[f"p{i}".encode()] = encode_state(EntityState(PRINCIPAL, SPANS, cap=10, memory_cap=10))
    cache = DecodedStates(capacity=2)
    states = cache.load(table, [f"p{i}" for i in range(5)])
    cache.put_back(table, states, [])
    assert len(cache.cache) == 2
