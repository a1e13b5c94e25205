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


def _guarded_commit(acked: list[int], committed: int | None, gaps=()) -> tuple[int | None, list]:
    """What the worker's consumer (streams/service/transport.py) commits, and what it logs."""
    from reachwatch.streams.service.transport import _Consumer

    held: list[int] = []
    tree = IntervalTree()
    for start, end in gaps:
        tree[start:end] = True
    fake = SimpleNamespace(
        _acked=defaultdict(list, {IN0: sorted(acked)}),
        _acked_index=defaultdict(set, {IN0: set(acked)}),
        _gap=defaultdict(IntervalTree, {IN0: tree}),
        _committed_offset=defaultdict(lambda: None, {IN0: committed}),
        _report_held=lambda tp, head: held.append(head),
    )
    return _Consumer._new_offset(fake, IN0), held


def test_a_message_faust_never_handed_on_holds_the_commit():
    # Offset 26 was fetched but skipped by Faust (a rebalance); 27-29 went through the agent.
    assert _faust_commit([27, 28, 29], committed=26) == 30  # Faust alone: 26 is lost
    assert _guarded_commit([27, 28, 29], committed=26) == (None, [26])
    # Read again after the seek to the commit, 26 goes through: all of it is committed.
    assert _guarded_commit([26, 27, 28, 29], committed=26) == (30, [])


def test_offsets_missing_from_the_log_do_not_hold_the_commit():
    # Faust records offsets the client saw missing (compaction, transaction markers) as gaps.
    assert _guarded_commit([28, 29], committed=26, gaps=[(26, 28)]) == (30, [])
    assert _guarded_commit([29], committed=26, gaps=[(26, 27), (27, 28)]) == (None, [28])
    # Nothing committed yet: Faust's own rule (AckOrder keeps the taken ones in order).
    assert _guarded_commit([5, 6], committed=None) == (7, [])


def test_a_log_that_starts_after_the_commit_does_not_hold_it():
    # Retention deleted 26-39: after the seek to 26 Faust reads 40 and records 27-39 missing.
    assert _guarded_commit([40, 41], committed=26, gaps=[(27, 40)]) == (42, [])
