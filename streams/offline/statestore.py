"""An in-memory entity state store that keeps idle entities serialised.

A decoded entity state costs several kilobytes of Python objects; serialised (the same JSON
bytes the stream keeps in its changelog-backed tables) it costs a few hundred bytes. The
offline replay keeps the most recently used states decoded and the rest as compressed
bytes, so 100k principals and 1M resources fit in memory. ``flush`` must be called
between batches only: the pipeline holds references to the states of the batch it is
processing.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from reachwatch.models.statecache import StateCache
from reachwatch.models.windows import EntityState, decode_state, encode_state


class StateStore(MutableMapping[str, EntityState]):
    """A write-back cache of decoded states (``models.statecache``) over serialised ones."""

    def __init__(self, hot_capacity: int = 10_000) -> None:
        self._hot = StateCache(hot_capacity)
        self._cold: dict[str, tuple[float, bytes]] = {}  # key -> (watermark, encoded state)

    @property
    def hot_capacity(self) -> int:
        return self._hot.capacity

    def __getitem__(self, key: str) -> EntityState:
        state = self._hot.take(key)
        if state is None:
            watermark_and_raw = self._cold.pop(key, None)
            if watermark_and_raw is None:
                raise KeyError(key)
            state = decode_state(watermark_and_raw[1])
        self._hot.put(key, state)  # most recently used; encoded again when it is evicted
        return state

    def __setitem__(self, key: str, state: EntityState) -> None:
        self._cold.pop(key, None)
        self._hot.put(key, state)

    def __delitem__(self, key: str) -> None:
        if not self._hot.discard(key):
            del self._cold[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._hot.keys()
        yield from list(self._cold)

    def __len__(self) -> int:
        return len(self._hot) + len(self._cold)

    def __contains__(self, key: object) -> bool:
        return key in self._hot or key in self._cold

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def watermarks(self) -> Iterator[tuple[str, float]]:
        """(key, watermark) of every state without decoding the cold ones."""
        for key, state in self._hot.states():
            yield key, state.watermark
        for key, (watermark, _) in self._cold.items():
            yield key, watermark

    def flush(self) -> int:
        """Serialise the least recently used states beyond capacity; return how many."""
        flushed = 0
        for key, _, state in self._hot.overflow():
            self._cold[key] = (state.watermark, encode_state(state))
            flushed += 1
        return flushed
