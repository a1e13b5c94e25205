"""Event-time, per-entity state: sliding windows, decayed baselines, novelty memory.

Everything here is plain Python, deterministic for a given event order, and serialisable
to JSON-compatible lists (``encode_state`` / ``decode_state``) so the stream can keep it in
changelog-backed Faust tables and recover it after a crash.

A distinct window keeps one log entry per distinct key, not one per read: a key read again
only moves its last-read time, and when its log entry reaches the end of the window it is
either dropped (not read since) or moved to its last-read time. Memory per entity is
proportional to distinct keys, not to reads (a backup job re-reading the same 10k objects
every minute costs 10k entries, not 600k).
"""

from __future__ import annotations

import math
import struct
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import zstandard

from reachwatch.models.progress import AppliedInput
from reachwatch.models.sides import BY_NAME, Counts, Side
from reachwatch.models.sketch import OverflowSketch

HOUR = 3600.0
DAY = 86400.0

# Log-scaled histogram buckets: quarter-octave resolution, value 0 has its own bucket.
_BUCKETS_PER_OCTAVE = 4


def bucket_of(value: float) -> int:
    """Histogram bucket of a non-negative value (0 -> 0, 1 -> 1, 2 -> 5, 4 -> 9...)."""
    if value <= 0:
        return 0
    return max(1, math.floor(math.log2(value) * _BUCKETS_PER_OCTAVE) + 1)


def bucket_value(index: int) -> float:
    """The upper edge of a bucket: the smallest value of the next bucket (conservative)."""
    if index <= 0:
        return 0.0
    return 2.0 ** (index / _BUCKETS_PER_OCTAVE)


class DecayedHistogram:
    """A sparse log-bucket histogram whose weights halve every ``half_life_days``.

    Answers "what is this entity's usual high" (a quantile) without storing raw history.

    >>> h = DecayedHistogram(half_life_days=10.0)
    >>> for v in [1, 2, 2, 3, 40]:
    ...     h.add(v, day=0)
    >>> h.quantile(0.5) <= 3 < h.quantile(0.99)
    True
    """

    __slots__ = ("day", "half_life_days", "total", "weights")

    def __init__(self, half_life_days: float = 10.0) -> None:
        self.half_life_days = half_life_days
        self.weights: dict[int, float] = {}
        self.day = 0
        self.total = 0.0

    def _decay_to(self, day: int) -> None:
        if day <= self.day:
            return
        factor = 0.5 ** ((day - self.day) / self.half_life_days)
        self.day = day
        if factor < 1e-6:
            self.weights.clear()
            self.total = 0.0
            return
        for key in self.weights:
            self.weights[key] *= factor
        self.total *= factor

    def add(self, value: float, day: int, weight: float = 1.0) -> None:
        self._decay_to(day)
        key = bucket_of(value)
        self.weights[key] = self.weights.get(key, 0.0) + weight
        self.total += weight

    def quantile(self, q: float) -> float:
        """Value below which a fraction ``q`` of the (decayed) weight lies; 0 when empty."""
        if self.total <= 0:
            return 0.0
        target = q * self.total
        running = 0.0
        for key in sorted(self.weights):
            running += self.weights[key]
            if running >= target - 1e-12:
                return bucket_value(key)
        return bucket_value(max(self.weights))

    def mean(self) -> float:
        """The (decayed) mean, each value taken at its bucket's upper edge; 0 when empty."""
        if self.total <= 0:
            return 0.0
        return sum(bucket_value(k) * w for k, w in self.weights.items()) / self.total

    def to_obj(self) -> list[Any]:
        return [self.day, self.total, [[k, w] for k, w in self.weights.items()]]

    @classmethod
    def from_obj(cls, obj: list[Any], half_life_days: float = 10.0) -> DecayedHistogram:
        h = cls(half_life_days)
        h.day, h.total = int(obj[0]), float(obj[1])
        h.weights = {int(k): float(w) for k, w in obj[2]}
        return h


