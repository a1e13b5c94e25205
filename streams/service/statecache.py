"""A side's table of encoded states, read and written through the shared decoded cache.

Saves decoding every touched entity's state from its table bytes on every batch. The
cache itself is ``models.statecache.StateCache`` (the offline replay's too): a cached state
is used only while the table still holds the very bytes object it was decoded from, so a
changelog recovery or a rebalance that replaced them makes the copy stale.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from reachwatch.models.statecache import StateCache
from reachwatch.models.windows import decode_state, encode_state


class DecodedStates:
    """One side's table read and written through a bounded ``StateCache``."""

    def __init__(self, capacity: int) -> None:
        self.cache = StateCache(capacity)

    def load(self, table: MutableMapping[bytes, bytes], keys: Iterable[str]) -> dict[str, Any]:
        """The states of ``keys`` that the table holds (absent keys are new entities)."""
        states: dict[str, Any] = {}
        for key in keys:
            raw = table.get(key.encode())
            if raw is None:
                continue
            # Taken, not read: scoring mutates states in place, so a batch that fails
            # half-way must not leave them behind; the next try decodes the table's bytes.
            cached = self.cache.take(key, raw)
            states[key] = cached if cached is not None else decode_state(raw)
        return states

    def store(
        self, table: MutableMapping[bytes, bytes], states: dict[str, Any], touched: Iterable[str]
    ) -> None:
        """Write the ``touched`` states back to the table and keep them decoded."""
        for key in touched:
            state = states[key]
            encoded = encode_state(state)
            table[key.encode()] = encoded
            self.cache.put(key, state, encoded)
        for _ in self.cache.overflow():  # bounded: the least recently used go
            pass

    def forget(self, key: str) -> None:
        self.cache.discard(key)

    def clear(self) -> None:
        self.cache.clear()

    def __contains__(self, key: object) -> bool:
        return key in self.cache
