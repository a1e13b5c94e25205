"""The input positions a state has applied: claims that never cover what was not applied."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from reachwatch.models.progress import KEPT_CLAIMS, AppliedInput

claims = st.lists(
    st.tuples(st.sampled_from(["in:0", "in:1"]), st.integers(0, 50), st.integers(0, 50)),
    max_size=30,
)
probes = st.lists(
    st.tuples(st.sampled_from(["in:0", "in:1"]), st.integers(-1, 55), st.integers(0, 55)),
    max_size=30,
)


def _union(made: list[tuple[str, int, int]], source: str, offset: int, ts: float) -> bool:
    return offset >= 0 and any(
        s == source and offset <= o and ts <= f for s, o, f in made
    )


def _maximal(made: list[tuple[str, int, int]], source: str) -> int:
    """How many of a source's claims no other contains."""
    mine = {(o, f) for s, o, f in made if s == source}
    return sum(
        1 for o, f in mine if not any((o2, f2) != (o, f) and o2 >= o and f2 >= f for o2, f2 in mine)
    )


@example(  # found by hypothesis in a CI run: five at once, then four after a wider one
    made=[("in:0", 0, 4), ("in:0", 1, 3), ("in:0", 2, 2), ("in:0", 3, 1), ("in:0", 4, 0),
          ("in:0", 2, 3)],
    probe=[("in:0", 0, 4)],
)
@given(claims, probes)
def test_an_event_is_covered_only_by_a_claim_made_and_always_while_few(made, probe):
    applied = AppliedInput()
    for source, offset, frontier in made:
        applied.advance(source, offset, float(frontier))
    for source, offset, ts in probe:
        covered = applied.covers(source, offset, float(ts))
        union = _union(made, source, offset, ts)
        assert not covered or union  # never an event no claim was made for
        # Exact while the claims never outnumbered what is kept: not only at the end (a
        # claim dropped when there were five is not brought back by a later, wider one).
        if all(_maximal(made[:end], source) <= KEPT_CLAIMS for end in range(len(made) + 1)):
            assert covered == union
    for source in ("in:0", "in:1"):
        assert len(applied.claims.get(source, [])) <= KEPT_CLAIMS


def test_the_common_case_keeps_one_claim_per_source_growing_in_place():
    applied = AppliedInput()
    for offset in range(100):
        applied.advance("in:0", offset, 1000.0 + offset)
    assert applied.claims == {"in:0": [[99, 1099.0]]}


def test_a_restart_keeps_the_old_claim_until_the_new_one_contains_it():
    applied = AppliedInput()
    applied.advance("in:0", 40, 2000.0)
    applied.advance("in:0", 41, 1500.0)  # a new reading's frontier starts lower
    assert applied.covers("in:0", 35, 1900.0) and applied.covers("in:0", 41, 1500.0)
    assert not applied.covers("in:0", 41, 1900.0)
    applied.advance("in:0", 60, 2100.0)
    assert applied.claims["in:0"] == [[60, 2100.0]]


def test_claims_survive_their_plain_form():
    applied = AppliedInput()
    applied.advance("in:0", 4, 10.0)
    applied.advance("in:1", 7, 12.5)
    again = AppliedInput.from_obj(applied.to_obj())
    assert again.claims == applied.claims
