"""A stopping worker lets the step under way finish its sends and acks, and starts no more."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
from faust.types import TP
from support.tinyorg import history as tiny_history_events
from support.topics import RecordingTopic

from reachwatch.models.pipeline import Pipeline
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.service.agents import Worker
from reachwatch.streams.service.envelopes import read_envelope
from reachwatch.streams.service.forwarding import Outgoing
from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.settings import Settings
from reachwatch.streams.service.topics import ServiceTables, ServiceTopics


class SlowTopic:
    """Records sends; the broker acknowledges them only once ``acknowledge`` is called."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.pending: list[asyncio.Future[None]] = []

    async def send(self, **kwargs: Any) -> asyncio.Future[None]:
        self.sent.append(kwargs)
        future = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future

    def acknowledge(self) -> None:
        for future in self.pending:
            if not future.done():
                future.set_result(None)


class FakeStream:
    """Hands out the given batches one by one; records what the agent acknowledges."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches = batches
        self.taken = 0
        self.acked: list[Any] = []

    async def noack_take(self, n: int, wait: float) -> Any:
        for batch in self.batches:
            self.taken += 1
            yield batch
        await asyncio.Event().wait()  # no more input: wait as a quiet topic does

    async def ack(self, holder: Any) -> None:
        self.acked.append(holder)


def _holders(events: list[Any], first_offset: int) -> list[Any]:
    return [
        SimpleNamespace(message=SimpleNamespace(
            value=orjson.dumps(e.to_json()), topic="access-events", partition=0,
            offset=first_offset + i, key=None, timestamp=0.0))
        for i, e in enumerate(events)
    ]


def _worker(model: Any, topic: Any = None, partitions: int = 2) -> tuple[Worker, ServiceTopics]:
    config = Settings(partitions=partitions)
    topics = ServiceTopics(*((topic or SlowTopic)() for _ in range(5)))
    worker = Worker(settings=config, pipeline=Pipeline(model), watcher=None,  # type: ignore[arg-type]
                    chain=Chain(get_adapter("native"), limits=config.limits), topics=topics,
                    tables=ServiceTables({}, {}),  # type: ignore[arg-type]
                    metrics=Metrics(topics=config.input_topics))
    return worker, topics


def test_a_stopping_worker_acks_the_step_under_way_and_starts_no_other(tiny_model) -> None:
    worker, topics = _worker(tiny_model)
    events = tiny_history_events()[:40]
    first, second = _holders(events[:20], 0), _holders(events[20:], 20)
    stream = FakeStream([first, second])
    # One input partition, known to hold nothing more: its events pass the frontier at once.
    worker.forwarder.sources.assign({"access-events:0"})
    worker.forwarder.sources.set_backlog("access-events:0", False)

    async def scenario() -> tuple[bool, int, int]:
        agent = asyncio.create_task(worker.ingest(stream))  # type: ignore[arg-type]
        while not topics.by_principal.pending:  # the first step waits for the broker
            await asyncio.sleep(0)
        draining = asyncio.create_task(worker.drain(timeout=5.0))
        await asyncio.sleep(0.05)
        acked_before = len(stream.acked)
        while not draining.done():  # the step's envelopes, then the last claims
            topics.by_principal.acknowledge()
            topics.by_resource.acknowledge()
            await asyncio.sleep(0.01)
        finished = await draining
        sends = len(topics.by_principal.sent)
        await asyncio.sleep(0.05)  # the agent would start its next step now
        agent.cancel()
        return finished, acked_before, sends

    finished, acked_before, sends = asyncio.run(scenario())
    assert finished
    assert acked_before == 0  # nothing acknowledged while its envelopes were unconfirmed
    assert stream.acked == first  # the step under way ended with its acks
    # The second batch was taken from the stream but neither forwarded nor acknowledged:
    # the next worker reads it again from the committed offsets.
    assert stream.taken == 2
    assert len(topics.by_principal.sent) == sends
    # The stop ended with what this reading sent (its claim), for the next owner: an
    # envelope with no events for every partition of each side.
    for topic in (topics.by_principal, topics.by_resource):
        last = [read_envelope(sent["value"]) for sent in topic.sent[-2:]]
        assert [e.items for e in last] == [[], []]
        assert {e.claims["access-events:0"].offset for e in last} == {19}


class StaleConsumer:
    """A consumer whose fetch high watermark lags the broker's end offset."""

    def __init__(self, highwater: int, end: int) -> None:
        self.stale, self.end = highwater, end
        self.asked: list[Any] = []

    def highwater(self, tp: Any) -> int:
        return self.stale

    async def start_offsets(self, tps: Any) -> dict[Any, int]:
        return {tp: 0 for tp in tps}

    async def end_offsets(self, tps: Any) -> dict[Any, int]:
        self.asked.extend(tps)
        return {tp: self.end for tp in tps}

    def hold(self, tps: Any) -> None: ...

    def release(self, tps: Any) -> None: ...


