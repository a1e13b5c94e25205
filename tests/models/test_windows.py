from __future__ import annotations

import random
from dataclasses import replace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.tinyorg import START, datasets, office_day

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import AccessEvent
from reachwatch.models.sides import PRINCIPAL, RESOURCE, SIDES, Counts, PrincipalAttrs
from reachwatch.models.sketch import SLICES
from reachwatch.models.windows import (
    CountWindow,
    DecayedHistogram,
    DistinctWindow,
    EntityState,
    Memory,
    bucket_of,
    bucket_value,
    decode_state,
    encode_state,
    is_idle,
    state_watermark,
)


def test_bucket_edges_are_monotonic_and_cover_the_value():
    values = [0, 0.5, 1, 2, 3, 7, 100, 12345]
    buckets = [bucket_of(v) for v in values]
    assert buckets == sorted(buckets)
    for v in values[1:]:
        assert bucket_value(bucket_of(v)) >= v


def test_histogram_quantile_tracks_the_high_end():
    hist = DecayedHistogram()
    for _ in range(99):
        hist.add(2, day=0)
    hist.add(50, day=0)
    assert hist.quantile(0.5) < 3
    assert hist.quantile(0.999) >= 50


def test_histogram_forgets_old_days():
    hist = DecayedHistogram(half_life_days=1.0)
    hist.add(100, day=0)
    for _ in range(10):
        hist.add(1, day=20)
    # 20 half-lives later the old high is negligible weight.
    assert hist.quantile(0.99) < 2


def test_distinct_window_counts_distinct_keys_and_expires_them():
    w = DistinctWindow(span=60.0, n_attrs=1)
    assert w.add(0.0, "a", "g1", (1.0,))
    assert not w.add(10.0, "a", "g1", (1.0,))
    assert w.add(20.0, "b", "g2", (2.0,))
    assert (w.distinct, w.distinct_categories, w.sums) == (2, 2, [3.0])
    w.expire(75.0)  # "a" last read at 10, "b" at 20: only "b" left
    assert (w.distinct, w.sums) == (1, [2.0])
    w.expire(200.0)
    assert (w.distinct, w.distinct_categories, w.sums) == (0, 0, [0.0])


def test_distinct_window_keeps_a_key_that_is_read_again():
    w = DistinctWindow(span=60.0, n_attrs=1)
    for t in range(0, 300, 5):  # read every 5 s for 5 minutes
        w.add(float(t), "a", "g", (1.0,))
        w.expire(float(t))
    assert w.distinct == 1


def test_distinct_window_cap_bounds_memory_but_still_counts():
    w = DistinctWindow(span=3600.0, n_attrs=1, cap=100)
    for i in range(1000):
        w.add(float(i), f"k{i}", "g", (1.0,))
    assert len(w.keys) == 100
    assert w.distinct == pytest.approx(1000, rel=0.05)  # 100 exact + ~900 estimated
    assert w.sums[0] == pytest.approx(1000.0, rel=0.05)


def test_overflow_keys_read_again_count_once():
    w = DistinctWindow(span=3600.0, n_attrs=1, cap=100)
    for _ in range(5):  # the same 3,000 keys, five times over
        for i in range(3000):
            w.add(float(i), f"k{i}", "g", (1.0,))
    assert w.distinct == pytest.approx(3000, rel=0.05)
    assert w.sums[0] == pytest.approx(3000.0, rel=0.05)


def test_a_million_distinct_reads_stay_bounded():
    span = 3600.0
    w = DistinctWindow(span=span, n_attrs=2, cap=500)
    for i in range(1_000_000):  # ~278 new keys per second of event time for an hour
        ts = i * span / 1_000_000
        w.add(ts, f"object/{i}", f"team{i % 7}", (1.0, float(i % 2)))
        w.expire(ts)
    assert len(w.keys) == 500
    assert w.sketch is not None and len(w.sketch.slices) <= SLICES + 1
    assert w.distinct == pytest.approx(1_000_000, rel=0.05)
    assert w.sums[1] == pytest.approx(500_000, rel=0.05)  # half of the keys carry 1.0
    assert w.distinct_categories == 7


def test_overflow_leaves_the_window_with_time():
    w = DistinctWindow(span=3600.0, n_attrs=1, cap=10)
    for i in range(1000):
        w.add(float(i), f"k{i}", "g", (1.0,))
    assert w.distinct > 900
    w.expire(10_000.0)
    w.add(10_000.0, "later", "g", (1.0,))
    assert w.distinct == 1 and w.sketch is None
    assert w.sums[0] == pytest.approx(1.0)


