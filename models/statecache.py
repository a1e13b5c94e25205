"""The most recently used decoded entity states, each with the encoded bytes it matches.

Decoding a state (``windows.decode_state``) costs far more than a dict lookup, and a
decoded state costs several kilobytes where its encoding costs a few hundred bytes: the
worker (over its changelog-backed tables) and the offline replay (over bytes it keeps
itself) both keep the states they touch most recently decoded, up to a capacity, here.

An entry remembers the bytes its state was decoded from or last encoded to, or None when
it changed since. ``take`` with the bytes now stored returns the state only when they are
the very same object, so bytes replaced behind the cache's back (a changelog recovery, a
rebalance) are decoded anew.

>>> from reachwatch.models.sides import PRINCIPAL
>>> from reachwatch.models.windows import EntityState
>>> cache = StateCache(capacity=1)
>>> cache.put("ana", EntityState(PRINCIPAL, (900.0, 3600.0, 86400.0), 10, 10), b"x")
>>> cache.put("bob", EntityState(PRINCIPAL, (900.0, 3600.0, 86400.0), 10, 10))
>>> [key for key, _, _ in cache.overflow()]  # least recently used first
['ana']
"""

from __future__ import annotations

from collections.abc import Iterator

from reachwatch.models.windows import EntityState


class StateCache:
    """Decoded states by entity key, least recently used first, bounded by ``overflow``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # Insertion order is recency: a read pops its entry and a write re-inserts it.
        self._entries: dict[str, tuple[bytes | None, EntityState]] = {}

    def take(self, key: str, raw: bytes | None = None) -> EntityState | None:
        """Remove and return ``key``'s state; None when absent or, given the bytes stored
        now, when the cached state was not decoded from (or encoded to) those bytes.

        Taken, not read: the caller mutates the state and puts it back when it is done,
        so a batch that fails half-way leaves nothing half-updated behind.
        """
        entry = self._entries.pop(key, None)
        if entry is None or (raw is not None and entry[0] is not raw):
            return None
        return entry[1]

    def put(self, key: str, state: EntityState, raw: bytes | None = None) -> None:
        """Cache ``state`` as the most recently used; ``raw`` its encoding, if it has one."""
        self._entries.pop(key, None)
        self._entries[key] = (raw, state)

    def get(self, key: str) -> EntityState | None:
        """``key``'s state, left in place (its recency unchanged)."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None else None

    def encoded(self, key: str, raw: bytes) -> None:
        """``key``'s state (cached) is now stored as ``raw``; its recency unchanged."""
        self._entries[key] = (raw, self._entries[key][1])

    def discard(self, key: str) -> bool:
        """Forget ``key``; True when it was cached."""
        return self._entries.pop(key, None) is not None

    def overflow(self) -> Iterator[tuple[str, bytes | None, EntityState]]:
        """Remove and yield (key, bytes, state) of the least recently used entries beyond
        ``capacity``."""
        entries = self._entries
        for _ in range(len(entries) - self.capacity):
            key = next(iter(entries))
            raw, state = entries.pop(key)
            yield key, raw, state

    def clear(self) -> None:
        self._entries.clear()

    def keys(self) -> list[str]:
        return list(self._entries)

    def states(self) -> Iterator[tuple[str, EntityState]]:
        for key, (_, state) in self._entries.items():
            yield key, state

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
