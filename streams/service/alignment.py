"""Event-time alignment across the partitions an agent reads (Flink's watermark alignment).

Partitions are consumed at different speeds: during a catch-up one input partition can be
hours of event time ahead of another. Judged against the fastest, the others' reads look
late; judged per entity, a resource read by principals of several partitions sees its
clock pushed ahead by whichever partition is fastest. So the service keeps one clock per
*source* (an input partition) and a *frontier*: the slowest active source's clock, i.e.
the event time up to which every source has delivered. Only events at or before the
frontier are released to the scoring core, in event-time order, so each entity sees its
reads in the order the offline replay sorts them.

A source is *idle* when nothing came from it for ``idle_ticks`` ticks of the agent's
alignment timer (``alignment_idle_timeout`` seconds apart in all): an idle source does not
hold the frontier back (a quiet partition must not stall the others). Ticks, not wall time:
a timer that fires late because a scoring batch held the event loop counts once, so a
partition that had no chance to deliver is not taken for a quiet one. Nor is a source known
to hold unread messages (``set_backlog``, from the broker's end offsets): the embedded
broker can starve a partition's fetches for seconds during a catch-up. Sources running more
than ``max_drift`` seconds of event time ahead of the frontier are to be paused until it
catches up, which bounds what the release buffer holds.

>>> sources = SourceClocks(max_drift=150.0, idle_ticks=2)
>>> sources.observe("in:0", 1000.0); sources.observe("in:1", 900.0)
>>> sources.set_backlog("in:0", False); sources.set_backlog("in:1", False)
>>> sources.frontier()
900.0
>>> sorted(sources.ahead())
[]
>>> sources.observe("in:0", 1100.0)
>>> sources.ahead()
{'in:0'}
>>> sources.tick(); sources.observe("in:0", 1100.0); sources.tick()  # in:1 silent twice
>>> sources.frontier()
1100.0
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reachwatch.streams.service.envelopes import Claim, Envelope, Forwarded

# What a source that never delivered reports: it holds the frontier back until it is idle.
UNKNOWN = -math.inf
# What an idle source is reported at: it holds nothing back (finite, for JSON).
IDLE = sys.float_info.max
# What a source that has not delivered yet is reported at: it holds everything back. A
# report for every assigned source overwrites what an earlier owner reported (IDLE, say).
NOT_YET = -sys.float_info.max
# A source whose backlog is unknown is idle only after this many times the idle ticks.
UNKNOWN_BACKLOG_FACTOR = 10
# Earlier readings (epochs) of one source whose claims a scorer remembers: one per restart
# or rebalance that moved the source since the scorer started.
KEPT_EPOCHS = 8


@dataclass(slots=True)
class SourceClock:
    """One source's event-time clock and the ticks since it last delivered."""

    watermark: float
    silent: int = 0
    backlog: bool | None = None  # None: not known yet


class SourceClocks:
    """Per-source watermarks, the frontier over the active ones, and who runs ahead."""

    def __init__(self, max_drift: float, idle_ticks: int) -> None:
        self.max_drift = max_drift
        self.idle_ticks = idle_ticks
        self.clocks: dict[str, SourceClock] = {}

    def assign(self, sources: Iterable[str]) -> None:
        """Track exactly ``sources`` (a rebalance): new ones start unknown, gone ones leave."""
        wanted = set(sources)
        for gone in set(self.clocks) - wanted:
            del self.clocks[gone]
        for source in wanted - set(self.clocks):
            self.clocks[source] = SourceClock(UNKNOWN)

    def observe(self, source: str, ts: float) -> None:
        """An event of ``source`` at event time ``ts`` arrived."""
        clock = self.clocks.get(source)
        if clock is None:
            self.clocks[source] = SourceClock(ts)
        else:
            if ts > clock.watermark:
                clock.watermark = ts
            clock.silent = 0

    def tick(self, paused: Iterable[str] = ()) -> None:
        """One beat of the alignment timer: every source is silent one tick longer, except
        the ``paused`` ones (silent because we hold them back, not because they are quiet)."""
        held = set(paused)
        for source, clock in self.clocks.items():
            if source not in held:
                clock.silent += 1

    def set_backlog(self, source: str, backlog: bool) -> None:
        """Whether ``source`` is known to hold unread messages (then it is never idle)."""
        clock = self.clocks.get(source)
        if clock is not None:
            clock.backlog = backlog

    def idle(self, source: str) -> bool:
        clock = self.clocks[source]
        if clock.backlog is None:
            # Nobody could tell whether it has unread messages (the broker did not answer
            # yet): take it for quiet only after much longer.
            return clock.silent >= self.idle_ticks * UNKNOWN_BACKLOG_FACTOR
        return clock.silent >= self.idle_ticks and not clock.backlog

    def frontier(self) -> float:
        """Event time every active source has reached; with all idle, the latest of all.

        ``-inf`` while an active source has not delivered anything yet.
        """
        active = [c.watermark for s, c in self.clocks.items() if not self.idle(s)]
        if active:
            return min(active)
        known = [c.watermark for c in self.clocks.values()]
        return max(known) if known else UNKNOWN

    def ahead(self) -> set[str]:
        """Active sources more than ``max_drift`` ahead of the frontier: to be paused."""
        frontier = self.frontier()
        if frontier == UNKNOWN:
            # Someone has not delivered yet (the broker may be starving its fetches): hold
            # back everyone who has, so it gets the fetches.
            return {s for s, c in self.clocks.items() if c.watermark > UNKNOWN and not self.idle(s)}
        return {
            s
            for s, c in self.clocks.items()
            if c.watermark > frontier + self.max_drift and not self.idle(s)
        }


