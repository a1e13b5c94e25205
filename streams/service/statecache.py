"""A side's table of encoded states, read and written through the shared decoded cache.

Saves decoding every touched entity's state from its table bytes on every batch. The
cache itself is ``models.statecache.StateCache`` (the offline replay's too): a cached state
is used only while the table still holds the very bytes object it was decoded from, so a
changelog recovery or a rebalance that replaced them makes the copy stale.

Written behind (``keep`` then ``write``): a state a step changed stays decoded and *dirty*,
newer than the table's bytes, and is read from the cache until a checkpoint writes every
dirty state at once (a state touched by many steps in between is encoded and sent once).
Each dirty state keeps the steps applied to it since its last write (a journal, opaque
here): a step that failed half-way took its states out of the cache, so the next ``load``
rebuilds them from the table's bytes and those steps (``rebuild``), never from a state left
half-applied. A dirty state the cache must evict is written first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from reachwatch.models.statecache import StateCache
from reachwatch.models.windows import EntityState, StateLayoutError, decode_state, encode_state

log = logging.getLogger(__name__)
DISCARD_LOG_INTERVAL_S = 60.0

# (key, the state its table bytes hold or None, the steps applied since) -> the state now.
Rebuild = Callable[[str, EntityState | None, list[Any]], EntityState | None]


def _no_rebuild(key: str, state: EntityState | None, steps: list[Any]) -> EntityState | None:
    raise RuntimeError(f"a dirty state was lost and nothing can rebuild it ({len(steps)} steps)")


class DecodedStates:
    """One side's table read and written through a bounded ``StateCache``."""

    def __init__(self, capacity: int, rebuild: Rebuild = _no_rebuild) -> None:
        self.cache = StateCache(capacity)
        self.rebuild = rebuild
        # Changed since their last write: key -> the steps applied since (the journal).
        self.dirty: dict[str, list[Any]] = {}
        self.discarded = 0  # states of another layout, started afresh
        self.rebuilt = 0  # dirty states rebuilt from their table bytes and journal
        self._discard_logged = -float("inf")

    def load(self, table: MutableMapping[bytes, bytes], keys: Iterable[str]) -> dict[str, Any]:
        """The states of ``keys`` that the table or the dirty cache holds (absent keys are
        new entities)."""
        states: dict[str, Any] = {}
        for key in keys:
            if key in self.dirty:
                state = self.cache.take(key)
                if state is None:  # a step that took it failed: rebuilt
                    state = self._rebuilt(table, key)
                if state is not None:
                    states[key] = state
                continue
            raw = table.get(key.encode())
            if raw is None:
                continue
            # Taken, not read: scoring mutates states in place, so a batch that fails
            # half-way must not leave them behind; the next try decodes the table's bytes.
            cached = self.cache.take(key, raw)
            if cached is not None:
                states[key] = cached
                continue
            decoded = self._decode(raw)
            if decoded is not None:
                states[key] = decoded
        return states

    def _decode(self, raw: bytes) -> EntityState | None:
        try:
            return decode_state(raw)
        except StateLayoutError as exc:
            # Written by a version with another state layout (an upgrade): the entity
            # starts afresh, as a new one would, rather than every batch holding it
            # failing. Its next write replaces the old bytes.
            self._discard(exc)
            return None

    def _rebuilt(self, table: MutableMapping[bytes, bytes], key: str) -> EntityState | None:
        raw = table.get(key.encode())
        state = self.rebuild(key, self._decode(raw) if raw is not None else None,
                             self.dirty[key])
        self.rebuilt += 1
        return state

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
            self.dirty.pop(key, None)
        self._evict(table)

    def keep(
        self,
        table: MutableMapping[bytes, bytes],
        states: dict[str, Any],
        touched: Iterable[str],
        steps: Mapping[str, Any],
    ) -> None:
        """Keep the ``touched`` states decoded and dirty, each with its entry of ``steps``
        in its journal (written by the next ``write``); the others as ``put_back`` does."""
        changed = set(touched)
        for key in changed:
            self.cache.put(key, states[key])
            self.dirty.setdefault(key, []).append(steps.get(key))
        self.put_back(table, states, changed)

    def put_back(
        self, table: MutableMapping[bytes, bytes], states: dict[str, Any], touched: Iterable[str]
    ) -> None:
        """Keep decoded the states ``load`` took that the batch left as they were (their
        reads were all late, or repeats): the table still holds the bytes they match, or
        they are dirty."""
        changed = set(touched)
        for key, state in states.items():
            if key not in changed:
                if key in self.dirty:
                    self.cache.put(key, state)
                    continue
                raw = table.get(key.encode())
                if raw is not None:
                    self.cache.put(key, state, raw)
        self._evict(table)

    def _evict(self, table: MutableMapping[bytes, bytes]) -> None:
        # Bounded: the least recently used go; a dirty one is written first (its write
        # settles with the next checkpoint, before the envelopes it covers are acked).
        for key, _, state in self.cache.overflow():
            if key in self.dirty:
                table[key.encode()] = encode_state(state)
                del self.dirty[key]

    def tracked(self, table: MutableMapping[bytes, bytes]) -> int:
        """Entities known: the table's, and the new ones only a dirty state holds yet."""
        return len(table) + sum(1 for key in self.dirty if key.encode() not in table)

    def write(self, table: MutableMapping[bytes, bytes]) -> int:
        """Write every dirty state to the table (a checkpoint); how many were written.

        One at a time, each marked clean once written: a write that raises leaves the
        others dirty, written by the next try."""
        written = 0
        for key in list(self.dirty):
            state = self.cache.get(key)
            if state is None:  # a step that took it failed and no step took it since
                state = self._rebuilt(table, key)
                if state is None:
                    del self.dirty[key]
                    continue
                self.cache.put(key, state)
            encoded = encode_state(state)
            table[key.encode()] = encoded
            self.cache.encoded(key, encoded)
            del self.dirty[key]
            written += 1
        return written

    def drop(self, keys: Callable[[str], bool] | None = None) -> int:
        """Forget the decoded states, dirty ones too, of the keys ``keys`` selects (all if
        None) and the clean ones of the others; how many dirty ones were dropped."""
        if keys is None:
            dropped = len(self.dirty)
            self.dirty.clear()
            self.cache.clear()
            return dropped
        gone = [key for key in self.dirty if keys(key)]
        for key in gone:
            del self.dirty[key]
        for key in self.cache.keys():
            if key not in self.dirty:
                self.cache.discard(key)
        return len(gone)

    def forget(self, key: str) -> None:
        self.cache.discard(key)
        self.dirty.pop(key, None)

    def clear(self) -> None:
        self.drop()

    def __contains__(self, key: object) -> bool:
        return key in self.cache
