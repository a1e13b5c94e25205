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


def test_readings_start_where_the_broker_says_before_faust_hands_a_message(
        monkeypatch) -> None:
    import asyncio

    from faust.transport.drivers import aiokafka as driver

    seen_by_faust: list[dict] = []

    async def faust_assigns(self, assigned, generation_id=0):  # activates the partitions
        seen_by_faust.append(dict(self._starts))

    async def broker(self, tps):  # partition 0 committed at 40; 1 none, its log starts at 7
        asked.append(sorted(tps))
        return {tp: 40 if tp.partition == 0 else 7 for tp in tps}

    asked: list[list[TP]] = []
    monkeypatch.setattr(driver.Consumer, "on_partitions_assigned", faust_assigns)
    monkeypatch.setattr(_Consumer, "start_offsets", broker)
    consumer = _consumer([], committed=None)
    asyncio.run(consumer.on_partitions_assigned({TP("in", 0), TP("in", 1), TP("other", 0)}))
    # Known before Faust could hand the first message; only guarded partitions asked.
    assert seen_by_faust == [{("in", 0): 40, ("in", 1): 7}]
    assert asked == [[TP("in", 0), TP("in", 1)]]
    assert consumer.starts_at(("in", 1)) == 7


def test_without_the_broker_faust_s_seek_to_the_commits_gives_the_starts(
        monkeypatch, caplog) -> None:
    import asyncio

    from faust.transport.drivers import aiokafka as driver

    async def faust_assigns(self, assigned, generation_id=0):
        pass

    async def broker_away(self, tps):
        raise ConnectionError("broker away")

    async def committed(self):  # Faust's seek of every assigned partition to its commit
        return {TP("in", 0): 40, TP("in", 1): None}

    monkeypatch.setattr(driver.Consumer, "on_partitions_assigned", faust_assigns)
    monkeypatch.setattr(driver.Consumer, "seek_to_committed", committed)
    monkeypatch.setattr(_Consumer, "start_offsets", broker_away)
    consumer = _consumer([], committed=None)
    asyncio.run(consumer.on_partitions_assigned({TP("in", 0), TP("in", 1)}))
    assert "start offsets unavailable" in caplog.text
    assert consumer.starts_at(("in", 0)) is None
    asyncio.run(consumer.seek_to_committed())
    assert consumer.starts_at(("in", 0)) == 40
    assert consumer.starts_at(("in", 1)) is None  # nothing to judge against: taken as is


def test_the_guarded_topics_are_known_before_the_first_assignment() -> None:
    # A new group's first seek to the commits (where readings start, ``seek_to_committed``)
    # came before the app's assignment signal: guarded only then, the first worker of a
    # deployment took whatever message Faust handed first as its start.
    import faust

    from reachwatch.streams.service.transport import use_short_fetch_wait

    app = faust.App("guard-test", broker="kafka://127.0.0.1:1")
    use_short_fetch_wait(app, ["in", "by-principal"])
    assert app.consumer._guarded == {"in", "by-principal"}
