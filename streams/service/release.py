"""The release buffer: events wait here until the frontier passes them, then leave in order.

An agent puts each message's events in (with the message as a *holder*), asks for what the
frontier releases, scores it, makes it durable, and only then acknowledges the holders
that have no event left inside: a message is committed only once everything it carried
went through, so a crash replays it rather than losing what was still waiting.

Ties in event time leave in arrival order, as a stable sort would order them.

>>> buffer = ReleaseBuffer()
>>> buffer.put("m1", [(5.0, "a"), (9.0, "b")]); buffer.put("m2", [(7.0, "c")])
>>> buffer.release(7.0)
['a', 'c']
>>> buffer.done()
['m2']
>>> buffer.release(float("inf")), buffer.done()
(['b'], ['m1'])
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ReleaseBuffer(Generic[T]):
    """Events held by event time, with the messages (holders) they came in."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T, Hashable]] = []
        self._seq = itertools.count()
        self._pending: dict[Hashable, int] = {}  # holder -> events still inside
        self._holders: dict[Hashable, Any] = {}
        self._done: list[Any] = []

    def __len__(self) -> int:
        return len(self._heap)

    def put(
        self, holder: Any, items: Iterable[tuple[float, T]], key: Hashable | None = None
    ) -> None:
        """Hold ``items`` ((event time, item) pairs) for ``holder``.

        ``key`` identifies the holder (default: the holder itself). A holder with no items
        is done at once.
        """
        key = holder if key is None else key
        count = 0
        seq = self._seq
        heap = self._heap
        for ts, item in items:
            heapq.heappush(heap, (ts, next(seq), item, key))
            count += 1
        if count:
            self._pending[key] = self._pending.get(key, 0) + count
            self._holders[key] = holder
        elif key not in self._pending:
            self._done.append(holder)

    def release(self, frontier: float) -> list[T]:
        """Every held item at or before ``frontier``, in event-time (then arrival) order."""
        out: list[T] = []
        heap, pending = self._heap, self._pending
        while heap and heap[0][0] <= frontier:
            _, _, item, key = heapq.heappop(heap)
            out.append(item)
            left = pending[key] - 1
            if left:
                pending[key] = left
            else:
                del pending[key]
                self._done.append(self._holders.pop(key))
        return out

    def done(self) -> list[Any]:
        """Holders emptied since the last call (to acknowledge once their output is durable)."""
        done, self._done = self._done, []
        return done

    def oldest(self) -> float | None:
        """Event time of the earliest held item."""
        return self._heap[0][0] if self._heap else None

    def drop(self, keep: Any) -> int:
        """Forget holders for which ``keep(holder)`` is false (revoked partitions)."""
        gone = {k for k, h in self._holders.items() if not keep(h)}
        if not gone:
            return 0
        before = len(self._heap)
        self._heap = [entry for entry in self._heap if entry[3] not in gone]
        heapq.heapify(self._heap)
        for key in gone:
            self._pending.pop(key, None)
            self._holders.pop(key, None)
        self._done = [h for h in self._done if keep(h)]
        return before - len(self._heap)
