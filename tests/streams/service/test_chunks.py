"""Input in chunks: runs of records as one Faust message each, committed, checked and
forwarded record by record (``streams/service/chunks.py``)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import orjson
from faust.types import TP
from intervaltree import IntervalTree
from support.tinyorg import history as tiny_history_events
from test_agents_batching import _worker

from reachwatch.streams.service.chunks import ChunkMessage, Record, Run, records_of
from reachwatch.streams.service.delivery import deliver_all
from reachwatch.streams.service.envelopes import decode_envelope
from reachwatch.streams.service.rewind import Rewinds
from reachwatch.streams.service.transport import _Consumer

IN0 = TP("in", 0)
OUT0 = TP("out", 0)


def _record(offset: int, value: bytes = b"{}", topic: str = "in") -> SimpleNamespace:
    """An aiokafka ConsumerRecord's fields (timestamps in milliseconds)."""
    return SimpleNamespace(topic=topic, partition=0, offset=offset, key=b"k%d" % offset,
                           value=value, timestamp=1_000 * offset + 500, timestamp_type=0)


def _consumer(chunk: int = 3) -> _Consumer:
    consumer = object.__new__(_Consumer)
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._gap = defaultdict(IntervalTree)
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._acknowledged = {}
    consumer._fetched_last = {}
    consumer._holes = {}
    consumer._starts = {}
    consumer._chunked = frozenset({"in"})
    consumer._chunk = chunk
    consumer.app = SimpleNamespace(consumer_generation_id=7)
    consumer.guard(["in", "out"])
    return consumer


def _chunk(offsets: range | list[int], values: dict[int, bytes] | None = None) -> ChunkMessage:
    values = values or {}
    run = Run(_record(o, values.get(o, b"{}")) for o in offsets)
    return ChunkMessage(IN0, run, generation_id=7)


def test_a_chunked_topic_s_fetched_records_become_runs_and_others_stay_records() -> None:
    consumer = _consumer(chunk=3)
    records = {IN0: [_record(o) for o in range(10, 17)],
               OUT0: [_record(o, topic="out") for o in range(4)]}
    asyncio.run(consumer._cut_runs(records))
    assert [[r.offset for r in run] for run in records[IN0]] == [[10, 11, 12], [13, 14, 15],
                                                                 [16]]
    assert [r.offset for r in records[OUT0]] == [0, 1, 2, 3]
    message = consumer._to_message(IN0, records[IN0][1])
    assert isinstance(message, ChunkMessage)
    assert (message.offset, message.first_offset, message.generation_id) == (15, 13, 7)
    assert message.records == [Record("in", 0, o, b"k%d" % o, b"{}", o + 0.5)
                               for o in (13, 14, 15)]


def test_a_chunk_is_committed_after_its_last_offset_once_an_agent_acknowledged_it() -> None:
    consumer = _consumer()
    # Faust's own record: only the runs' last offsets were acknowledged, and its gap record
    # holds a first reading cut at other bounds and never handed over (a rewind): on its
    # own it would commit nothing (a "gap" at the head) or past what the agents took.
    consumer._acked[IN0] = [2, 5]
    consumer._acked_index[IN0] = {2, 5}
    consumer._gap[IN0].addi(3, 9)
    assert consumer._new_offset(IN0) is None  # nothing acknowledged by an agent yet
    consumer.acknowledged("in", 0, 2)
    consumer.acknowledged("in", 0, 5)
    assert consumer._new_offset(IN0) == 6
    assert consumer._acked[IN0] == [] and not consumer._gap.get(IN0)  # emptied, not grown
    consumer._committed_offset[IN0] = 6
    assert consumer._new_offset(IN0) is None  # nothing new


def test_a_lone_first_record_at_offset_zero_is_committed() -> None:
    # Faust's gap logic takes offset 0 for unset; the chunked commit does not use it.
    consumer = _consumer()
    consumer._acked[IN0] = [0]
    consumer.acknowledged("in", 0, 0)
    assert consumer._new_offset(IN0) == 1
    consumer._committed_offset[IN0] = 1
    consumer.acknowledged("in", 0, 4)  # the next chunk: 1-4
    assert consumer._new_offset(IN0) == 5


def test_rewinds_judge_a_chunk_by_its_first_offset_and_trim_what_was_taken() -> None:
    rewinds = Rewinds(start=lambda key: 0, clock=lambda: 0.0)
    first = _chunk(range(0, 4))
    after_hole = _chunk(range(6, 9))
    taken, seeks = rewinds.admit([first, after_hole])
    assert taken == [first] and seeks == {("in", 0): 4}  # 4-5 never handed over
    # The new reading, cut at other bounds: 2-5 repeats 2-3 (already taken), then 6-8.
    overlap, rest = _chunk(range(2, 6)), _chunk(range(6, 9))
    taken, seeks = rewinds.admit([overlap, rest])
    assert taken == [overlap, rest] and seeks == {}
    assert [r.offset for r in overlap.records] == [4, 5]
    again = _chunk(range(5, 9))  # wholly taken already: dropped
    assert rewinds.admit([again]) == ([], {})


