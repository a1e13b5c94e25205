"""Approximate distinct counts above a window's exact cap: time-sliced HyperLogLogs.

A distinct window remembers up to ``cap`` keys exactly. A principal that reads a million
objects (a scraper) must not cost a million remembered keys, yet its window has to keep
growing with what it reads, and a key read twice must count once. Keys beyond the cap go
into this sketch: one HyperLogLog++ (``datasketch``) per time slice of ``span / SLICES``,
plus per slice the number of reads and the sums of their attributes. The window's
overflow is the estimated distinct count of the union of the live slices (register-wise
maximum), so a key read in two slices counts once; its attribute sums are that estimate
times the slices' mean attributes per read. Slices leave as whole slices, so the sketch
covers between ``span`` and ``span * (1 + 1 / SLICES)`` of event time.

Memory: ``2 ** PRECISION`` bytes per live slice (1 KiB at precision 10, relative error
~3 %), at most ``SLICES + 1`` slices per overflowing window, none for the others.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from datasketch import HyperLogLogPlusPlus as HyperLogLog

PRECISION = 10
SLICES = 4
# Categories (owning groups) remembered per slice: groups are teams, a few dozen; the
# bound only stops a hostile stream from growing it.
CATEGORY_CAP = 256


class _Slice:
    __slots__ = ("categories", "hll", "index", "reads", "sums")

    def __init__(self, index: int, n_attrs: int, hll: HyperLogLog | None = None) -> None:
        self.index = index
        self.hll = hll if hll is not None else HyperLogLog(p=PRECISION)
        self.reads = 0
        self.sums = [0.0] * n_attrs
        self.categories: set[str] = set()


class OverflowSketch:
    """Distinct keys (and their attribute sums) beyond the exact cap, over ``span`` seconds.

    >>> s = OverflowSketch(span=3600.0, n_attrs=1)
    >>> for i in range(20000):
    ...     _ = s.add(float(i % 3600), f"key{i % 10000}", "g", (1.0,))
    >>> 9400 < s.refresh()[0] < 10600   # 10,000 distinct keys, each read twice
    True
    """

    __slots__ = ("_categories", "estimate", "n_attrs", "pending", "slices", "span", "width")

    def __init__(self, span: float, n_attrs: int) -> None:
        self.span = span
        self.width = span / SLICES
        self.n_attrs = n_attrs
        self.slices: list[_Slice] = []
        self.estimate = 0  # distinct keys at the last refresh
        self.pending = 0  # reads added since the last refresh
        self._categories: set[str] | None = None  # union over slices, until one changes

    def add(self, ts: float, key: str, category: str, attrs: tuple[float, ...]) -> bool:
        """Count a read; True when the estimate is due for a refresh.

        A refresh (a union and a count, ~30 µs) is due once the reads since the last one
        could move the estimate by more than ~1.5 %, about the sketch's own error.
        """
        index = int(ts // self.width)
        slices = self.slices
        if not slices or index > slices[-1].index:
            slices.append(_Slice(index, self.n_attrs))
        target = slices[-1]  # a late read lands in the newest slice, like CountWindow
        target.hll.update(key.encode())
        target.reads += 1
        sums = target.sums
        for i, value in enumerate(attrs):
            sums[i] += value
        if category not in target.categories and len(target.categories) < CATEGORY_CAP:
            target.categories.add(category)
            self._categories = None
        self.pending += 1
        return self.pending > (self.estimate >> 6)

    def expire(self, now: float) -> bool:
        """Drop slices wholly older than the window; True when one was dropped."""
        horizon = now - self.span
        slices = self.slices
        dropped = 0
        while dropped < len(slices) and (slices[dropped].index + 1) * self.width <= horizon:
            dropped += 1
        if dropped:
            del slices[:dropped]
            self._categories = None
        return dropped > 0

    def refresh(self) -> list[float]:
        """Re-estimate; return [distinct, *attribute sums] of the keys in the sketch."""
        self.pending = 0
        slices = self.slices
        if not slices:
            self.estimate = 0
            return [0.0] * (1 + self.n_attrs)
        if len(slices) == 1:
            union = slices[0].hll
        else:
            registers = np.maximum.reduce([s.hll.reg for s in slices])
            union = HyperLogLog(p=PRECISION, reg=registers)
        self.estimate = estimate = round(union.count())
        reads = sum(s.reads for s in slices)
        per_read = [sum(s.sums[i] for s in slices) / reads for i in range(self.n_attrs)]
        return [float(estimate)] + [value * estimate for value in per_read]

    def categories(self) -> set[str]:
        """Categories of the live slices (read on every scored read of the entity: cached)."""
        if self._categories is None:
            self._categories = set().union(*(s.categories for s in self.slices))
        return self._categories

    def __bool__(self) -> bool:
        return bool(self.slices)

    def to_obj(self) -> list[Any]:
        # With the estimate and the reads since it: they decide when the next refresh is
        # due, and so the window's sums from then on.
        slices = [
            [
                s.index,
                base64.b64encode(s.hll.reg.tobytes()).decode("ascii"),
                s.reads,
                s.sums,
                sorted(s.categories),
            ]
            for s in self.slices
        ]
        return [slices, self.estimate, self.pending]

    @classmethod
    def from_obj(cls, obj: list[Any], span: float, n_attrs: int) -> OverflowSketch:
        sketch = cls(span, n_attrs)
        size = 1 << PRECISION
        slices, sketch.estimate, sketch.pending = obj
        for index, registers, reads, sums, categories in slices:
            raw = base64.b64decode(registers, validate=True)
            if len(raw) != size or len(sums) != n_attrs:
                raise ValueError("sketch slice does not match this precision or attributes")
            hll = HyperLogLog(p=PRECISION, reg=np.frombuffer(raw, dtype=np.int8).copy())
            piece = _Slice(int(index), n_attrs, hll)
            piece.reads = int(reads)
            piece.sums = [float(v) for v in sums]
            piece.categories = set(categories)
            sketch.slices.append(piece)
        return sketch
