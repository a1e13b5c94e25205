"""Reading a partition again from a message Faust fetched but never handed to its agent.

Faust drops fetched messages by design around a rebalance (faust-streaming 0.15.3): its
stream skips, and acknowledges, a message of an older consumer generation or one that
arrives while flow control is suspended (``streams.py``, the Cython ``streams.pyx``); its
fetcher moves its read offset past a message whose hand-over a flow suspension cancelled
(``Consumer._drain_messages``). It then seeks back to the committed offset, but the commit
may already have passed the dropped message: the skipped message is acknowledged, and
``_new_offset`` lets one missing offset pass at the head of a partition. Seen in loaded
SIGKILL runs of the at-least-once test: one internal message, just after a restarted
worker's recovery, never reached the scorer while its neighbours did, and its events were
never scored.

So each agent checks that the offsets it takes follow one another. A message after a hole
that the broker's log does not have (Faust records those as it fetches: transaction
markers, compacted records) is not taken; the partition is sought back to the first
missing offset and read again. Until the new reading arrives, messages beyond the one that
showed the hole are still the old reading's (Faust's buffers hold them): dropped, never
taken, so never acknowledged. Downstream nothing notices: the partition's messages reach
the agent once each, in order. A seek can be undone by a fetched batch still being handed
out (it moves Faust's read offset past the re-read ones), so a rewind that has not seen its
first message within ``RETRY_S`` seeks again; after ``MAX_SEEKS`` it gives up and says so.
A message dropped last shows no hole: a partition quiet for ``QUIET_S`` short of the
broker's high watermark is read again from after its last message too. The first message
after an assignment is judged against where the reading starts (``start``: the commit, else
the log start, asked as the assignment begins: ``transport``).

>>> rw = Rewinds(clock=lambda: 0.0)
>>> rw.admit([("in", 0, 4), ("in", 0, 5), ("in", 0, 7), ("in", 0, 8)], lambda m: m)
([('in', 0, 4), ('in', 0, 5)], {('in', 0): 6})
>>> rw.admit([("in", 0, 6), ("in", 0, 7)], lambda m: m)  # the new reading
([('in', 0, 6), ('in', 0, 7)], {})
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from reachwatch.streams.service.chunks import first_offset

log = logging.getLogger(__name__)

RETRY_S = 5.0  # a rewind whose first message has not come by then seeks again
MAX_SEEKS = 10  # seeks per hole before it is taken for lost (logged as an error)
SAME_HOLE = 2  # readings after the first that show the very same hole: the log's, not a drop
# A partition quiet this long short of its end is read again after its last message. Long
# against a fetch (a busy broker can starve one partition's fetches for seconds): a needless
# seek costs a fetch, nothing more.
QUIET_S = 15.0

Key = tuple[str, int]  # (topic, partition)
# Whether the broker's log has no records at all in [start, end) of a partition.
NoRecords = Callable[[Key, int, int], bool]


def _fields(message: Any) -> tuple[str, int, int, int | None]:
    """(topic, partition, offset, consumer generation it was fetched in)."""
    if isinstance(message, tuple):
        return (*message, None) if len(message) == 3 else message
    return (message.topic, message.partition, message.offset,
            getattr(message, "generation_id", None))


@dataclass
class _Rewind:
    target: int  # the first missing offset, read again from there
    # The message that showed the hole: later ones are the old reading's. None when the
    # partition went quiet short of its end instead (either reading may come first then).
    seen_at: int | None
    since: float  # when the last seek was asked for
    seeks: int = 0
    hole_at: int | None = None  # the message after the hole, in the last reading showing one
    same: int = 0  # readings since that showed the very same hole


class Rewinds:
    """Per partition: the last offset taken, and the rewind under way, if any.

    Within one assignment a partition's offsets are taken once each, in increasing order:
    a message at or below the last one taken is a second reading of it (Faust's own seek
    back to the commit, or ours), and the first is already the agent's."""

    def __init__(
        self,
        no_records: NoRecords = lambda key, start, end: False,
        start: Callable[[Key], int | None] = lambda key: None,
        generation: Callable[[], int | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        on_rewind: Callable[[str], None] = lambda topic: None,
        on_lost: Callable[[str, int], None] = lambda topic, count: None,
    ) -> None:
        self.no_records = no_records
        self.start = start  # where a partition's reading starts after an assignment, if known
        self.generation = generation  # the consumer's current generation, if known
        self.clock = clock
        self.on_rewind = on_rewind  # counters (metrics); topic names only
        self.on_lost = on_lost
        self._last: dict[Key, int] = {}
        # When a message of the partition was last taken, on the waiting clock (``waited``).
        self._when: dict[Key, float] = {}
        self._busy = 0.0  # seconds spent in the agent's steps so far
        self._busy_since: float | None = None  # when the step under way began
        self._rewinds: dict[Key, _Rewind] = {}
        # Per revoked partition, the generation it was revoked in: its messages fetched in
        # that generation or before are no longer this reading's.
        self._floors: dict[Key, int] = {}
        self.stale = 0  # messages of an old reading dropped
        self._stale_seen: set[tuple[Key, int]] = set()
        self.again = 0  # messages read a second time, dropped

    @contextmanager
    def step(self) -> Iterator[None]:
        """Around each step of the agent: time in a step is not time waiting for input.

        A partition is quiet when no message of it came while the agent was waiting for
        input. A backlogged agent (long steps, its next messages waiting in Faust's buffer)
        took every one of its partitions for quiet: in a fill of 300,000 reads each internal
        partition was read again every few minutes, and the repeated envelopes left 45,544
        reads judged late (README, "RocksDB tables")."""
        self._busy_since = self.clock()
        try:
            yield
        finally:
            self._busy += self.clock() - self._busy_since
            self._busy_since = None

    def waited(self) -> float:
        """The waiting clock: seconds so far outside the agent's steps."""
        now = self.clock()
        busy = self._busy + (now - self._busy_since if self._busy_since is not None else 0.0)
        return now - busy

    def admit(
        self, holders: Sequence[Any], message_of: Callable[[Any], Any] = lambda h: h
    ) -> tuple[list[Any], dict[Key, int]]:
        """(the holders to take, in order; partitions to seek and where to)."""
        taken: list[Any] = []
        seeks: dict[Key, int] = {}
        waited = self.waited()
        current = self.generation()
        for holder in holders:
            topic, partition, offset, generation = _fields(message_of(holder))
            key = (topic, partition)
            floor = self._floors.get(key)
            if generation is not None and (
                (current is not None and generation != current)
                or (floor is not None and generation <= floor)
            ):
                # Fetched before a rebalance and handed out after its revocation (a batch
                # gathered across it): the next generation reads it again from the commit,
                # and taken now it would make that reading look like a second one.
                self.stale += 1
                if (key, generation) not in self._stale_seen:  # once per reading: a
                    # partition whose every message were dropped so would be a stall
                    self._stale_seen.add((key, generation))
                    log.info("%s:%d: offset %d and later of generation %s dropped (now %s, "
                             "revoked in %s): read again from the commit", topic, partition,
                             offset, generation, current, floor)
                continue
            if not isinstance(offset, int):
                taken.append(holder)
                continue
            message = message_of(holder)
            first = offset if isinstance(message, tuple) else first_offset(message)
            if self._admit_one(key, first, offset, seeks, message):
                taken.append(holder)
                self._last[key] = offset
                self._when[key] = waited
        return taken, seeks

    def _admit_one(
        self, key: Key, first: int, offset: int, seeks: dict[Key, int], message: Any = None
    ) -> bool:
        """Whether the message standing for offsets ``first``..``offset`` (a chunk, else
        one record: ``chunks``) is taken; a chunk that repeats what was taken is trimmed."""
        last = self._last.get(key)
        if last is None:
            start = self.start(key)
            if start is None or first <= start:
                return True  # the first since the assignment, where the reading starts
            # Judged against where the reading starts: a first message Faust dropped is a
            # hole too (the commit, held at what the agents acknowledged, stays before it).
            last = self._last[key] = start - 1
            self._when[key] = self.waited()
        if offset <= last:
            self.again += 1
            return False
        if first <= last:  # a chunk of another reading, partly taken: its new part only
            message.drop_through(last)
            first = last + 1
        offset = first  # a hole is judged by where the message starts
        rewind = self._rewinds.get(key)
        if offset == last + 1:
            if rewind is not None:
                del self._rewinds[key]
                log.info("%s:%d read again from offset %d", key[0], key[1], offset)
            return True
        if rewind is not None and rewind.seen_at is not None and offset > rewind.seen_at:
            self.stale += 1
            return False
        # A hole before ``offset``: in the log, or dropped by Faust.
        if self.no_records(key, last + 1, offset):
            self._rewinds.pop(key, None)
            return True
        if rewind is not None:
            rewind.same = rewind.same + 1 if offset == rewind.hole_at else 0
            rewind.hole_at = offset
            if rewind.same >= SAME_HOLE:
                # Where a seek lands Faust records no gap, so a transaction marker or a
                # compacted record there looks like a drop: readings that agree settle it.
                del self._rewinds[key]
                log.info("%s:%d: offset(s) %d-%d are not in the log (%d readings agree)",
                         key[0], key[1], last + 1, offset - 1, rewind.same + 1)
                return True
            if rewind.seeks >= MAX_SEEKS:
                self._give_up(key, rewind, offset)
                return True
        if rewind is None:
            rewind = self._rewinds[key] = _Rewind(last + 1, offset, self.clock(), hole_at=offset)
            log.warning("%s:%d: offset(s) %d-%d fetched but never handed over; reading the "
                        "partition again from %d", key[0], key[1], last + 1, offset - 1, last + 1)
        rewind.seen_at = max(rewind.seen_at or offset, offset)
        self._seek(key, rewind, seeks)
        return False

    def _seek(self, key: Key, rewind: _Rewind, seeks: dict[Key, int]) -> None:
        rewind.seeks += 1
        rewind.since = self.clock()
        seeks[key] = rewind.target
        self.on_rewind(key[0])

    def _give_up(self, key: Key, rewind: _Rewind, offset: int) -> None:
        del self._rewinds[key]
        lost = max(0, offset - rewind.target)
        log.error("%s:%d: offset(s) %d-%d never handed over after %d seeks; their events are "
                  "missing", key[0], key[1], rewind.target, offset - 1, rewind.seeks)
        self.on_lost(key[0], lost)

    def due(
        self,
        end: Callable[[Key], int | None] = lambda key: None,
        held: Collection[Key] = (),
    ) -> dict[Key, int]:
        """Partitions to seek again: rewinds whose first message has not come within
        ``RETRY_S``, and partitions quiet for ``QUIET_S`` short of their ``end`` (the
        broker's high watermark; a message dropped last shows no hole). A ``held``
        (paused) partition is not quiet: its quiet time counts from its resumption."""
        seeks: dict[Key, int] = {}
        now, waited = self.clock(), self.waited()
        for key, last in list(self._last.items()):
            rewind = self._rewinds.get(key)
            if rewind is None:
                if key in held:
                    # A paused partition is quiet because it is paused: its quiet time
                    # starts again when it is resumed, not from its last message (seen
                    # sought at every resume after a long pause, history catch-up).
                    self._when[key] = waited
                    continue
                quiet = waited - self._when.get(key, waited)
                if quiet < QUIET_S:
                    continue
                high = end(key)
                if high is None or high <= last + 1:
                    continue
                rewind = self._rewinds[key] = _Rewind(last + 1, None, now)
                log.warning("%s:%d quiet for %.0fs at offset %d short of its end %d: reading "
                            "it again from %d", key[0], key[1], quiet, last,
                            high, last + 1)
                self._seek(key, rewind, seeks)
            elif now - rewind.since >= RETRY_S:
                if rewind.seeks >= MAX_SEEKS:
                    # Nothing of the new reading came at all: the next message starts afresh.
                    self._give_up(key, rewind, rewind.seen_at or rewind.target)
                    self._last.pop(key, None)
                    continue
                self._seek(key, rewind, seeks)
        return seeks

    def forget(self, partitions: Iterable[Key]) -> None:
        """Revoked ``partitions``: their next owner reads them from the commit."""
        generation = self.generation()
        for key in partitions:
            if generation is not None:
                self._floors[key] = generation
            self._last.pop(key, None)
            self._when.pop(key, None)
            self._rewinds.pop(key, None)

    def rewinding(self) -> int:
        return len(self._rewinds)