def test_overflowing_window_survives_serialisation():
    w = DistinctWindow(span=3600.0, n_attrs=1, cap=50)
    for i in range(5000):
        w.add(float(i % 3600), f"k{i}", f"g{i % 3}", (0.5,))
    w.expire(3599.0)
    obj = orjson.loads(orjson.dumps(w.to_obj()))
    back = DistinctWindow.from_obj(obj, span=3600.0, n_attrs=1, cap=50)
    assert back.distinct == pytest.approx(w.distinct, rel=0.02)
    assert back.sums[0] == pytest.approx(w.sums[0], rel=0.02)
    assert back.distinct_categories == w.distinct_categories == 3
    for i in range(5000):  # the same keys again: nothing new
        back.add(3599.0, f"k{i}", "g0", (0.5,))
    assert back.distinct == pytest.approx(5000, rel=0.05)


def test_count_window_sums_and_expires():
    w = CountWindow(span=300.0)
    w.add(0.0, (1.0, 10.0, 100.0, 0.0))
    w.add(100.0, (1.0, 5.0, 50.0, 1.0))
    assert w.sums == [2.0, 15.0, 150.0, 1.0]
    w.expire(350.0)
    assert w.sums == [1.0, 5.0, 50.0, 1.0]


def test_memory_is_capped_and_remembers_recent_keys():
    m = Memory(cap=3)
    for key in "abcd":
        assert not m.check_and_add(key, day=0)
    assert len(m) == 3
    assert m.check_and_add("d", day=1)
    assert not m.check_and_add("a", day=1)  # evicted as the oldest


SPANS = (900.0, 3600.0, 86400.0)


def test_state_roundtrips_through_bytes():
    state = EntityState(PRINCIPAL, SPANS, cap=100, memory_cap=100)
    state.windows[1].add(10.0, "r1", "g", PrincipalAttrs(*(1.0,) * PRINCIPAL.n_attrs))
    state.counts.add(10.0, Counts(reads=1.0, records=2.0, bytes=3.0, denied=0.0))
    state.memory.check_and_add("r1", 0)
    state.roll_time(10.0)
    state.track({"weighted_1h": 1.0, "outside_weighted_1h": 2.0, "groups_1h": 3.0,
                 "records_1h": 2.0, "outside_weighted_24h": 4.0, "heavy_24h": 0.0,
                 "outside_new_sensitive_teams_24h": 1.0})
    state.roll_time(10.0 + 3600.0)
    assert state.pending  # a finished hour waits one longest window before it counts
    state.roll_time(10.0 + 3600.0 + 86400.0)
    restored = decode_state(encode_state(state))
    assert restored.side is PRINCIPAL
    assert encode_state(restored) == encode_state(state)
    assert restored.windows[1].distinct == 1
    assert restored.baseline("weighted_1h", 0.99)[1] == 1.0
    assert restored.baseline("outside_weighted_1h", 0.99)[0] >= 2.0


def test_a_state_decodes_as_its_own_side():
    state = EntityState(RESOURCE, SPANS, cap=100, memory_cap=100)
    state.windows[0].add(5.0, "ana", "hr", (1.0, 0.0, 0.0, 1.0))
    restored = decode_state(encode_state(state))
    assert restored.side is RESOURCE
    assert restored.windows[0].sums == [1.0, 0.0, 0.0, 1.0]


def test_encoded_state_is_compressed():
    state = EntityState(PRINCIPAL, SPANS, cap=100, memory_cap=100)
    for i in range(50):
        state.windows[2].add(float(i), f"dataset-{i}", "team", (1.0,) * PRINCIPAL.n_attrs)
    encoded = encode_state(state)
    plain = orjson.dumps([state.spans, state.cap, state.memory.cap, state.to_obj()])
    assert len(encoded) < len(plain) / 2


def test_bytes_of_another_format_are_refused():
    state = EntityState(PRINCIPAL, SPANS, cap=100, memory_cap=100)
    plain = orjson.dumps([state.spans, state.cap, state.memory.cap, state.to_obj()])
    with pytest.raises(ValueError, match="unknown header"):
        decode_state(plain)
    with pytest.raises(ValueError, match="unknown header"):
        state_watermark(plain)


def test_watermark_reads_from_the_header():
    state = EntityState(PRINCIPAL, SPANS, cap=100, memory_cap=100)
    state.watermark = 1_772_409_600.25
    assert state_watermark(encode_state(state)) == state.watermark


