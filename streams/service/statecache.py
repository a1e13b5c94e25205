"""Decoded window states by entity, with the table bytes they were decoded from.

Saves decoding every touched entity's state from its table bytes on every batch. A cached
state is used only while the table still holds the very bytes object it was decoded from:
a changelog recovery or a rebalance that replaced them makes the copy stale.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from reachwatch.models.windows import decode_state, encode_state


class DecodedStates:
    """An LRU of decoded states for one side's table (reads pop, writes re-insert)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: dict[str, tuple[bytes, Any]] = {}

    def load(self, table: MutableMapping[bytes, bytes], keys: Iterable[str]) -> dict[str, Any]:
        """The states of ``keys`` that the table holds (absent keys are new entities)."""
        states: dict[str, Any] = {}
        entries = self.entries
        for key in keys:
            raw = table.get(key.encode())
            if raw is None:
                continue
            # Popped, not read: scoring mutates states in place, so a batch that fails
            # half-way must not leave them behind; the next try decodes the table's bytes.
            cached = entries.pop(key, None)
            states[key] = (
                cached[1] if cached is not None and cached[0] is raw else decode_state(raw)
            )
        return states

    def store(
        self, table: MutableMapping[bytes, bytes], states: dict[str, Any], touched: Iterable[str]
    ) -> None:
        """Write the ``touched`` states back to the table and keep them decoded."""
        entries = self.entries
        for key in touched:
            state = states[key]
            encoded = encode_state(state)
            table[key.encode()] = encoded
            entries[key] = (encoded, state)
        # Bounded (bench/soak.py: ~13 KB per decoded state); the first key is the LRU one.
        while len(entries) > self.capacity:
            del entries[next(iter(entries))]

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def clear(self) -> None:
        self.entries.clear()
