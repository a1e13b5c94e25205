"""Event-time alignment without Kafka: clocks, the release buffer, forwarding and scoring."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import orjson
from support.tinyorg import history as tiny_history_events
from support.topics import RecordingTopic

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.sides import RESOURCE
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.service.alignment import (
    UNKNOWN,
    UNKNOWN_BACKLOG_FACTOR,
    SourceClocks,
    UpstreamFrontiers,
)
from reachwatch.streams.service.delivery import deliver_all
from reachwatch.streams.service.envelopes import (
    Claim,
    Forwarded,
    encode_envelope,
    read_envelope,
)
from reachwatch.streams.service.forwarding import Forwarder
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.publisher import AlertPublisher
from reachwatch.streams.service.recent import RecentAlerts
from reachwatch.streams.service.release import ReleaseBuffer
from reachwatch.streams.service.scoring import SideScorer
from reachwatch.streams.service.settings import Settings
from reachwatch.streams.service.topics import ServiceTopics


def test_the_frontier_is_the_slowest_active_source_and_an_unknown_one_holds_it():
    sources = SourceClocks(max_drift=100.0, idle_ticks=4)
    sources.assign(["in:0", "in:1"])
    sources.observe("in:0", 5000.0)
    assert sources.frontier() == UNKNOWN  # in:1 has said nothing yet
    assert sources.ahead() == {"in:0"}  # held back so that in:1 gets the fetches
    sources.observe("in:1", 1000.0)
    assert sources.frontier() == 1000.0
    assert sources.ahead() == {"in:0"}


def test_a_source_is_idle_after_silent_ticks_and_active_again_when_it_delivers():
    sources = SourceClocks(max_drift=100.0, idle_ticks=2)
    sources.observe("in:0", 5000.0)
    sources.observe("in:1", 1000.0)
    sources.set_backlog("in:1", False)
    sources.tick()
    sources.observe("in:0", 6000.0)
    assert sources.frontier() == 1000.0  # one silent tick: not idle yet
    sources.tick()
    assert sources.frontier() == 6000.0  # idle: no longer holds in:0 back
    sources.observe("in:1", 1001.0)
    assert sources.frontier() == 1001.0


def test_a_silent_source_with_unread_messages_is_not_idle():
    sources = SourceClocks(max_drift=100.0, idle_ticks=1)
    sources.observe("in:0", 5000.0)
    sources.observe("in:1", 1000.0)
    sources.set_backlog("in:1", True)  # the broker holds more than it has delivered
    sources.tick()
    sources.observe("in:0", 6000.0)
    assert sources.frontier() == 1000.0
    sources.set_backlog("in:1", False)
    assert sources.frontier() == 6000.0


def test_a_paused_source_is_not_taken_for_a_quiet_one():
    sources = SourceClocks(max_drift=100.0, idle_ticks=1)
    sources.observe("in:0", 5000.0)
    sources.observe("in:1", 1000.0)
    sources.tick(paused={"in:0"})
    sources.observe("in:1", 1001.0)
    assert not sources.idle("in:0")
    assert sources.ahead() == {"in:0"}


def test_a_source_nobody_could_vouch_for_is_idle_only_much_later():
    sources = SourceClocks(max_drift=100.0, idle_ticks=2)
    sources.observe("in:0", 5000.0)
    sources.observe("in:1", 1000.0)
    for _ in range(2 * UNKNOWN_BACKLOG_FACTOR - 1):
        sources.tick()
    assert not sources.idle("in:1")
    sources.tick()
    assert sources.idle("in:1")


def test_release_buffer_keeps_arrival_order_for_equal_times_and_drops_revoked_holders():
    buffer: ReleaseBuffer[str] = ReleaseBuffer()
    buffer.put("p0", [(1.0, "a"), (2.0, "b")])
    buffer.put("p1", [(1.0, "c"), (3.0, "d")])
    assert buffer.release(1.0) == ["a", "c"]
    assert buffer.drop(lambda holder: holder != "p1") == 1
    assert buffer.release(10.0) == ["b"]
    assert buffer.done() == ["p0"]
    assert len(buffer) == 0




def _message(event: Any, partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(
        value=orjson.dumps(event.to_json()),
        topic="in",
        partition=partition,
        offset=offset,
        key=None,
        timestamp=0.0,
    )


def _step(forwarder: Forwarder, messages: list[Any]) -> list[Any]:
    async def run() -> list[Any]:
        forwarder.take(messages)
        out = forwarder.release()
        await deliver_all(out.envelopes, forwarder.metrics, "envelope")
        return out.done

    return asyncio.run(run())


def test_forwarding_holds_a_fast_partition_until_the_slow_one_catches_up():
    topics = ServiceTopics(*(RecordingTopic() for _ in range(5)))
    forwarder = Forwarder(
        Settings(partitions=1, alignment_max_drift=60.0),
        Chain(get_adapter("native"), limits=Settings().limits),
        topics,
        Metrics(),
    )
    base = tiny_history_events()[0]
    fast = [_message(dataclasses.replace(base, ts=base.ts + 600.0 * i), 0, i) for i in range(5)]
    slow = [_message(dataclasses.replace(base, ts=base.ts + 1.0), 1, 0)]
    forwarder.sources.assign(["in:0", "in:1"])
    # Partition 1 has not delivered: nothing leaves, nothing is acknowledged.
    assert _step(forwarder, fast) == []
    assert forwarder.ahead() == {"in:0"}  # until in:1 delivers
    done = _step(forwarder, slow)
    assert {(m.partition, m.offset) for m in done} == {(0, 0), (1, 0)}
    assert forwarder.ahead() == {"in:0"}  # 2,400 s ahead of in:1, bound 60 s
    sent = [read_envelope(s["value"]) for s in topics.by_resource.sent]
    released = [item.event.ts - base.ts for env in sent for item in env.items]
    assert released == [0.0, 1.0]  # in event-time order, across partitions
    assert sent[-1].frontiers == {"in:0": base.ts + 1.0, "in:1": base.ts + 1.0}
    # in:1 goes quiet: idle after a few silent ticks, and the rest leaves in order.
    forwarder.sources.set_backlog("in:1", False)  # nothing left to read
    for _ in range(4):
        forwarder.sources.tick()
    forwarder.sources.observe("in:0", base.ts + 2400.0)  # in:0 is still there
    done = _step(forwarder, [])
    assert sorted(m.offset for m in done) == [1, 2, 3, 4]
    assert forwarder.ahead() == set()


def _scorer(model: Any) -> tuple[SideScorer, RecordingTopic]:
    alerts = RecordingTopic()
    metrics = Metrics()
    publisher = AlertPublisher(alerts, metrics, RecentAlerts())
    pipeline = Pipeline(model)
    return SideScorer(RESOURCE, lambda: pipeline, {}, publisher, metrics, 100, "in"), alerts


def _envelope(events: list[Any], frontier: float, partition: int = 0) -> SimpleNamespace:
    items = [Forwarded(e, "in", 0.0) for e in events]
    return SimpleNamespace(value=encode_envelope(items, {"in:0": frontier}), partition=partition)


def test_scoring_judges_lateness_against_the_released_frontier_not_the_entity(tiny_model):
    scorer, _ = _scorer(tiny_model)
    base = tiny_history_events()[0]
    lateness = tiny_model.config.allowed_lateness

    def at(offset: float, principal: str) -> Any:
        return dataclasses.replace(base, ts=base.ts + offset, principal=principal)

    first = [at(0.0, "a"), at(10_000.0, "b")]
    scorer.take([_envelope(first, base.ts + 10_000.0)])
    released, watermark, _ = scorer.release()
    assert [f.event.principal for f in released] == ["a", "b"] and watermark is None
    asyncio.run(scorer.score(released, watermark))
    # An envelope whose reads are far behind what was already released: late, counted.
    behind = [at(10_000.0 - lateness - 1.0, "c"), at(10_000.0 - lateness / 2, "d")]
    scorer.take([_envelope(behind, base.ts + 10_000.0)])
    released, watermark, _ = scorer.release()
    result = asyncio.run(scorer.score(released, watermark))
    assert watermark == base.ts + 10_000.0
    assert [e.principal for e in result.late_events] == ["c"]
    late = scorer.metrics.events_late.labels(side="resource")._value.get()
    scored = scorer.metrics.events_scored.labels(side="resource")._value.get()
    assert (late, scored) == (1.0, 3.0)


def test_scoring_holds_an_envelope_until_its_events_are_released(tiny_model):
    scorer, _ = _scorer(tiny_model)
    base = tiny_history_events()[0]
    later = dataclasses.replace(base, ts=base.ts + 100.0)
    # Another sender (input source in:1) has only reached base.ts.
    ahead = SimpleNamespace(
        value=encode_envelope([Forwarded(later, "in", 0.0)], {"in:0": later.ts}), partition=0
    )
    behind = SimpleNamespace(
        value=encode_envelope([Forwarded(base, "in", 0.0)], {"in:1": base.ts}), partition=0
    )
    scorer.take([ahead, behind])
    released, _, done = scorer.release()
    assert [f.event.ts for f in released] == [base.ts]
    assert done == [behind]
    scorer.take([SimpleNamespace(value=encode_envelope([], {"in:1": later.ts}), partition=0)])
    released, _, done = scorer.release()
    assert [f.event.ts for f in released] == [later.ts]
    assert len(done) == 2 and ahead in done


def test_events_forwarded_again_by_a_later_reading_are_recognised_as_repeats(tiny_model):
    topics = ServiceTopics(*(RecordingTopic() for _ in range(5)))
    base = tiny_history_events()[0]
    events = [dataclasses.replace(base, ts=base.ts + 60.0 * i) for i in range(8)]
    messages = [_message(e, 0, offset) for offset, e in enumerate(events)]

    def forwarder() -> Forwarder:
        made = Forwarder(Settings(partitions=1), Chain(get_adapter("native"),
                         limits=Settings().limits), topics, Metrics())
        made.sources.assign(["in:0"])
        made.sources.set_backlog("in:0", False)
        return made

    first = forwarder()
    for chunk in (messages[0:2], messages[2:4], messages[4:6]):
        _step(first, chunk)
    # The first reading stops here (its input commit at offset 1); the next reads from there.
    second = forwarder()
    _step(second, messages[1:8])
    scorer, _ = _scorer(tiny_model)
    sent = topics.by_resource.sent
    scorer.take([SimpleNamespace(value=s["value"], partition=0) for s in sent])
    released, _, _ = scorer.release()
    got = [(f.event.ts - base.ts, f.offset) for f in released]
    # Offsets 1-3 were claimed by the first reading's last delivered step (its claim of the
    # step sending 4-5 goes out with the step after, which never came): 4 and 5 come twice.
    assert got == [(0.0, 0), (60.0, 1), (120.0, 2), (180.0, 3), (240.0, 4), (240.0, 4),
                   (300.0, 5), (300.0, 5), (360.0, 6), (420.0, 7)]
    assert scorer.metrics.events_repeated.labels(side="resource")._value.get() == 3.0


def test_a_claim_that_grows_only_in_event_time_replaces_the_narrower_one():
    # A source paused ahead of the frontier: its reader's last offset stays while the
    # frontier, and with it what the reading has sent of that source, grows. Seen with
    # chunked input in test_stream_parity's stop/restart: a reading's claim stuck at
    # (17120, its first frontier) and the next reading's copies of reads sent later were
    # judged late instead of skipped.
    upstream = UpstreamFrontiers.empty()
    upstream.update({}, claims={"in:1": Claim("old", offset=17120, frontier=100.0)})
    upstream.update({}, claims={"in:1": Claim("old", offset=17120, frontier=200.0)})
    base = tiny_history_events()[0]
    sent_later = Forwarded(dataclasses.replace(base, ts=150.0), "in", 0.0, 1, 10398)
    assert upstream.repeated(sent_later, "new")
    # An envelope sent again out of order (an older, narrower claim) does not narrow it.
    upstream.update({}, claims={"in:1": Claim("old", offset=17000, frontier=120.0)})
    assert upstream.claims["in:1"]["old"] == Claim("old", offset=17120, frontier=200.0)
    assert not upstream.repeated(
        dataclasses.replace(sent_later, event=dataclasses.replace(base, ts=250.0)), "new"
    )


def test_a_partition_read_from_further_back_is_not_judged_by_one_that_caught_up(tiny_model):
    # After a restart each internal partition is read from its own committed offset: one
    # may start hours behind another that already released its latest envelopes.
    scorer, _ = _scorer(tiny_model)
    base = tiny_history_events()[0]
    ahead = dataclasses.replace(base, ts=base.ts + 20_000.0, principal="a")
    scorer.take([_envelope([ahead], ahead.ts, partition=1)])
    released, watermark, _ = scorer.release()
    asyncio.run(scorer.score(released, watermark))
    # Another resource (each resource has one partition), hours behind the first.
    behind = [dataclasses.replace(base, principal="b", resource=base.resource + "-other"),
              dataclasses.replace(ahead, ts=ahead.ts + 1.0, principal="c")]
    scorer.take([_envelope(behind[:1], ahead.ts, partition=0),
                 _envelope(behind[1:], ahead.ts + 1.0, partition=1)])
    released, watermark, _ = scorer.release()
    result = asyncio.run(scorer.score(released, watermark))
    assert watermark is None and result.late == 0
    assert [f.event.principal for f in released] == ["b", "c"]


def test_a_step_split_over_envelopes_reports_its_frontier_only_with_the_last(
    tiny_model, monkeypatch
):
    """A scorer may take the first envelopes of a split step before the rest arrives; were
    the step's frontier on each, it would release past reads still on their way, and judge
    them late when they came (3% of a 60,000-read catch-up was lost so)."""
    monkeypatch.setattr("reachwatch.streams.service.forwarding.MAX_ENVELOPE_EVENTS", 3)
    topics = ServiceTopics(*(RecordingTopic() for _ in range(5)))
    forwarder = Forwarder(Settings(partitions=1), Chain(get_adapter("native"),
                          limits=Settings().limits), topics, Metrics())
    forwarder.sources.assign(["in:0"])
    forwarder.sources.set_backlog("in:0", False)
    base = tiny_history_events()[0]
    gap = 2 * tiny_model.config.allowed_lateness  # any read released out of order is late
    events = [dataclasses.replace(base, ts=base.ts + gap * i) for i in range(8)]
    _step(forwarder, [_message(e, 0, offset) for offset, e in enumerate(events)])
    sent = topics.by_resource.sent
    assert len(sent) == 3  # 3 + 3 + 2 events
    scorer, _ = _scorer(tiny_model)
    scored, late = 0, 0
    for envelope in sent:  # one at a time, as a scorer's batch may cut them
        scorer.take([SimpleNamespace(value=envelope["value"], partition=0)])
        released, watermark, _ = scorer.release()
        result = asyncio.run(scorer.score(released, watermark))
        scored, late = scored + result.scored, late + result.late
    assert (scored, late) == (8, 0)