def test_idle_rule_is_strictly_older_than_the_ttl():
    now = 100 * 86400.0
    assert is_idle(now - 35 * 86400.0 - 1, now, ttl_days=35)
    assert not is_idle(now - 35 * 86400.0, now, ttl_days=35)


def test_a_window_read_back_holds_its_sums_as_they_were_not_summed_again():
    w = DistinctWindow(span=60.0, n_attrs=1)
    for i, value in enumerate((0.1, 0.2, 0.3)):
        w.add(float(i), f"k{i}", "g", (value,))
    w.expire(61.0)  # k0 leaves: 0.1 + 0.2 + 0.3 - 0.1 is not 0.2 + 0.3 in floats
    assert w.sums[0] != 0.2 + 0.3
    back = DistinctWindow.from_obj(orjson.loads(orjson.dumps(w.to_obj())), 60.0, 1, 5000)
    assert back.sums == w.sums


def test_an_overflowing_window_read_back_refreshes_its_sketch_when_the_original_would():
    w = DistinctWindow(span=3600.0, n_attrs=1, cap=50)
    for i in range(3000):
        w.add(float(i % 3600), f"k{i}", "g", (0.5 + (i % 7) / 10,))
    back = DistinctWindow.from_obj(orjson.loads(orjson.dumps(w.to_obj())), 3600.0, 1, 50)
    for i in range(3000, 3400):
        for window in (w, back):
            window.add(float(i % 3600), f"k{i}", "g", (0.3,))
        assert (back.distinct, back.sums) == (w.distinct, w.sums)


def _roundtrip_all(states: dict) -> None:
    for key, state in states.items():
        states[key] = decode_state(encode_state(state))


@pytest.fixture(scope="module")
def small_caps(tiny_model):
    """The tiny model with caps small enough for the sketch and the novelty memory's cap."""
    config = replace(tiny_model.config, window_cap=12, memory_cap=16)
    return replace(tiny_model, config=config)


def _replay(model, events, roundtrip: bool) -> tuple[list, list, list]:
    """(vectors, scores, alerts) of both sides, batch by batch; with ``roundtrip`` every
    state goes through ``encode_state``/``decode_state`` after every batch."""
    pipeline = Pipeline(model)
    vectors: list = []
    view = pipeline.features.view

    def recorded(event, state):
        built = view(event, state)
        if built is not None:
            vectors.append(tuple(built.vector))
        return built

    pipeline.features.view = recorded
    states: dict = {side.name: {} for side in SIDES}
    scores: list = []
    alerts: list = []
    for start in range(0, len(events), 300):
        for side in SIDES:
            result = pipeline.observe(side, events[start : start + 300], states[side.name])
            scores += result.scores
            alerts += [a.to_json() for a in result.alerts]
            if roundtrip:
                _roundtrip_all(states[side.name])
    assert any(w.sketch is not None for s in states["principal"].values() for w in s.windows)
    assert any(len(s.memory) == 16 for s in states["principal"].values())
    return vectors, scores, alerts


def test_a_round_trip_after_every_batch_changes_no_vector_score_or_alert(small_caps,
                                                                          tiny_history):
    day = START + 14 * 86400
    targets = [d for team in ("hr", "finance") for d in datasets(team) if d[1] != "internal"]
    insider = [AccessEvent(ts=day + 10.5 * 3600 + i * 40, principal="eng-3", resource=r,
                           principal_group="eng", resource_group=r.split("/")[0],
                           sensitivity=s) for i, (r, s) in enumerate(targets)]
    events = tiny_history + sorted(office_day(random.Random(99), 14) + insider,
                                   key=lambda e: e.ts)
    plain = _replay(small_caps, events, roundtrip=False)
    tripped = _replay(small_caps, events, roundtrip=True)
    assert plain[2]  # something alerts
    assert tripped[0] == plain[0]
    assert tripped[1] == plain[1]
    assert tripped[2] == plain[2]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=8))
def test_any_finite_window_sum_reads_back_bit_for_bit(values):
    state = EntityState(RESOURCE, SPANS, cap=100, memory_cap=100)
    state.windows[0].sums[:] = (values * 4)[:4]
    state.counts.sums[:] = (values * 4)[:4]
    back = decode_state(encode_state(state))
    assert back.windows[0].sums == state.windows[0].sums
    assert back.counts.sums == state.counts.sums
