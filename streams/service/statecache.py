"""A side's table of encoded states, read and written through the shared decoded cache.

Saves decoding every touched entity's state from its table bytes on every batch. The
cache itself is ``models.statecache.StateCache`` (the offline replay's too): a cached state
is used only while the table still holds the very bytes object it was decoded from, so a
changelog recovery or a rebalance that replaced them makes the copy stale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

from reachwatch.models.statecache import StateCache
from reachwatch.models.windows import StateLayoutError, decode_state, encode_state

log = logging.getLogger(__name__)
DISCARD_LOG_INTERVAL_S = 60.0


class DecodedStates:
    """One side's table read and written through a bounded ``StateCache``."""

    def __init__(self, capacity: int) -> None:
        self.cache = StateCache(capacity)
        self.discarded = 0  # states of another layout, started afresh
        self._discard_logged = -float("inf")

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
            if cached is not None:
                states[key] = cached
                continue
            try:
                states[key] = decode_state(raw)
            except StateLayoutError as exc:
                # Written by a version with another state layout (an upgrade): the entity
                # starts afresh, as a new one would, rather than every batch holding it
                # failing. Its next write replaces the old bytes.
                self._discard(exc)
        return states

    def _discard(self, exc: StateLayoutError) -> None:
        self.discarded += 1
        now = time.monotonic()
        if now - self._discard_logged >= DISCARD_LOG_INTERVAL_S:
            self._discard_logged = now
            log.warning("%d state(s) of another layout started afresh so far (%s)",
                        self.discarded, exc)

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

    def put_back(
        self, table: MutableMapping[bytes, bytes], states: dict[str, Any], touched: Iterable[str]
    ) -> None:
        """Keep decoded the states ``load`` took that the batch left as they were (their
        reads were all late, or repeats): the table still holds the bytes they match."""
        changed = set(touched)
        for key, state in states.items():
            if key not in changed:
                raw = table.get(key.encode())
                if raw is not None:
                    self.cache.put(key, state, raw)
        for _ in self.cache.overflow():
            pass

    def forget(self, key: str) -> None:
        self.cache.discard(key)

    def clear(self) -> None:
        self.cache.clear()

    def __contains__(self, key: object) -> bool:
        return key in self.cache
