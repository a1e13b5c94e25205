"""A partition is read again from a message Faust fetched but never handed to the agent."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reachwatch.streams.service import rewind
from reachwatch.streams.service.rewind import Rewinds

P = ("in", 0)


def _m(*offsets: int, partition: int = 0) -> list[tuple[str, int, int]]:
    return [("in", partition, o) for o in offsets]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_hole_is_not_taken_and_the_partition_is_sought_back_to_its_first_offset() -> None:
    rw = Rewinds()
    taken, seeks = rw.admit(_m(0, 1, 2, 5, 6))
    assert taken == _m(0, 1, 2)  # nothing after the hole: it is the old reading's
    assert seeks == {P: 3}
    assert rw.rewinding() == 1


def test_the_old_reading_s_later_messages_are_dropped_until_the_new_reading_starts() -> None:
    rw = Rewinds()
    rw.admit(_m(0, 1, 2, 5))
    taken, seeks = rw.admit(_m(6, 7))  # still in Faust's buffers when it sought
    assert (taken, seeks) == ([], {})
    assert rw.stale == 2
    taken, seeks = rw.admit(_m(3, 4, 5, 6, 7, 8))  # the new reading: all of them, once
    assert (taken, seeks) == (_m(3, 4, 5, 6, 7, 8), {})
    assert rw.rewinding() == 0


def test_each_partition_s_offsets_reach_the_agent_once_in_order_whatever_faust_drops() -> None:
    """Faust drops a message; its buffers still hold the old reading's next ones; the new
    reading starts where asked. The agent sees 0..29 once each, in order."""
    rw = Rewinds()
    seen: list[int] = []
    for batch in (_m(*range(0, 10)), _m(*range(11, 15)), _m(*range(15, 20)),
                  _m(*range(10, 25)), _m(*range(26, 28)), _m(*range(28, 30)),
                  _m(*range(25, 30))):
        taken, _ = rw.admit(batch)
        seen += [o for _, _, o in taken]
    assert seen == list(range(30))


def test_a_hole_the_log_has_is_taken_at_once() -> None:
    """Transaction markers and compacted records leave offsets without records; Faust
    records them as it fetches, and they are no reason to read again."""
    asked: list[tuple[int, int]] = []

    def no_records(key: tuple[str, int], start: int, end: int) -> bool:
        asked.append((start, end))
        return (start, end) == (3, 5)

    rw = Rewinds(no_records)
    taken, seeks = rw.admit(_m(0, 1, 2, 5, 6))
    assert (taken, seeks) == (_m(0, 1, 2, 5, 6), {})
    assert asked == [(3, 5)]


def test_partitions_are_judged_apart() -> None:
    rw = Rewinds()
    taken, seeks = rw.admit(_m(0, 1, partition=0) + _m(7, 9, partition=1) + _m(2, partition=0))
    assert taken == _m(0, 1, partition=0) + _m(7, partition=1) + _m(2, partition=0)
    assert seeks == {("in", 1): 8}


def test_the_first_message_after_an_assignment_starts_the_sequence() -> None:
    rw = Rewinds()
    rw.admit(_m(0, 1, 2))
    rw.forget([P])  # revoked: its next owner reads from the commit
    taken, seeks = rw.admit(_m(40, 41))
    assert (taken, seeks) == (_m(40, 41), {})


def test_a_message_fetched_before_a_rebalance_is_left_to_the_new_generation() -> None:
    generation = [1]
    rw = Rewinds(generation=lambda: generation[0])
    rw.admit([("in", 0, 0, 1), ("in", 0, 1, 1)])
    rw.forget([P])  # revoked and assigned again: generation 2 reads from the commit (2)
    generation[0] = 2
    # A batch gathered across the rebalance still holds generation 1's 5 and 6.
    taken, seeks = rw.admit([("in", 0, 5, 1), ("in", 0, 6, 1)])
    assert (taken, seeks) == ([], {})
    taken, _ = rw.admit([("in", 0, o, 2) for o in range(2, 7)])
    assert [o for _, _, o, _ in taken] == [2, 3, 4, 5, 6]


def test_a_message_handed_out_between_the_revocation_and_the_assignment_is_not_taken() -> None:
    generation = [1]
    rw = Rewinds(generation=lambda: generation[0])
    rw.admit([("in", 0, 0, 1), ("in", 0, 1, 1)])
    rw.forget([P])  # revoked; the generation changes only with the next assignment
    taken, _ = rw.admit([("in", 0, 5, 1)])
    assert taken == []
    generation[0] = 2
    taken, _ = rw.admit([("in", 0, o, 2) for o in range(2, 6)])
    assert [o for _, _, o, _ in taken] == [2, 3, 4, 5]


def test_a_message_read_a_second_time_is_not_taken_twice() -> None:
    rw = Rewinds()
    rw.admit(_m(0, 1, 2, 3))
    taken, seeks = rw.admit(_m(1, 2, 3, 4))  # Faust's own seek back to the commit
    assert (taken, seeks) == (_m(4), {})
    assert rw.again == 3


def test_a_partition_quiet_short_of_its_end_is_read_again_after_its_last_message() -> None:
    clock = Clock()
    rw = Rewinds(clock=clock)
    rw.admit(_m(0, 1, 2))  # 3 was dropped, and nothing came after it
    clock.now = rewind.QUIET_S - 0.1
    assert rw.due(lambda key: 4) == {}  # not quiet for long yet
    clock.now = rewind.QUIET_S
    assert rw.due(lambda key: 3) == {}  # read to the end: quiet, not short
    assert rw.due(lambda key: 4) == {P: 3}
    taken, _ = rw.admit(_m(3, 4))  # whichever reading comes first
    assert taken == _m(3, 4)
    taken, _ = rw.admit(_m(3, 4, 5))  # and the other one
    assert taken == _m(5)


def test_a_paused_partition_s_quiet_time_counts_from_its_resumption() -> None:
    """Paused long by the alignment (history catch-up), a partition is not quiet the
    moment it is resumed: Faust has not fetched it again yet."""
    clock = Clock()
    rw = Rewinds(clock=clock)
    rw.admit(_m(0, 1, 2))
    clock.now = 10 * rewind.QUIET_S
    assert rw.due(lambda key: 40, held={P}) == {}  # paused all along
    clock.now += 1.0
    assert rw.due(lambda key: 40) == {}  # resumed: not quiet yet
    clock.now += rewind.QUIET_S
    assert rw.due(lambda key: 40) == {P: 3}  # quiet since its resumption


def test_time_the_agent_spends_in_its_steps_is_not_quiet_time() -> None:
    """A backlogged agent's next messages wait in Faust's buffer while it works: that is
    not a partition gone quiet (in a 300k-read fill every internal partition was read
    again every few minutes and the repeated envelopes left reads judged late)."""
    clock = Clock()
    rw = Rewinds(clock=clock)
    rw.admit(_m(0, 1, 2))
    with rw.step():  # one long step, well past the quiet time
        clock.now = 3 * rewind.QUIET_S
        assert rw.due(lambda key: 40) == {}  # asked by the timer while the step runs
    clock.now += rewind.QUIET_S - 1.0
    assert rw.due(lambda key: 40) == {}  # waiting since the step: not long enough
    clock.now += 1.0
    assert rw.due(lambda key: 40) == {P: 3}  # waited QUIET_S for 3 with nothing busy


def test_a_rewind_that_sees_nothing_seeks_again(caplog) -> None:
    clock = Clock()
    rw = Rewinds(clock=clock)
    rw.admit(_m(0, 1, 4))
    assert rw.due() == {}
    clock.now = rewind.RETRY_S + 0.1
    assert rw.due() == {P: 2}  # a fetched batch handed out after the seek undid it
    assert rw.due() == {}  # not again at once


def test_a_hole_every_reading_shows_is_the_log_s() -> None:
    """Where a seek lands Faust records no gap: a transaction marker there looks like a
    drop until readings agree."""
    lost: list[tuple[str, int]] = []
    rw = Rewinds(on_lost=lambda topic, n: lost.append((topic, n)))
    rw.admit(_m(0, 1, 4))
    for _ in range(rewind.SAME_HOLE - 1):
        taken, seeks = rw.admit(_m(4))  # each new reading starts at 4 again
        assert (taken, seeks) == ([], {P: 2})
    taken, seeks = rw.admit(_m(4, 5))  # the third reading to agree
    assert (taken, seeks) == (_m(4, 5), {})
    assert lost == [] and rw.rewinding() == 0


def test_a_hole_that_keeps_moving_is_given_up_on_loudly(caplog) -> None:
    lost: list[tuple[str, int]] = []
    rw = Rewinds(on_lost=lambda topic, n: lost.append((topic, n)))
    rw.admit(_m(0, 1, 4))
    for i in range(rewind.MAX_SEEKS - 1):
        taken, seeks = rw.admit(_m(3 + i % 2))  # readings that skip 2, or 2 and 3
        assert (taken, seeks) == ([], {P: 2})
    with caplog.at_level(logging.ERROR):
        taken, seeks = rw.admit(_m(3 + rewind.MAX_SEEKS % 2))
    assert taken and seeks == {}
    assert len(lost) == 1
    assert "never handed over" in caplog.text


def test_a_first_message_after_the_assignment_is_judged_against_the_reading_s_start() -> None:
    rw = Rewinds(start=lambda key: 10)
    taken, seeks = rw.admit(_m(12, 13))  # Faust dropped 10 and 11
    assert (taken, seeks) == ([], {P: 10})
    taken, seeks = rw.admit(_m(10, 11, 12))
    assert (taken, seeks) == (_m(10, 11, 12), {})
    rw.forget([P])
    taken, _ = Rewinds(start=lambda key: None).admit(_m(12))  # no commit: nothing to judge
    assert taken == _m(12)


def test_a_rewind_that_never_sees_its_reading_gives_up_and_starts_afresh() -> None:
    clock = Clock()
    lost: list[tuple[str, int]] = []
    rw = Rewinds(clock=clock, on_lost=lambda topic, n: lost.append((topic, n)))
    rw.admit(_m(0, 1, 4))
    for _ in range(rewind.MAX_SEEKS):
        clock.now += rewind.RETRY_S
        rw.due()
    assert lost == [("in", 2)] and rw.rewinding() == 0
    taken, _ = rw.admit(_m(9))
    assert taken == _m(9)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_whatever_faust_drops_the_agent_sees_every_offset_once_in_order(data) -> None:
    """A model of Faust's reading: it hands out runs of offsets and drops some (never the
    first after the assignment, each once, fewer than ``MAX_SEEKS`` in all); after a seek it
    reads from there, the old reading's leftovers still buffered coming first; quiet
    partitions are checked against the end."""
    end = data.draw(st.integers(5, 60))
    clock = Clock()
    rw = Rewinds(clock=clock)
    seen: list[int] = []
    position, buffered = 0, []  # next offset the reading fetches; old reading's leftovers
    dropped_once: set[int] = set()

    def admit(batch: list[int]) -> dict:
        taken, seeks = rw.admit(_m(*batch))
        seen.extend(o for _, _, o in taken)
        return seeks

    for _ in range(2000):
        if position >= end and not buffered:
            clock.now += rewind.QUIET_S
            seeks = rw.due(lambda key: end)
            if not seeks:
                break
            position = seeks[P]
            continue
        if buffered:
            batch, buffered = buffered, []
        else:
            run = list(range(position, min(end, position + data.draw(st.integers(1, 8)))))
            position = run[-1] + 1
            # Faust drops around rebalances: not all the time, each message once at most.
            droppable = ([o for o in run if o != 0 and o not in dropped_once]
                         if len(dropped_once) < rewind.MAX_SEEKS - 1 else [])
            dropped = set(data.draw(st.lists(st.sampled_from(droppable), max_size=1))
                          if droppable else [])
            dropped_once |= dropped
            batch = [o for o in run if o not in dropped]
        cut = data.draw(st.integers(0, len(batch)))
        seeks = admit(batch[:cut])
        if seeks:
            buffered, position = batch[cut:], seeks[P]
        elif seeks := admit(batch[cut:]):
            position = seeks[P]
    assert seen == list(range(end))
if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