def test_a_quiet_partition_is_not_idle_while_the_broker_holds_more_than_its_last_fetch_said(
        tiny_model) -> None:
    worker, _ = _worker(tiny_model, partitions=1)
    worker.forwarder.release = lambda: Outgoing()  # type: ignore[method-assign]  # no sends
    stream = FakeStream([])
    worker._ingest_stream = stream  # type: ignore[assignment]
    # Read through offset 9; the last fetch said the partition ends there (10), the broker
    # knows 50 records.
    worker.consumer = StaleConsumer(highwater=10, end=50)
    worker.on_assigned([SimpleNamespace(topic="access-events", partition=0)])
    worker.forwarder.take(_holders(tiny_history_events()[:10], 0), lambda h: h.message)

    async def ticks() -> None:
        for _ in range(10):
            await worker.tick()

    asyncio.run(ticks())
    assert worker.consumer.asked  # quiet and seemingly drained: the broker was asked
    assert not worker.forwarder.sources.idle("access-events:0")
    worker.consumer.end = 10  # it really has nothing more
    asyncio.run(ticks())
    assert worker.forwarder.sources.idle("access-events:0")


class Producer:
    """An aiokafka producer whose metadata knows some topics; the rest never arrive."""

    def __init__(self, known: set[str], fail: bool = False) -> None:
        self.known, self.fail = known, fail

    async def partitions_for(self, topic: str) -> set[int]:
        if self.fail:
            raise ConnectionError("broker away")
        if topic not in self.known:
            await asyncio.Event().wait()
        return {0, 1}


def _app(producer: Producer, names: list[str]) -> Any:
    tables = {n: SimpleNamespace(changelog_topic=SimpleNamespace(get_topic_name=lambda n=n: n))
              for n in names}
    return SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer),
                           tables=tables)


def test_changelogs_are_known_only_when_every_table_s_topic_is() -> None:
    from reachwatch.streams.service.topics import changelogs_known

    names = ["p-state-changelog", "r-state-changelog"]
    assert asyncio.run(changelogs_known(_app(Producer(set(names)), names), 1.0))
    assert not asyncio.run(changelogs_known(_app(Producer({names[0]}), names), 0.05))
    assert not asyncio.run(changelogs_known(_app(Producer(set(), fail=True), names), 1.0))


def test_scoring_writes_no_state_before_the_producer_knows_the_changelogs(
        tiny_model, monkeypatch) -> None:
    from reachwatch.streams.service import agents

    monkeypatch.setattr(agents, "CHANGELOG_RETRY_S", 0.0)
    worker, _ = _worker(tiny_model)
    answers = [False, False, True]
    asked: list[int] = []
    stream = FakeStream([[]])

    async def known() -> bool:
        asked.append(len(answers))
        return answers.pop(0)

    worker.changelogs_known = known

    async def scenario() -> None:
        agent = asyncio.create_task(worker._score(stream, worker.principals))  # type: ignore[arg-type]
        while answers:
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        agent.cancel()

    asyncio.run(scenario())
    assert asked == [3, 2, 1]  # asked until the answer was yes, then not again
    assert worker.changelogs_ready


