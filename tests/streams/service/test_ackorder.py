"""Acknowledgements leave in offset order, so Faust's commit never passes an unfinished message."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from reachwatch.streams.service.ackorder import AckOrder

IN0 = TP("in", 0)


class Msg(SimpleNamespace):
    pass


def _position(holder):
    return holder.topic, holder.partition


def _faust_commit(acked: list[int], committed: int | None) -> int | None:
    """What Faust 0.15.3's own ``_new_offset`` would commit for these acknowledged offsets."""
    fake = SimpleNamespace(
        _acked=defaultdict(list, {IN0: sorted(acked)}),
        _acked_index=defaultdict(set, {IN0: set(acked)}),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None, {IN0: committed}),
    )
    return Consumer._new_offset(fake, IN0)


def test_faust_alone_commits_past_an_unfinished_head_message():
    # Message 5 is held by the alignment, 6 and 7 went through: Faust commits 8.
    assert _faust_commit([6, 7], committed=5) == 8
    # And with nothing committed yet, past a held offset 0.
    assert _faust_commit([1, 2], committed=None) == 3


def test_finished_messages_wait_for_the_earlier_ones_of_their_partition():
    order = AckOrder()
    held, *later = msgs = [Msg(topic="in", partition=0, offset=o) for o in (5, 6, 7)]
    other = Msg(topic="in", partition=1, offset=0)
    order.taken([*msgs, other], _position)

    acked = [m.offset for m in order.finished(later, _position)]
    assert acked == []
    assert order.waiting() == 2
    assert _faust_commit(acked, committed=5) is None  # nothing to commit: 5 is unfinished
    # Another partition is not held back by this one.
    assert order.finished([other], _position) == [other]

    acked = [m.offset for m in order.finished([held], _position)]
    assert acked == [5, 6, 7]
    assert _faust_commit(acked, committed=5) == 8
    assert order.waiting() == 0


def test_a_revoked_partition_is_forgotten_with_what_waited_in_it():
    order = AckOrder()
    first, second = Msg(topic="in", partition=0, offset=0), Msg(topic="in", partition=0, offset=1)
    order.taken([first, second], _position)
    order.finished([second], _position)
    order.forget({("in", 0)})
    assert order.waiting() == 0
    # Read again after the rebalance: new holders, acknowledged in their own order.
    again = Msg(topic="in", partition=0, offset=0)
    order.taken([again], _position)
    assert order.finished([again], _position) == [again]