class DistinctWindow:
    """Distinct keys seen in the last ``span`` seconds, with per-key attribute sums.

    Each key carries a small tuple of numeric attributes (for a principal's reads: the
    resource's sensitivity weight, whether it is outside the reader's group, ...). The
    window keeps the sum of each attribute over the distinct keys inside it, plus a
    reference count per *category* (e.g. owning group) for a distinct-category count.
    Above ``cap`` distinct keys, new keys go into an approximate sketch
    (``models.sketch``: HyperLogLog slices) instead of being remembered individually, so
    memory stays bounded; ``overflow`` is the sketch's distinct estimate, and ``sums``
    include its estimated attribute sums.
    """

    __slots__ = (
        "cap",
        "categories",
        "head",
        "keys",
        "log",
        "n_attrs",
        "overflow",
        "sketch",
        "sketch_sums",
        "slot",
        "span",
        "sums",
    )

    def __init__(self, span: float, n_attrs: int, cap: int = 5000) -> None:
        self.span = span
        self.slot = span / 30.0
        self.cap = cap
        self.n_attrs = n_attrs
        # key -> [last_ts, category, attrs tuple]
        self.keys: dict[str, list[Any]] = {}
        # (ts, key) in arrival order; entries before ``head`` are consumed. A list with a
        # head index instead of a deque: an empty deque costs ~600 bytes, and most
        # entities have a handful of keys.
        self.log: list[tuple[float, str]] = []
        self.head = 0
        self.sums = [0.0] * n_attrs
        self.categories: dict[str, int] = {}
        self.sketch: OverflowSketch | None = None
        self.overflow = 0  # the sketch's estimate at its last refresh
        self.sketch_sums: list[float] | None = None  # its share of ``sums``

    def add(self, ts: float, key: str, category: str, attrs: tuple[float, ...]) -> bool:
        """Record a read of ``key``; True when the key is new to the window."""
        entry = self.keys.get(key)
        if entry is not None:
            if ts > entry[0]:
                entry[0] = ts  # its log entry is moved when it reaches the window's end
            old = entry[2]
            if attrs != old and any(a > o for a, o in zip(attrs, old, strict=True)):
                # A key's attributes are their maximum over its reads in the window (a
                # dataset first read a little, then whole, counts as read whole).
                grown = tuple(max(a, o) for a, o in zip(attrs, old, strict=True))
                sums = self.sums
                for i, (a, o) in enumerate(zip(grown, old, strict=True)):
                    sums[i] += a - o
                entry[2] = grown
            return False
        if len(self.keys) >= self.cap:
            if self.sketch is None:
                self.sketch = OverflowSketch(self.span, self.n_attrs)
            if self.sketch.add(ts, key, category, attrs):
                self._refresh_sketch(self.sketch)
            return True
        self.keys[key] = [ts, category, attrs]
        self.log.append((ts, key))
        sums = self.sums
        for i, value in enumerate(attrs):
            sums[i] += value
        categories = self.categories
        categories[category] = categories.get(category, 0) + 1
        return True

    def expire(self, now: float) -> None:
        horizon = now - self.span
        if self.sketch is not None and self.sketch.expire(now):
            self._refresh_sketch(self.sketch)
        log, keys = self.log, self.keys
        head, end = self.head, len(log)
        if head >= end or log[head][0] >= horizon:
            return  # the common case: nothing left the window since the last read
        get, append = keys.get, log.append
        sums, categories = self.sums, self.categories
        while head < end:
            item = log[head]
            ts = item[0]
            if ts >= horizon:
                break
            head += 1
            key = item[1]
            entry = get(key)
            if entry is None:
                continue
            last = entry[0]
            if last < horizon:
                del keys[key]
                for i, value in enumerate(entry[2]):
                    sums[i] -= value
                category = entry[1]
                left = categories[category] - 1
                if left:
                    categories[category] = left
                else:
                    del categories[category]
            elif last > ts:
                # Read again since it was logged: its single log entry moves to that time.
                append((last, key))
                end += 1
        if head > 32 and head * 2 > len(log):
            del log[:head]
            head = 0
        self.head = head

    def _refresh_sketch(self, sketch: OverflowSketch) -> None:
        """Swap the sketch's old share of ``sums`` for its new estimate."""
        fresh = sketch.refresh()
        old = self.sketch_sums or [0.0] * self.n_attrs
        sums = self.sums
        for i in range(self.n_attrs):
            sums[i] += fresh[i + 1] - old[i]
        self.overflow = int(fresh[0])
        if sketch:
            self.sketch_sums = fresh[1:]
        else:
            self.sketch = self.sketch_sums = None

    @property
    def distinct(self) -> int:
        return len(self.keys) + self.overflow

    @property
    def distinct_categories(self) -> int:
        if self.sketch is None:
            return len(self.categories)
        return len(self.categories.keys() | self.sketch.categories())

    def to_obj(self) -> list[Any]:
        # The sums as they are: summed again in another order they could differ in their
        # last bits, and so would every later feature built on them.
        # (The live lists go as they are: the result is serialised at once.)
        return [
            [[k, e[0], e[1], list(e[2])] for k, e in self.keys.items()],
            self.log[self.head :],
            self.sketch.to_obj() if self.sketch is not None else None,
            self.sums,
            self.overflow,
            self.sketch_sums,
        ]

    @classmethod
    def from_obj(cls, obj: list[Any], span: float, n_attrs: int, cap: int) -> DistinctWindow:
        w = cls(span, n_attrs, cap)
        entries = obj[0]
        w.keys = {key: [ts, category, tuple(attrs)] for key, ts, category, attrs in entries}
        w.categories = dict(Counter([entry[2] for entry in entries]))  # counts: exact anyway
        w.log = [(ts, key) for ts, key in obj[1]]
        w.sums = [float(v) for v in obj[3]]
        if len(w.sums) != n_attrs:
            raise ValueError("window sums do not match the side's attributes")
        if obj[2] is not None:
            w.sketch = OverflowSketch.from_obj(obj[2], span, n_attrs)
            w.overflow = int(obj[4])
            w.sketch_sums = [float(v) for v in obj[5]] if obj[5] is not None else None
        return w


