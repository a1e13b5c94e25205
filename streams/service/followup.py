"""The worker's follow-up stage: alert lifecycle, exposure records, grants, pages, alert log.

``models.followup`` decides; this module moves its results between Faust tables and
topics. Per scoring batch of a side (called from the scoring agent, after the alerts of
the batch are published and before window state is written):

- open alerts live in ``<side>-open-alerts`` (keyed by entity, so they move with the
  entity's state on a rebalance); a ``closed`` message is published on the alerts topic
  once an alert's quiet period is over;
- exposure records live in ``exposures`` (keyed by resource) and are published to the
  compacted ``access-exposures`` topic, keyed by resource, when the audience grows and
  once more, final, when the alert closes;
- grant events are filed in ``grant-log`` (keyed by scope);
- every alert message goes into the alert log (``/alerts/recent``) and to the pager.

All tables hold raw JSON bytes and are changelog-backed: a worker SIGKILLed mid-incident
recovers its records and open alerts. At-least-once as elsewhere: messages are published
and awaited before the tables are written.

Grants on an enclosing scope (a bucket, a site) are keyed by that scope, which may hash to
a partition another worker holds; with several workers such a cause is named only when
the same worker holds both (with one worker, always).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from faust.types import TableT, TopicT

from reachwatch.models.exposure import ExposureRecord
from reachwatch.models.followup import FollowUp, FollowUpResult
from reachwatch.models.grants import GrantLog
from reachwatch.models.records import AccessEvent
from reachwatch.streams.service.alertlog import AlertLog
from reachwatch.streams.service.settings import Settings
from reachwatch.streams.service.topics import RAW

SIDES = ("principal", "resource")


class JsonTable(MutableMapping[str, Any]):
    """A str-keyed view of a raw-bytes table whose values are JSON."""

    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        raw = self.table.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode()] = orjson.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in list(self.table.keys()))

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.table.get(key.encode()) is not None

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.table.get(key.encode())
        return default if raw is None else orjson.loads(raw)


class RecordTable(JsonTable):
    """Exposure records by resource (decoded on read; callers write back what changed)."""

    def __getitem__(self, key: str) -> ExposureRecord:
        return ExposureRecord.from_obj(super().__getitem__(key))

    def get(self, key: str, default: Any = None) -> Any:
        obj = super().get(key)
        return default if obj is None else ExposureRecord.from_obj(obj)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value.to_obj())


@dataclass(frozen=True)
class FollowUpChannels:
    """The tables and the topic the follow-up stage owns."""

    exposures_topic: TopicT
    open_alerts: dict[str, TableT]  # by side
    exposures: TableT
    grants: TableT
    alert_log: TableT


def define_followup(app: faust.App, settings: Settings) -> FollowUpChannels:
    def table(name: str) -> TableT:
        made = app.Table(
            name,
            default=None,
            partitions=settings.partitions,
            use_partitioner=True,
            key_type=bytes,
            value_type=bytes,
        )
        made.key_serializer = "raw"
        made.value_serializer = "raw"
        return made

    return FollowUpChannels(
        exposures_topic=app.topic(
            settings.exposures_topic, partitions=settings.partitions, compacting=True, **RAW
        ),
        open_alerts={side: table(f"{side}-open-alerts") for side in SIDES},
        exposures=table("exposures"),
        grants=table("grant-log"),
        alert_log=table("alert-log"),
    )


class FollowUpStage:
    """One worker's follow-up of both sides over its tables."""

    def __init__(
        self,
        channels: FollowUpChannels,
        settings: Settings,
        quiet_period: float,
        metrics: Any,
        pager: Any = None,
    ) -> None:
        self.channels = channels
        self.metrics = metrics
        self.pager = pager
        self.log = AlertLog(channels.alert_log, capacity=settings.alert_log_size)
        self.exposure_view = RecordTable(channels.exposures)
        self.followups = {
            side: FollowUp(
                side,
                quiet_period=quiet_period,
                cap=settings.exposure_cap,
                book=JsonTable(channels.open_alerts[side]),
                exposures=self.exposure_view,
                grants=JsonTable(channels.grants),
            )
            for side in SIDES
        }

    @property
    def grant_log(self) -> GrantLog:
        """The grant log over the ``grant-log`` table (the detector reads it too)."""
        return self.followups["resource"].grants

    def before(
        self, side: str, reads: Sequence[AccessEvent], states: Mapping[str, Any]
    ) -> set[tuple[str, str]]:
        return self.followups[side].before_batch(reads, states)

    async def after(
        self,
        side: str,
        reads: Sequence[AccessEvent],
        grants: Sequence[AccessEvent],
        states: Mapping[str, Any],
        result: Any,
        clock: float,
        new: set[tuple[str, str]],
        publish: Callable[[bytes, bytes], Awaitable[None]],
    ) -> FollowUpResult:
        """Run the batch's follow-up; ``publish(key, value)`` sends an alert message."""
        followup = self.followups[side]
        records: dict[str, ExposureRecord] = {}
        if side == "resource":
            for resource in {e.resource for e in reads} | {a.entity for a in result.alerts}:
                record = self.exposure_view.get(resource)
                if record is not None:
                    records[resource] = record
        done = followup.after_batch(
            reads, grants, states, result.alerts, result.touched, clock, new, records
        )
        published = time.time()
        for message in done.closed:
            await publish(str(message["entity"]).encode(), orjson.dumps(message))
            self.metrics.alerts_closed.labels(kind=message["kind"]).inc()
        for record in done.exposures:
            delivery = await self.channels.exposures_topic.send(
                key=str(record["resource"]).encode(), value=orjson.dumps(record)
            )
            await delivery
            self.metrics.exposures_published.labels(
                state="closed" if record["state"] == "closed" else "open"
            ).inc()
        # Tables after the messages: a crash in between replays the batch.
        for resource in done.records_touched:
            if resource in records:
                self.exposure_view[resource] = records[resource]
        for resource in done.records_deleted:
            if resource in self.exposure_view:
                del self.exposure_view[resource]
        for message in done.messages:
            if message["status"] == "closed":  # the others went in as they were published
                self.log.add(message, published)
            if self.pager is not None:
                self.pager.notify(message)
        return done

    def sweep(self, clock: float) -> int:
        """Forget stale exposure records at the resource side's event time."""
        return len(self.followups["resource"].sweep(clock))

    def open_alerts(self) -> list[dict[str, Any]]:
        """Every open alert this worker holds (both sides), for the pager after a restart."""
        return [
            entry for side in SIDES for entry in JsonTable(self.channels.open_alerts[side]).values()
        ]

    def exposure(
        self, resource: str | None = None, alert_id: str | None = None
    ) -> dict[str, Any] | None:
        """The current record for ``resource`` or ``alert_id`` (open records only)."""
        if resource is not None:
            record = self.exposure_view.get(resource)
            if record is not None and (alert_id is None or record.alert_id == alert_id):
                return self.followups["resource"].publishable(record)
            return None
        for key in list(self.exposure_view):
            record = self.exposure_view.get(key)
            if record is not None and record.alert_id == alert_id:
                return self.followups["resource"].publishable(record)
        return None


def register_followup(app: faust.App, stage: FollowUpStage, settings: Settings) -> None:
    """Declare the exposures topic; run the pager and its re-send timer when configured."""

    @app.task
    async def declare_exposures() -> None:
        await stage.channels.exposures_topic.maybe_declare()

    pager = stage.pager
    if pager is None:
        return

    @app.task
    async def push_pages() -> None:
        await pager.run()

    async def resend_pages() -> None:
        pager.sync(stage.open_alerts())
        pager.resend()

    app.timer(settings.page_resend_interval, name="reachwatch.resend_pages")(resend_pages)
