from __future__ import annotations

import dataclasses

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import AccessEvent
from reachwatch.streams.service.envelopes import (
    Forwarded,
    decode_envelope,
    encode_envelope,
    read_envelope,
)
from reachwatch.streams.service.topics import partition_of


def _events() -> list[Forwarded]:
    full = AccessEvent(ts=1767600000.25, principal="ana", resource="s3://hr/pay.csv",
                       principal_type="service", principal_group="hr", resource_group="fin",
                       sensitivity="restricted", action="read", records=12, bytes=3400,
                       outcome="denied", source="cloudtrail")
    bare = AccessEvent(ts=1767600001.0, principal="bo", resource="db.sales")
    return [Forwarded(full, "cloudtrail-in", 10.5), Forwarded(bare, "native-in", 11.0),
            Forwarded(bare, "cloudtrail-in", 11.0)]


def test_envelope_round_trip_keeps_events_topics_and_order() -> None:
    items = _events()
    assert decode_envelope(encode_envelope(items)) == items


def test_envelope_of_another_version_is_refused() -> None:
    raw = orjson.loads(encode_envelope(_events()))
    raw["v"] = 99
    with pytest.raises(SchemaError):
        decode_envelope(orjson.dumps(raw))


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"v": 1, "topics": []}', None])
def test_garbage_on_an_internal_topic_is_a_schema_error(raw: bytes | None) -> None:
    with pytest.raises(SchemaError):
        decode_envelope(raw)


def test_partition_of_is_the_keyed_producer_partition() -> None:
    # Envelopes go to explicit partitions; tables write their changelog by key with the
    # producer's partitioner. Both must agree or state would live on the wrong partition.
    partitioner = DefaultPartitioner()
    for key in (b"ana", b"svc-etl-marketing", b"s3://hr/pay.csv", "ü-ß".encode()):
        for count in (1, 4, 7):
            every = list(range(count))
            assert partition_of(key, count) == partitioner(key, every, every)


def test_envelope_keeps_input_positions_and_reads_one_written_without_them() -> None:
    placed = [dataclasses.replace(item, partition=3, offset=100 + i)
              for i, item in enumerate(_events())]
    assert [(f.source, f.offset) for f in decode_envelope(encode_envelope(placed))] == [
        ("cloudtrail-in:3", 100), ("native-in:3", 101), ("cloudtrail-in:3", 102)]
    # An envelope from before positions and claims (a worker upgraded mid-stream).
    older = orjson.loads(encode_envelope(placed))
    for name in ("p", "o", "c"):
        del older[name]
    envelope = read_envelope(orjson.dumps(older))
    assert [f.offset for f in envelope.items] == [-1, -1, -1] and envelope.claims == {}


def test_events_read_back_carry_the_frontier_their_sender_reported_for_their_source() -> None:
    placed = [dataclasses.replace(item, partition=3, offset=100 + i)
              for i, item in enumerate(_events())]
    raw = encode_envelope(placed, {"cloudtrail-in:3": 1767600002.0, "native-in:0": 5.0})
    # native-in:3 was not reported on: no frontier known for its event.
    assert [f.frontier for f in decode_envelope(raw)] == [1767600002.0, float("-inf"),
                                                          1767600002.0]