class SeekingConsumer(StaleConsumer):
    """Records the seeks asked of it."""

    def __init__(self) -> None:
        super().__init__(highwater=0, end=0)
        self.seeks: list[dict[Any, int]] = []

    async def seek_wait(self, partitions: dict[Any, int]) -> None:
        self.seeks.append(dict(partitions))


def test_a_message_faust_never_handed_over_is_read_again_and_each_forwarded_once(
        tiny_model) -> None:
    from reachwatch.streams.service.envelopes import read_envelope

    worker, topics = _worker(tiny_model, RecordingTopic)
    worker.consumer = consumer = SeekingConsumer()
    worker.forwarder.sources.assign({"access-events:0"})
    worker.forwarder.sources.set_backlog("access-events:0", False)
    holders = _holders(tiny_history_events()[:8], 0)
    # Faust dropped offset 3; 6 and 7 were still in its buffers when the agent sought back;
    # then the new reading, from 3.
    stream = FakeStream([holders[:3] + holders[4:6], holders[6:], holders[3:]])

    async def scenario() -> None:
        agent = asyncio.create_task(worker.ingest(stream))  # type: ignore[arg-type]
        while stream.taken < 3 or len(stream.acked) < 8:
            await asyncio.sleep(0.01)
        agent.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert consumer.seeks == [{TP("access-events", 0): 3}]
    assert [h.message.offset for h in stream.acked] == list(range(8))
    forwarded = [f.offset for sent in topics.by_principal.sent
                 for f in read_envelope(sent["value"]).items]
    assert sorted(forwarded) == list(range(8))  # each once
    assert worker.metrics.partitions_read_again.labels(stage="ingest")._value.get() == 1


def test_a_scoring_step_that_raises_is_tried_again_not_abandoned(tiny_model, monkeypatch) -> None:
    from reachwatch.streams.service import agents

    monkeypatch.setattr(agents, "STEP_RETRY_S", (0.0,))
    worker, _ = _worker(tiny_model)
    scorer = worker.principals
    calls: list[Any] = []

    async def score(released: Any, watermark: Any) -> None:
        calls.append((released, watermark))
        if len(calls) < 3:
            raise ConnectionError("changelog write failed")

    monkeypatch.setattr(scorer, "score", score)
    asyncio.run(worker._score_until_done(scorer, ["read"], 5.0))
    assert calls == [(["read"], 5.0)] * 3  # the same step, until it went through
    assert worker.metrics.step_failures.labels(stage="principal")._value.get() == 2


class LateMetadataConsumer(StaleConsumer):
    """A consumer whose metadata does not know the input topic right after the assignment."""

    def __init__(self) -> None:
        super().__init__(highwater=10, end=10)
        self.partitions: int | None = None

    def topic_partitions(self, topic: str) -> int | None:
        return self.partitions


def test_nothing_is_released_until_the_input_partition_count_is_known(tiny_model) -> None:
    # Sharing the input with another worker, a worker that does not know how many input
    # partitions there are would report its own partitions' frontier as everyone's, and the
    # scorers would run ahead of the other worker's reads (test_faults_takeover, chunked).
    worker, topics = _worker(tiny_model, topic=RecordingTopic, partitions=1)
    worker._ingest_stream = FakeStream([])  # type: ignore[assignment]
    worker.consumer = LateMetadataConsumer()
    worker.on_assigned([SimpleNamespace(topic="access-events", partition=0)])
    worker.forwarder.sources.set_backlog("access-events:0", False)
    worker.forwarder.take(_holders(tiny_history_events()[:10], 0), lambda h: h.message)
    assert worker.forwarder.release().envelopes == []
    asyncio.run(worker.tick())
    assert topics.by_principal.sent == [] and worker.forwarder.await_assignment
    worker.consumer.partitions = 4  # the metadata arrives
    asyncio.run(worker.tick())
    assert not worker.forwarder.await_assignment and worker.forwarder.total_sources == 4
    # The tick released them: the source is quiet and known to hold nothing more.
    for _ in range(8):
        asyncio.run(worker.tick())
    sent = [read_envelope(s["value"]) for s in topics.by_principal.sent]
    assert sum(len(e.items) for e in sent) == 10
    assert {e.sources for e in sent} == {4}
