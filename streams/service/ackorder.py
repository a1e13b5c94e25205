"""Acknowledging each partition's messages in offset order, whatever order they finish in.

Messages finish out of order here: the alignment holds a message whose event lies beyond
the aligned frontier while later messages of its partition, with earlier events, go
through. Faust commits the first consecutive run of acknowledged offsets, but its check
that the run starts where the last commit ended lets one missing offset pass
(faust-streaming 0.15.3, ``Consumer._new_offset``: ``min(acked) - committed > 1``), and
makes no check at all while the committed offset is 0 or unknown. With message N held and
N + 1 acknowledged, it commits N + 2: a crash then loses N (``test_faults_restart.py``
caught one event of 1,865 that never reached the scoring topics although the group had
committed every input offset). So a finished message is acknowledged only once every
earlier message of its partition taken since the assignment is acknowledged too.

>>> order = AckOrder()
>>> order.taken(["m0", "m1", "m2"], lambda h: ("in", 0))
>>> order.finished(["m1"], lambda h: ("in", 0))
[]
>>> order.finished(["m0"], lambda h: ("in", 0))
['m0', 'm1']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

# (topic, partition) of a holder's message: holders are taken in offset order.
Partition = Callable[[Any], tuple[str, int]]


class AckOrder:
    """Per (topic, partition): the holders taken, in offset order, and which finished."""

    def __init__(self) -> None:
        self._queues: dict[tuple[str, int], deque[Any]] = {}
        self._finished: set[int] = set()  # ids of finished holders still queued

    def taken(self, holders: Iterable[Any], partition_of: Partition) -> None:
        """``holders`` were handed to the agent (each partition's in offset order)."""
        for holder in holders:
            self._queues.setdefault(partition_of(holder), deque()).append(holder)

    def finished(self, holders: Iterable[Any], partition_of: Partition) -> list[Any]:
        """Mark ``holders`` finished; return those now to be acknowledged, in order."""
        touched: set[tuple[str, int]] = set()
        for holder in holders:
            self._finished.add(id(holder))
            touched.add(partition_of(holder))
        out: list[Any] = []
        for key in touched:
            queue = self._queues.get(key)
            while queue and id(queue[0]) in self._finished:
                head = queue.popleft()
                self._finished.discard(id(head))
                out.append(head)
        return out

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Drop revoked ``partitions`` (read again from the commit)."""
        for key in partitions & self._queues.keys():
            for holder in self._queues.pop(key):
                self._finished.discard(id(holder))

    def waiting(self) -> int:
        """Finished holders held back behind an unfinished one."""
        return len(self._finished)