@dataclass(slots=True)
class UpstreamFrontiers:
    """What the envelopes of one internal partition say about their input sources.

    Every envelope carries, per input source its sender reads, the frontier up to which the
    sender has sent that source's events, and how many input sources there are in all. The
    partition's frontier is the smallest of the latest reports, and unknown until every
    source has been reported on: with several workers ingesting each reports its own
    sources, and a worker restarting while a dead one still holds some input partitions
    must not run ahead of those (they are read again from their committed offsets).

    >>> upstream = UpstreamFrontiers.empty()
    >>> upstream.update({"in:0": 50.0}, sources=2); upstream.frontier()
    -inf
    >>> upstream.update({"in:1": 40.0}, sources=2); upstream.frontier()
    40.0

    Envelopes also carry each sender's claims (``envelopes.Claim``): an event that an earlier
    reading of its source claims to have sent is a repeat, forwarded again by a worker that
    read the source from an older committed offset.

    >>> from reachwatch.models.records import AccessEvent
    >>> upstream.update({}, claims={"in:0": Claim("old", offset=9, frontier=50.0)})
    >>> again = Forwarded(AccessEvent(ts=45.0, principal="ana", resource="r"), "in", 0.0, 0, 7)
    >>> upstream.repeated(again, "new"), upstream.repeated(again, "old")
    (True, False)
    """

    reports: dict[str, float]
    sources: int = 0
    # Per source, per epoch: the latest claim seen (claims of one epoch only ever grow).
    claims: dict[str, dict[str, Claim]] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> UpstreamFrontiers:
        return cls({})

    def update(
        self,
        report: Mapping[str, float],
        sources: int = 0,
        claims: Mapping[str, Claim] | None = None,
    ) -> None:
        self.reports.update(report)
        if sources:
            self.sources = sources
        for source, claim in (claims or {}).items():
            if claim.offset < 0:
                continue
            epochs = self.claims.setdefault(source, {})
            # Popped and re-inserted: the most recently heard epochs are the ones kept.
            known = epochs.pop(claim.epoch, None)
            if known is not None and known.offset >= claim.offset and (
                known.frontier >= claim.frontier
            ):
                # An envelope sent again out of order: the wider claim stays. Only when it
                # is wider in both: a source held back (paused ahead of the frontier) keeps
                # its offset while the frontier, and so what it has sent, grows.
                claim = known
            epochs[claim.epoch] = claim
            while len(epochs) > KEPT_EPOCHS:
                del epochs[next(iter(epochs))]

    def admit(self, envelope: Envelope) -> list[Forwarded]:
        """Take in ``envelope``'s reports and claims; its events, less the repeats."""
        self.update(envelope.frontiers, envelope.sources, envelope.claims)
        claims = envelope.claims
        if not self.claims:
            return envelope.items
        return [
            item
            for item in envelope.items
            if not self.repeated(item, claims[item.source].epoch if item.source in claims else None)
        ]

    def repeated(self, item: Forwarded, epoch: str | None) -> bool:
        """Whether another epoch than ``epoch`` (the one that sent ``item``) claims to have
        sent ``item`` already."""
        if epoch is None or item.offset < 0:
            return False
        epochs = self.claims.get(item.source)
        if not epochs:
            return False
        ts = item.event.ts
        return any(
            other != epoch and claim.covers(item.offset, ts) for other, claim in epochs.items()
        )

    def frontier(self) -> float:
        """``IDLE`` when every source is idle: then everything held may go."""
        if not self.reports or len(self.reports) < self.sources:
            return UNKNOWN
        lowest = min(self.reports.values())
        return UNKNOWN if lowest <= NOT_YET else lowest
