"""The worker's consumer commits no further than its agents acknowledged."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.types import TP
from intervaltree import IntervalTree

from reachwatch.streams.service.transport import _Consumer

IN0 = TP("in", 0)


def _consumer(faust_acked: list[int], committed: int | None, gaps=()) -> _Consumer:
    """A consumer in the state Faust's commit reads (no broker, no app)."""
    consumer = object.__new__(_Consumer)
    tree = IntervalTree()
    for start, end in gaps:
        tree[start:end] = True
    consumer._acked = defaultdict(list, {IN0: sorted(faust_acked)})
    consumer._acked_index = defaultdict(set, {IN0: set(faust_acked)})
    consumer._gap = defaultdict(IntervalTree, {IN0: tree})
    consumer._committed_offset = defaultdict(lambda: None, {IN0: committed})
    consumer._acknowledged = {}
    consumer._fetched_last = {}
    consumer._holes = {}
    consumer._starts = {}
    consumer.guard(["in"])
    return consumer


def test_a_message_faust_skipped_and_acknowledged_is_not_committed_past() -> None:
    # The stream skipped 26 around a rebalance and acknowledged it; the agent took 22-25.
    consumer = _consumer([22, 23, 24, 25, 26], committed=22)
    for offset in (22, 23, 24, 25):
        consumer.acknowledged("in", 0, offset)
    assert consumer._new_offset(IN0) == 26  # Faust alone would commit 27
    # Read again (``rewind``), 26 goes through the agent: then it is committed.
    consumer._committed_offset[IN0] = 26
    consumer._acked[IN0].extend([26, 27])
    consumer._acked_index[IN0].update([26, 27])
    consumer.acknowledged("in", 0, 27)
    assert consumer._new_offset(IN0) == 28


def test_nothing_is_committed_before_an_agent_acknowledged_since_the_assignment() -> None:
    consumer = _consumer([40, 41], committed=40)  # skipped and acknowledged by the stream
    assert consumer._new_offset(IN0) is None


def test_what_the_agents_acknowledged_is_committed_as_faust_would() -> None:
    consumer = _consumer([5, 6, 7, 9], committed=5, gaps=[(8, 9)])  # 8: a transaction marker
    consumer.acknowledged("in", 0, 9)
    assert consumer._new_offset(IN0) == 10


@pytest.mark.parametrize("committed", [None, 3])
def test_unguarded_topics_commit_as_faust_does(committed) -> None:
    consumer = _consumer([3, 4], committed=committed)
    consumer.guard([])
    assert consumer._new_offset(IN0) == 5


def test_a_hole_is_the_log_s_only_where_the_fetched_records_skip_offsets() -> None:
    consumer = _consumer([], committed=None, gaps=[(231, 328)])  # Faust's gap: its own drops
    assert not consumer.no_records(("in", 0), 231, 328)
    record = lambda o: SimpleNamespace(offset=o)  # noqa: E731
    consumer._note_holes({IN0: [record(o) for o in (5, 6, 9, 10)]})  # 7-8: a marker
    consumer._note_holes({IN0: [record(12)]})  # 11: across two fetches
    assert consumer.no_records(("in", 0), 7, 9)
    assert consumer.no_records(("in", 0), 11, 12)
    assert not consumer.no_records(("in", 0), 7, 12)  # 9 and 10 are records
    consumer._note_holes({IN0: [record(8), record(9)]})  # read again after a seek back
    assert consumer.no_records(("in", 0), 7, 8)


def test_a_reading_starts_where_faust_sought_to_the_commit(monkeypatch) -> None:
    import asyncio

    from faust.transport.drivers import aiokafka as driver

    async def committed(self):  # Faust's seek of every assigned partition to its commit
        return {TP("in", 0): 40, TP("in", 1): None}

    monkeypatch.setattr(driver.Consumer, "seek_to_committed", committed)
    consumer = _consumer([], committed=None)
    asyncio.run(consumer.seek_to_committed())
    assert consumer.starts_at(("in", 0)) == 40  # where the agents' reading is judged from
    assert consumer.starts_at(("in", 1)) is None  # no commit: nothing to judge against
