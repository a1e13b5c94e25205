"""Forwarding: input messages -> validated events, aligned in event time -> envelopes.

The ingest agent hands every input message to ``Forwarder.take``; its events wait in a
release buffer until the frontier (the slowest active input partition,
``streams.service.alignment``) passes them, then leave in event-time order as one
envelope per internal partition and side. Every envelope also reports the frontier, so the
scoring side can apply the same rule (``streams.service.scoring``); when the frontier moves
without events (a partition went idle), envelopes holding only the report go out.

A message is acknowledged (``done``) only once all its events are in envelopes the broker
acknowledged, and its dead letter too: a crash replays it instead of losing it.

The input commit lags what was forwarded (Faust commits acknowledged offsets on a timer), so
after a crash or a rebalance the next reader of a partition forwards some events again.
Each reading of a partition is an *epoch*; envelopes carry every event's input position
and, per source, what the sender's epoch has sent so far (its claim, ``envelopes.Claim``),
so the scorers recognise the repeats instead of judging them late or counting them twice.
A claim goes out with the step after the one it describes: steps run one at a time and
each awaits its sends, so what a claim covers has been acknowledged by the broker.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reachwatch.models.errors import SchemaError
from reachwatch.models.grants import GRANT_ACTIONS
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.messages import read_message
from reachwatch.streams.service.alignment import IDLE, NOT_YET, UNKNOWN, SourceClocks
from reachwatch.streams.service.chunks import records_of
from reachwatch.streams.service.deadletter import DeadLetter, redaction_for
from reachwatch.streams.service.delivery import in_order
from reachwatch.streams.service.envelopes import (
    MAX_ENVELOPE_EVENTS,
    Claim,
    Forwarded,
    encode_envelope,
)
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.release import ReleaseBuffer
from reachwatch.streams.service.settings import Settings
from reachwatch.streams.service.topics import ServiceTopics, partition_of

Send = Callable[[], Awaitable[Any]]
# A source silent for this many alignment ticks is idle: the agents tick every
# alignment_idle_timeout / IDLE_TICKS seconds.
IDLE_TICKS = 4


def source_of(message: Any) -> str:
    """The alignment source of an input message: its topic and partition."""
    return f"{message.topic}:{message.partition}"


@dataclass
class Outgoing:
    """What one step produces: sends to await, then holders to acknowledge."""

    envelopes: list[Send] = field(default_factory=list)
    dead_letters: list[Send] = field(default_factory=list)
    done: list[Any] = field(default_factory=list)


class Forwarder:
    """Validates input, holds events until the frontier passes them, builds envelopes."""

    def __init__(
        self,
        settings: Settings,
        chain: Chain,
        topics: ServiceTopics,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.chain = chain
        self.topics = topics
        self.metrics = metrics
        self.sources = SourceClocks(settings.alignment_max_drift, IDLE_TICKS)
        self.held: ReleaseBuffer[Forwarded] = ReleaseBuffer()
        self.messages_in = 0
        # What was last reported to the internal partitions.
        self.reported: dict[str, float] = {}
        # In the worker: hold everything until the consumer's assignment is known, or the
        # first partition to deliver would set a frontier the others are then late for.
        self.await_assignment = False
        # Input partitions of all input topics (0: unknown), reported with every envelope.
        self.total_sources = 0
        # Offset of the last message taken per source (is anything left to read?).
        self.last_offset: dict[str, int] = {}
        # This reading of each source, and what it had sent as of the previous step.
        self.epochs: dict[str, str] = {}
        self.claimed: dict[str, Claim] = {}

    def take(
        self,
        holders: Sequence[Any],
        message_of: Callable[[Any], Any] = lambda h: h,
    ) -> list[Send]:
        """Admit the messages of ``holders`` (Faust events, or messages): events are held,
        rejects become dead letters (returned, to be awaited before anything is acked)."""
        received = time.time()
        dead_letters: list[Send] = []
        counter = self.metrics.events_consumed
        for holder in holders:
            holder_message = message_of(holder)
            source = source_of(holder_message)
            if source not in self.epochs:
                self.epochs[source] = secrets.token_hex(4)
            items = []
            # A chunk stands for a run of records, each a message of its own (``chunks``).
            for message in records_of(holder_message):
                self.last_offset[source] = message.offset
                intake = read_message(message.value, self.chain)
                self.messages_in += 1
                if intake.skipped:
                    counter.labels(topic=message.topic, outcome="skipped").inc(intake.skipped)
                if intake.rejected is not None:
                    dead_letters.append(self._dead_letter(message, intake.rejected))
                for access in intake.events:
                    self.metrics.record_event_lag(access.ts, received)
                    self.sources.observe(source, access.ts)
                    if access.action in GRANT_ACTIONS:  # about the resource only, never scored
                        counter.labels(topic=message.topic, outcome="grant").inc()
                    forwarded = Forwarded(
                        access, message.topic, received, message.partition, message.offset
                    )
                    items.append((access.ts, forwarded))
            self.held.put(holder, items, key=id(holder))
        return dead_letters

    def release(self) -> Outgoing:
        """Envelopes for every held event the frontier passed, and the emptied holders."""
        frontier = UNKNOWN if self.await_assignment else self.sources.frontier()
        released = self.held.release(frontier)
        out = Outgoing(done=self.held.done())
        report = self._report(frontier)
        moved = report != self.reported
        if released or moved:
            out.envelopes = self._envelopes(released, report, broadcast=moved)
            self.reported = report
        self._claim(frontier)
        self.metrics.events_held.labels(stage="ingest").set(len(self.held))
        return out

    def _claim(self, frontier: float) -> None:
        """What each source's epoch has sent once this step's envelopes are delivered: every
        event read so far at or before ``frontier`` (the buffer holds only later ones)."""
        if frontier <= UNKNOWN or frontier >= IDLE:
            return
        for source, epoch in self.epochs.items():
            offset = self.last_offset.get(source)
            old = self.claimed.get(source)
            # Kept monotone (a frontier can step back when a partition wakes): the older,
            # wider claim stays true and is kept until the frontier passes it again.
            if offset is not None and (old is None or frontier >= old.frontier):
                self.claimed[source] = Claim(epoch, offset, frontier)

    def final_claims(self) -> list[Send]:
        """As the worker stops: one envelope per internal partition and side with no events,
        carrying every source's claim as of the last step (all of whose sends were awaited),
        so whoever reads the input again knows what this reading sent."""
        if not self.claimed:
            return []
        return self._envelopes([], self.reported, broadcast=True)

    def claims(self) -> dict[str, Claim]:
        """Per source its epoch and what that epoch had sent as of the previous step."""
        claimed = self.claimed
        return {
            source: claimed[source] if source in claimed else Claim(epoch)
            for source, epoch in self.epochs.items()
        }

    def leave(self, sources: set[str]) -> None:
        """Forget revoked ``sources``: a later reading of one is a new epoch."""
        for source in sources:
            self.epochs.pop(source, None)
            self.claimed.pop(source, None)
            self.last_offset.pop(source, None)

    def _report(self, frontier: float) -> dict[str, float]:
        """Per source, the frontier up to which its events are sent; an idle source holds
        nothing back (``IDLE``), even one that never delivered (an empty partition)."""
        if self.await_assignment:
            return {}
        sources = self.sources
        pending = frontier if frontier > UNKNOWN else NOT_YET
        return {source: IDLE if sources.idle(source) else pending for source in sources.clocks}

    def ahead(self) -> set[str]:
        """Sources to pause: more than the alignment bound ahead of the frontier."""
        return self.sources.ahead()

    def describe(self) -> dict[str, Any]:
        """Per source: its watermark, whether it is idle or has a backlog (for the log)."""
        sources = self.sources
        return {
            source: (clock.watermark, "idle" if sources.idle(source) else "active")
            for source, clock in sorted(sources.clocks.items())
        }

    def skew(self) -> float:
        marks = [c.watermark for c in self.sources.clocks.values() if c.watermark > UNKNOWN]
        return max(marks) - min(marks) if marks else 0.0

    def _envelopes(
        self, items: Sequence[Forwarded], report: dict[str, float], broadcast: bool
    ) -> list[Send]:
        partitions = self.settings.partitions
        claims = self.claims()  # computed before this step's own claim (``_claim``)
        sends: list[Send] = []
        for topic, key_of in (
            (self.topics.by_principal, _principal),
            (self.topics.by_resource, _resource),
        ):
            groups: dict[int, list[Forwarded]] = {}
            for item in items:
                if topic is self.topics.by_principal and item.event.action in GRANT_ACTIONS:
                    continue  # a grant is about the resource: the principal side never sees it
                groups.setdefault(partition_of(key_of(item).encode(), partitions), []).append(item)
            targets = range(partitions) if broadcast else sorted(groups)
            for partition in targets:
                group = groups.get(partition, [])
                starts = range(0, max(len(group), 1), MAX_ENVELOPE_EVENTS)
                for start in starts:
                    # Split in event-time order: a scorer may release what one part holds
                    # before the next arrives, so only the last part reports this step's
                    # frontier; the others repeat what every partition already had, capped
                    # below the next part's first event (``_before``).
                    end = start + MAX_ENVELOPE_EVENTS
                    value = encode_envelope(
                        group[start:end],
                        report if start == starts[-1] else _before(self.reported, group[end]),
                        self.total_sources,
                        claims,
                    )
                    sends.append(_sender(topic, value, partition))
        return sends

    def _dead_letter(self, message: Any, error: SchemaError) -> Send:
        self.metrics.events_consumed.labels(topic=message.topic, outcome="invalid").inc()
        self.metrics.events_dead_lettered.labels(reason=error.code).inc()
        letter = DeadLetter(
            reason=error.code,
            detail=error.detail,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            value=message.value,
            key=message.key,
            message_ts=message.timestamp,
            rejected_ts=time.time(),
            value_limit=self.settings.max_message_bytes,
            redaction=redaction_for(self.chain.pseudonymizer),  # none when pseudonymising
        )
        topic, key, value = self.topics.dead_letters, letter.wire_key, letter.encode()
        return lambda: topic.send(key=key, value=value)

    def forget(self, keep: Callable[[Any], bool]) -> None:
        """Drop held events of revoked partitions (their messages are replayed elsewhere)."""
        self.held.drop(keep)


def _before(reported: dict[str, float], following: Forwarded) -> dict[str, float]:
    """What a part of a split envelope reports: the frontiers every partition already had,
    each below the event time of the next part's first event.

    An event carries the frontier reported with it, and a scorer records "every event of
    this source up to its offset and that frontier is applied" (``scoring``). Events read
    behind the frontier already reported (a source that was idle, or read late) all leave
    in this step, in event-time order, so such an event in a later part may sit at a lower
    offset than one in this part: reported as it was, this part's frontier would make the
    scorer take it for applied and skip it as a repeat. Below the next part's first event
    time no later part has an event. (The parts must also arrive in order: ``in_order``;
    out of order, a whole part of 1,000 reads was skipped or judged late in a catch-up.)
    """
    cap = math.nextafter(following.event.ts, -math.inf)
    return {source: min(frontier, cap) for source, frontier in reported.items()}


def _principal(item: Forwarded) -> str:
    return item.event.principal


def _resource(item: Forwarded) -> str:
    return item.event.resource


def _sender(topic: Any, value: bytes, partition: int) -> Send:
    # The parts of a split envelope must reach their partition in order (``_envelopes``).
    return in_order(lambda: topic.send(value=value, partition=partition), (id(topic), partition))
