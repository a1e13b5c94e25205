"""The idle sweep and the entity cap: forgetting principals and resources.

Entities idle for longer than the model's ``idle_ttl_days`` are forgotten, then, where a
side still holds more than ``max_entities``, the least recently active beyond it.
Idleness is judged in event time against the side's clock (the latest event time it
scored), as the offline replay does; a deletion is a tombstone in the table's changelog.
Watermarks are read from the state header, without decoding, and the sweep yields to the
event loop every few thousand entities. The cap bounds memory under a flood of new ids (a
cardinality attack): an evicted entity that reads again starts over, judged by its peers
until its own history matures.
"""

from __future__ import annotations

import asyncio
import logging
import math
from array import array
from collections.abc import MutableMapping
from typing import Protocol

import numpy as np

from reachwatch.models.windows import state_watermark
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.statecache import DecodedStates

log = logging.getLogger(__name__)

SWEEP_CHUNK = 5000  # entities checked between two yields to the event loop


class SweptSide(Protocol):
    name: str
    table: MutableMapping[bytes, bytes]
    cache: DecodedStates
    clock: float | None


class Sweeper:
    """Runs one sweep at a time over the given sides."""

    def __init__(self, sides: tuple[SweptSide, ...], max_entities: int, metrics: Metrics) -> None:
        self.sides = sides
        self.max_entities = max_entities
        self.metrics = metrics
        self.sweeping = False
        self.task: asyncio.Future[None] | None = None  # a sweep started by table growth

    async def sweep(self, ttl: float) -> None:
        if self.sweeping:
            return
        self.sweeping = True
        try:
            for side in self.sides:
                if side.clock is not None:  # else nothing scored since start: no "now" yet
                    idle = await forget_older(side.table, side.cache, side.clock - ttl)
                    self._count(side.name, "idle", idle)
                excess = len(side.table) - self.max_entities
                if excess > 0:
                    cutoff = await oldest_watermarks_cutoff(side.table, excess)
                    evicted = await forget_older(side.table, side.cache, cutoff, limit=excess)
                    self._count(side.name, "cap", evicted)
        finally:
            self.sweeping = False

    def maybe_soon(self, table_size: int, ttl: float) -> None:
        # A flood can outgrow the cap long before the next timed sweep: sweep now, in the
        # background, once a side is 10 % over.
        if table_size > self.max_entities * 1.1 and not self.sweeping:
            self.task = asyncio.ensure_future(self.sweep(ttl))

    def _count(self, side: str, reason: str, count: int) -> None:
        if count:
            self.metrics.entities_expired.labels(side=side, reason=reason).inc(count)
            log.info(
                "forgot %d %s(s): %s",
                count,
                side,
                "idle past the TTL" if reason == "idle" else "over max_entities",
            )


async def forget_older(
    table: MutableMapping[bytes, bytes],
    cache: DecodedStates,
    horizon: float,
    limit: int | None = None,
) -> int:
    """Delete entities whose watermark is before ``horizon`` (at most ``limit``)."""
    forgotten = 0
    keys = list(table.keys())
    dirty = cache.dirty  # changed since the table's bytes: active, whatever those say
    for start in range(0, len(keys), SWEEP_CHUNK):
        for key in keys[start : start + SWEEP_CHUNK]:
            if dirty and key.decode() in dirty:
                continue
            raw = table.get(key)
            # Checked and deleted in one synchronous step: a batch that scored the entity
            # since the snapshot has moved its watermark past the horizon.
            if raw is not None and state_watermark(raw) < horizon:
                del table[key]
                cache.forget(key.decode())
                forgotten += 1
                if limit is not None and forgotten >= limit:
                    return forgotten
        await asyncio.sleep(0)
    return forgotten


async def oldest_watermarks_cutoff(table: MutableMapping[bytes, bytes], count: int) -> float:
    """A horizon below which lie (about) the ``count`` oldest watermarks of ``table``."""
    marks = array("d")
    for start, key in enumerate(list(table.keys())):
        raw = table.get(key)
        if raw is not None:
            marks.append(state_watermark(raw))
        if start % SWEEP_CHUNK == SWEEP_CHUNK - 1:
            await asyncio.sleep(0)
    if not marks:
        return -math.inf
    values = np.frombuffer(marks, dtype=np.float64)
    k = min(count, len(values)) - 1
    kth = float(np.partition(values, k)[k])
    return math.nextafter(kth, math.inf)  # "before the horizon" includes the k-th itself