def test_a_chunk_that_starts_after_the_reading_s_start_is_a_hole() -> None:
    rewinds = Rewinds(start=lambda key: 10, clock=lambda: 0.0)
    taken, seeks = rewinds.admit([_chunk(range(12, 15))])
    assert taken == [] and seeks == {("in", 0): 10}


def _events(count: int) -> list[bytes]:
    return [orjson.dumps(e.to_json()) for e in tiny_history_events()[:count]]


def test_every_record_of_a_chunk_is_forwarded_as_a_message_of_its_own(tiny_model) -> None:
    worker = _worker(tiny_model, partitions=2)
    values = dict(enumerate(_events(9)))
    values[4] = b"{broken"
    chunk = _chunk(range(9), values)
    chunk.topic = "access-events"  # the worker's input topic (for its metrics)

    async def step() -> list[Any]:
        dead_letters = worker.forwarder.take([chunk])
        out = worker.forwarder.release()
        await deliver_all(dead_letters, worker.metrics, "dead_letter")
        await deliver_all(out.envelopes, worker.metrics, "envelope")
        return out.done

    done = asyncio.run(step())
    assert done == [chunk]  # acknowledged as one message, once all its events are out
    assert worker.forwarder.messages_in == 9
    sent = [item for s in worker.topics.by_resource.sent for item in decode_envelope(s["value"])]
    assert sorted(item.offset for item in sent) == [0, 1, 2, 3, 5, 6, 7, 8]
    (letter,) = worker.topics.dead_letters.sent
    document = orjson.loads(letter["value"])
    assert document["source"] == {"topic": "in", "partition": 0, "offset": 4, "timestamp": 4.5}
    assert document["value_text"] == "{broken" and document["key"] is not None


def test_a_chunk_waits_until_its_last_event_passes_the_frontier(tiny_model) -> None:
    worker = _worker(tiny_model, partitions=2)
    worker.forwarder.sources.assign({"access-events:0", "access-events:1"})
    chunk = _chunk(range(5), dict(enumerate(_events(5))))
    chunk.topic = "access-events"
    worker.forwarder.take([chunk])
    # The other partition has said nothing yet: the frontier holds every event back.
    assert worker.forwarder.release().done == []
    assert records_of(chunk) == chunk.records


def test_an_ingest_step_takes_about_batch_size_records_in_chunks(tiny_model) -> None:
    assert _worker(tiny_model, batch_size=2000, input_chunk=500).ingest_take == 4
    assert _worker(tiny_model, batch_size=2000, input_chunk=1).ingest_take == 2000
    assert _worker(tiny_model, batch_size=100, input_chunk=500).ingest_take == 1


def test_no_part_of_a_split_envelope_reports_what_a_later_part_still_holds(tiny_model) -> None:
    # A source that was idle wakes with reads far behind the frontier already reported
    # (with chunked input, a whole chunk of them): they all leave in one step, in event-time
    # order, split in parts of MAX_ENVELOPE_EVENTS. A scorer takes each part's reported
    # frontier as "every read of the source up to this offset and this time was sent"
    # (scoring._record_positions), so no later part may hold a read that an earlier part's
    # report covers, or the scorer skips it as a repeat.
    from reachwatch.models.records import AccessEvent
    from reachwatch.streams.service.alignment import IDLE
    from reachwatch.streams.service.envelopes import MAX_ENVELOPE_EVENTS, Forwarded, read_envelope

    worker = _worker(tiny_model, partitions=1)
    source = "access-events:0"
    worker.forwarder.reported = {source: IDLE}
    count = 2 * MAX_ENVELOPE_EVENTS + 300
    # Event time rising while the offset falls: an input partition is not sorted in time.
    items = [Forwarded(AccessEvent(1000.0 + i, "eng-1", "eng/ds1"), "access-events", 0.0, 0,
                       count - i) for i in range(count)]
    sends = worker.forwarder._envelopes(items, {source: 1000.0 + count}, broadcast=False)
    asyncio.run(deliver_all(sends, worker.metrics, "envelope"))
    parts = [read_envelope(sent["value"]).items
             for sent in worker.topics.by_principal.sent]
    assert [len(p) for p in parts] == [MAX_ENVELOPE_EVENTS, MAX_ENVELOPE_EVENTS, 300]
    for index, part in enumerate(parts):
        for later in (h for rest in parts[index + 1:] for h in rest):
            claimed = max(e.frontier for e in part if e.offset >= later.offset)
            assert later.event.ts > claimed
