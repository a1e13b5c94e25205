"""Input in chunks: one Faust message per fetched run of records, not one per record.

Faust's cost is per message, not per byte: between aiokafka's fetched records and the agent
every message costs a ``wait_first`` (four tasks made, three cancelled), a conductor lock,
a stream-iterator step, a processor and an ack — ~60-115 µs of CPU on this machine, more
than the whole ingest chain spends on an access event (``bench/chunks.py``). Log shippers
write one access event per Kafka message, so the input topics pay it per event. The
transport (``streams/service/transport.py``) cuts each partition's fetched records into
runs of at most ``size`` and hands each run to Faust as one ``ChunkMessage``: its offset is
the run's last, its ``records`` the run. Then:

- a chunked partition is committed after the highest offset the agents acknowledged
  (``transport._Consumer._chunked_offset``), never from Faust's own record of acknowledged
  offsets and gaps: it knows a run only by its last offset, and its gap record also holds
  runs fetched and never handed over (measured: with the interior offsets registered as
  gaps, commits stalled hundreds of offsets short after a re-read with other run bounds);
- the agents check that each partition's runs follow one another (``rewind``: a run that
  starts after a hole, or repeats part of what was taken, is judged by its first offset
  and trimmed to what is new);
- the forwarder reads every record of a run as a message of its own (its offset, key,
  value, timestamp) and acknowledges the run once all its events are delivered.

A run never spans two fetches, so chunks add no waiting: at low rates a chunk is a record.

>>> class R:
...     def __init__(self, offset): self.offset = offset
>>> [[r.offset for r in run] for run in runs([R(o) for o in (4, 5, 6, 7, 8)], 2)]
[[4, 5], [6, 7], [8]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from faust.types import TP
from faust.types.tuples import ConsumerMessage


class Record(NamedTuple):
    """One input record as the forwarder reads it (a message's fields)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None  # seconds, as Faust's messages carry it


class Run(list):  # type: ignore[type-arg]
    """A fetched run of one partition's records, cut by the transport (a list of them)."""


def runs(records: Sequence[Any], size: int) -> Iterator[Run]:
    """``records`` (one partition's, in offset order) in runs of at most ``size``."""
    for start in range(0, len(records), size):
        yield Run(records[start : start + size])


class ChunkMessage(ConsumerMessage):
    """A Faust message standing for a run of records: offset = the run's last."""

    __slots__ = ("_records", "first_offset")

    def __init__(self, tp: TP, run: Sequence[Any], generation_id: int | None) -> None:
        first, last = run[0], run[-1]
        timestamp = last.timestamp / 1000.0 if last.timestamp is not None else None
        super().__init__(
            last.topic, last.partition, last.offset, timestamp,  # type: ignore[arg-type]
            last.timestamp_type, None, None, None, None, 0, 0, tp,
            generation_id=generation_id,
        )
        self.first_offset: int = first.offset
        self._records = run

    @property
    def records(self) -> list[Record]:
        """The run's records as messages of their own (from ``first_offset`` on)."""
        first = self.first_offset
        return [
            Record(r.topic, r.partition, r.offset, r.key, r.value,
                   r.timestamp / 1000.0 if r.timestamp is not None else None)
            for r in self._records
            if r.offset >= first
        ]

    def drop_through(self, offset: int) -> None:
        """Forget the records up to ``offset`` (taken already, from an earlier reading)."""
        self.first_offset = max(self.first_offset, offset + 1)


def records_of(message: Any) -> Sequence[Any]:
    """The records a message stands for: a chunk's, else the message itself."""
    if isinstance(message, ChunkMessage):
        return message.records
    return (message,)


def first_offset(message: Any) -> int:
    """The first offset a message stands for (a chunk's first, else its own)."""
    return getattr(message, "first_offset", message.offset)