class CountWindow:
    """Sums of per-read quantities (``sides.Counts``: reads, records, bytes, denied) over
    ``span`` seconds, kept in ``span / 30`` buckets."""

    __slots__ = ("buckets", "slot", "span", "sums")

    def __init__(self, span: float, n: int = len(Counts._fields)) -> None:
        self.span = span
        self.slot = span / 30.0
        self.buckets: list[list[float]] = []  # [bucket_index, *values], at most ~31
        self.sums = [0.0] * n

    def add(self, ts: float, values: tuple[float, ...]) -> None:
        index = int(ts // self.slot)
        buckets = self.buckets
        if buckets and buckets[-1][0] >= index:
            target = buckets[-1]
            # A late read lands in the newest bucket: counted, and expires a little late.
        else:
            target = [float(index)] + [0.0] * len(values)
            buckets.append(target)
        sums = self.sums
        for i, value in enumerate(values):
            target[i + 1] += value
            sums[i] += value

    def expire(self, now: float) -> None:
        horizon_index = (now - self.span) // self.slot
        buckets = self.buckets
        while buckets and buckets[0][0] < horizon_index:
            old = buckets.pop(0)
            for i in range(len(self.sums)):
                self.sums[i] -= old[i + 1]
        if not buckets:
            self.sums = [0.0] * len(self.sums)

    def to_obj(self) -> list[Any]:
        return [self.buckets, self.sums]

    @classmethod
    def from_obj(
        cls, obj: list[Any], span: float, n: int = len(Counts._fields)
    ) -> CountWindow:
        w = cls(span, n)
        buckets, sums = obj
        w.buckets = buckets
        w.sums = [float(v) for v in sums]
        if len(w.sums) != n:
            raise ValueError("count sums do not match the side's counts")
        return w


class Memory:
    """Keys seen before (within ``horizon_days``), capped at ``cap`` entries, oldest first out."""

    __slots__ = ("cap", "horizon_days", "seen")

    def __init__(self, cap: int = 4096, horizon_days: int = 45) -> None:
        self.cap = cap
        self.horizon_days = horizon_days
        self.seen: dict[str, int] = {}

    def check_and_add(self, key: str, day: int) -> bool:
        """True when ``key`` was already seen; always records it as seen ``day``."""
        seen = self.seen
        last = seen.get(key)
        if last is not None and day - last <= self.horizon_days:
            if last != day:
                del seen[key]  # move to the back: most recently used
                seen[key] = day
            return True
        if last is not None:
            del seen[key]
        seen[key] = day
        if len(seen) > self.cap:
            del seen[next(iter(seen))]
        return False

    def __len__(self) -> int:
        return len(self.seen)


@dataclass(slots=True)
class HourTracker:
    """The running maximum of some window values within the current clock hour / day.

    When event time enters a new hour (day), the maxima of the finished one are returned
    so they can go into baselines.
    """

    hour: int = -1
    day: int = -1
    hourly_max: list[float] = field(default_factory=list)
    daily_max: list[float] = field(default_factory=list)
    # Whether the entity had an open alert during the current hour / day (such periods do
    # not update its baselines: see ``EntityState.roll_time``).
    alerted_hour: bool = False
    alerted_day: bool = False


@dataclass(slots=True)
class OpenAlert:
    """The one open alert an entity may have (see ``models.alerts``)."""

    alert_id: str
    first_ts: float
    last_ts: float
    revision: int
    severity: str
    breadth: float
    score: float

    def to_obj(self) -> list[Any]:
        return [
            self.alert_id,
            self.first_ts,
            self.last_ts,
            self.revision,
            self.severity,
            self.breadth,
            self.score,
        ]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> OpenAlert:
        return cls(*obj)


SAMPLE_SIZE = 5


class EntityState:
    """One principal's or one resource's state: windows, baselines, novelty memory.

    ``side`` (``models.sides``) says which, and with it what the windows keep per key and
    which metrics have baselines.
    """

    def __init__(
        self,
        side: Side,
        spans: Iterable[float],
        cap: int,
        memory_cap: int,
        alert_skip: float = 2 * DAY,
    ) -> None:
        self.side = side
        self.spans = tuple(spans)
        # A finished hour or day enters the baselines only once it is older than the
        # longest window (``lag``), so the baseline judging time t never contains reads
        # that are still inside t's windows: an exposure building over hours cannot become
        # its own "usual high". Periods with an open alert are left out, for at most
        # ``alert_skip`` after the alert opened (so a legitimately grown entity alerts for
        # that long, then its new level becomes usual one ``lag`` later).
        self.lag = max(self.spans)
        self.alert_skip = alert_skip
        # Finished periods waiting for ``lag``: [end_ts, is_daily, alerted, values].
        self.pending: list[list[Any]] = []
        self.cap = cap
        self.windows = [DistinctWindow(s, side.n_attrs, cap) for s in self.spans]
        self.counts = CountWindow(self.spans[1])
        self.memory = Memory(memory_cap)
        self.hourly = [DecayedHistogram() for _ in side.hourly_metrics]
        self.daily = [DecayedHistogram() for _ in side.daily_metrics]
        self.tracker = HourTracker(
            hourly_max=[0.0] * len(side.hourly_metrics),
            daily_max=[0.0] * len(side.daily_metrics),
        )
        # Hour-of-week activity profile, created on first use (only principals need it).
        self.hour_of_week: array[float] | None = None
        self.hours_peak: float | None = None  # max(hour_of_week), derived, not serialised
        self.watermark = 0.0
        self.events = 0
        self.last_group: str | None = None
        self.open_alert: OpenAlert | None = None
        self.sample: list[list[Any]] = []  # the last SAMPLE_SIZE reads, oldest first
        # The input positions applied (``models.progress``); None where input has none.
        self.applied: AppliedInput | None = None
        # Baselines change only when an hour or day finishes: cache their quantiles.
        self._baselines: dict[tuple[str, float | None], tuple[float, float]] = {}

    # -- serialisation ---------------------------------------------------------------
    # Every part is stored as it is, never as something to recompute on decode (sums summed
    # again in another order differ in their last bits): a decoded state must behave
    # exactly as the one encoded. A new part goes at the end, is read back in ``load_obj``,
    # and ``STATE_LAYOUT`` goes up by one.
    def to_obj(self) -> list[Any]:
        t = self.tracker
        return [
            self.side.name,
            [w.to_obj() for w in self.windows],
            self.counts.to_obj(),
            list(self.memory.seen.items()),
            [h.to_obj() for h in self.hourly],
            [h.to_obj() for h in self.daily],
            [t.hour, t.day, t.hourly_max, t.daily_max],
            list(self.hour_of_week) if self.hour_of_week is not None else None,
            self.watermark,
            self.events,
            self.last_group,
            self.open_alert.to_obj() if self.open_alert else None,
            self.sample,
            [t.alerted_hour, t.alerted_day],
            self.pending,
            self.applied.to_obj() if self.applied else None,
        ]

    def load_obj(self, obj: list[Any]) -> None:
        self.windows = [
            DistinctWindow.from_obj(o, s, self.side.n_attrs, self.cap)
            for o, s in zip(obj[1], self.spans, strict=True)
        ]
        self.counts = CountWindow.from_obj(obj[2], self.spans[1])
        self.memory.seen = {k: int(d) for k, d in obj[3]}
        self.hourly = [DecayedHistogram.from_obj(o) for o in obj[4]]
        self.daily = [DecayedHistogram.from_obj(o) for o in obj[5]]
        hour, day, hourly_max, daily_max = obj[6]
        self.tracker = HourTracker(hour, day, list(hourly_max), list(daily_max))
        self.hour_of_week = array("f", obj[7]) if obj[7] is not None else None
        self.watermark, self.events, self.last_group = obj[8], obj[9], obj[10]
        self.open_alert = OpenAlert.from_obj(obj[11]) if obj[11] else None
        self.sample = list(obj[12])
        self.tracker.alerted_hour, self.tracker.alerted_day = obj[13]
        self.pending = [list(p) for p in obj[14]]
        self.applied = AppliedInput.from_obj(obj[15]) if obj[15] is not None else None

    # -- baselines -------------------------------------------------------------------
    def _alerted(self, since: float) -> bool:
        """Whether an alert that still suppresses baseline updates was open after ``since``."""
        alert = self.open_alert
        return (
            alert is not None
            and alert.last_ts >= since
            and self.watermark - alert.first_ts < self.alert_skip
        )

    def roll_time(self, ts: float) -> list[tuple[str, float]]:
        """Advance the hour/day trackers to ``ts``; return the finished (metric, max) samples.

        Finished periods wait in ``pending`` until they are ``lag`` old, then update the
        baselines, unless the entity had an open alert in them.
        """
        t = self.tracker
        hour = int(ts // HOUR)
        finished: list[tuple[str, float]] = []
        if hour <= t.hour:
            return finished
        self._baselines.clear()
        if t.hour >= 0:
            alerted = t.alerted_hour or self._alerted(t.hour * HOUR)
            self.pending.append([(t.hour + 1) * HOUR, False, alerted, t.hourly_max])
            for i, name in enumerate(self.side.hourly_metrics):
                finished.append((name, t.hourly_max[i]))
        t.hour = hour
        t.hourly_max = [0.0] * len(self.side.hourly_metrics)
        t.alerted_hour = False
        day = int(ts // DAY)
        if day > t.day:
            if t.day >= 0:
                alerted = t.alerted_day or self._alerted(t.day * DAY)
                self.pending.append([(t.day + 1) * DAY, True, alerted, t.daily_max])
                for i, name in enumerate(self.side.daily_metrics):
                    finished.append((name, t.daily_max[i]))
            t.day = day
            t.daily_max = [0.0] * len(self.side.daily_metrics)
            t.alerted_day = False
        self._promote(ts)
        return finished

    def _promote(self, now: float) -> None:
        """Move pending periods older than ``lag`` into the baselines."""
        pending = self.pending
        ready = 0
        horizon = now - self.lag
        while ready < len(pending) and pending[ready][0] <= horizon:
            end_ts, daily, alerted, values = pending[ready]
            ready += 1
            if alerted:
                continue
            if daily:
                sample_day = int(end_ts // DAY) - 1
                for i, value in enumerate(values):
                    self.daily[i].add(value, sample_day)
            else:
                sample_day = int((end_ts - HOUR) // DAY)
                for i, value in enumerate(values):
                    self.hourly[i].add(value, sample_day)
        if ready:
            del pending[:ready]

    def track(self, metrics: Mapping[str, float]) -> None:
        """Raise this hour's and day's maxima of the side's baseline metrics."""
        if self.open_alert is not None and self._alerted(self.watermark - HOUR):
            self.tracker.alerted_hour = self.tracker.alerted_day = True
        hourly_max = self.tracker.hourly_max
        for i, name in enumerate(self.side.hourly_metrics):
            value = metrics[name]
            if value > hourly_max[i]:
                hourly_max[i] = value
        daily_max = self.tracker.daily_max
        for i, name in enumerate(self.side.daily_metrics):
            value = metrics[name]
            if value > daily_max[i]:
                daily_max[i] = value

    @property
    def finished_hours(self) -> float:
        """The (decayed) number of finished hours in the own baselines."""
        return self.hourly[0].total

    def baseline(self, metric: str, q: float | None) -> tuple[float, float]:
        """(quantile, weight) of an hourly or daily metric's own finished hours/days; with
        ``q`` None, (mean, weight)."""
        cached = self._baselines.get((metric, q))
        if cached is not None:
            return cached
        side = self.side
        if metric in side.hourly_metrics:
            hist = self.hourly[side.hourly_metrics.index(metric)]
        else:
            hist = self.daily[side.daily_metrics.index(metric)]
        value = hist.mean() if q is None else hist.quantile(q)
        result = self._baselines[(metric, q)] = (value, hist.total)
        return result

    def remember(self, read: list[Any]) -> None:
        """Keep ``read`` in the bounded sample of recent reads (data minimisation)."""
        sample = self.sample
        sample.append(read)
        if len(sample) > SAMPLE_SIZE:
            del sample[0]

    def size(self) -> int:
        """Rough number of remembered keys (for state-size metrics and caps)."""
        return sum(len(w.keys) for w in self.windows) + len(self.memory)


# One compressor, used from one thread: the worker's event loop or an offline process.
_COMPRESSOR = zstandard.ZstdCompressor(level=1)
_DECOMPRESSOR = zstandard.ZstdDecompressor()
# Encoded states start with this tag and the state's watermark (big-endian float64), so
# the worker's idle sweep reads an entity's last event time without decompressing it. The
# tag's last byte is the layout: bumped whenever what ``to_obj`` writes changes shape (2:
# the principal side's heavy-read attribute and its hourly baseline; 3: its daily baseline
# of new sensitive outside datasets; 4: the input positions applied; 5: every part stored
# verbatim, window sums included, so that a decoded state behaves exactly as the one
# encoded), so a state written by another version is refused as such instead of failing
# deep inside a batch.
_TAG = b"RW"
STATE_LAYOUT = 5
_HEADER = _TAG + bytes([STATE_LAYOUT])
_WATERMARK = struct.Struct(">d")
_PAYLOAD_AT = len(_HEADER) + _WATERMARK.size


def encode_state(state: EntityState) -> bytes:
    """Serialise a state for a raw-bytes table: a small header holding its watermark
    (``state_watermark``), then zstd-compressed JSON, never pickle.

    Windows and histograms are repetitive JSON that compresses 3-4x even at the fastest
    level, and tables hold one of these per principal and per resource. (Compressing
    also copies the result out of orjson's output buffer, which keeps 4-8 KB per result.)
    """
    raw = orjson.dumps(
        [state.spans, state.cap, state.memory.cap, state.to_obj(), state.alert_skip]
    )
    return _HEADER + _WATERMARK.pack(state.watermark) + _COMPRESSOR.compress(raw)


class StateLayoutError(ValueError):
    """An encoded state of another layout than this version reads."""


def _check_header(raw: bytes, any_layout: bool = False) -> None:
    if raw[: len(_TAG)] != _TAG or len(raw) < _PAYLOAD_AT:
        raise ValueError("not an encoded reachwatch state (unknown header)")
    if not any_layout and raw[len(_TAG)] != STATE_LAYOUT:
        raise StateLayoutError(
            f"a state of layout {raw[len(_TAG)]}; this version reads layout {STATE_LAYOUT}"
        )


def state_watermark(raw: bytes) -> float:
    """The event time of an encoded state's latest read, read without decoding it (from
    any layout: the idle sweep also expires states an older version wrote)."""
    _check_header(raw, any_layout=True)
    return float(_WATERMARK.unpack_from(raw, len(_HEADER))[0])


def decode_state(raw: bytes) -> EntityState:
    """Inverse of ``encode_state``."""
    _check_header(raw)
    spans, cap, memory_cap, obj, *rest = orjson.loads(
        _DECOMPRESSOR.decompress(raw[_PAYLOAD_AT:])
    )
    state = EntityState(BY_NAME[obj[0]], spans, cap, memory_cap, *rest)
    state.load_obj(obj)
    return state


def idle_horizon(now: float, ttl_days: float) -> float:
    """The one idle rule: an entity whose watermark is before this, at event time ``now``,
    had no read for longer than ``ttl_days`` and is forgotten."""
    return now - ttl_days * DAY


def is_idle(watermark: float, now: float, ttl_days: float) -> bool:
    return watermark < idle_horizon(now, ttl_days)
