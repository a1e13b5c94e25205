"""Periodic health samples of a running worker: broker reachability, consumer lag, state size.

These gauges are not events the agents see, so a Faust timer samples them every
``health_interval`` seconds (``app.py`` registers it):

- ``reachwatch_broker_up``: 1 if a metadata round trip to the cluster succeeds within the
  interval. The producer's client asks for the topics it already writes to, so the request
  stays small on a large cluster. A dead or unreachable broker times out or fails -> 0.
- ``reachwatch_consumer_lag_messages{topic}``: per input topic, the sum over this worker's
  assigned partitions of (end offset - committed offset). Faust's committed offset is the
  next offset to read, so a caught-up partition counts 0; a partition with nothing committed
  yet counts from 0 (the group starts at the earliest offset).
- ``reachwatch_tracked_entities{side}``: entities of the principal / resource state tables
  held by this worker, those only a dirty state holds until the next checkpoint included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from reachwatch.streams.service.metrics import Metrics
from reachwatch.streams.service.topics import ServiceTables

log = logging.getLogger(__name__)


def lag_by_topic(
    end_offsets: Mapping[TP, int],
    committed: Mapping[TP, int | None],
    topics: Iterable[str],
) -> dict[str, int]:
    """Messages not yet committed, summed per topic in ``topics`` (0 for unassigned topics).

    >>> tp = TP("access-events", 0)
    >>> lag_by_topic({tp: 120}, {tp: 100}, ["access-events", "other"])
    {'access-events': 20, 'other': 0}
    """
    lag = dict.fromkeys(topics, 0)
    for tp, end in end_offsets.items():
        if tp.topic in lag and end is not None:
            lag[tp.topic] += max(0, end - (committed.get(tp) or 0))
    return lag


@dataclass
class HealthProbe:
    """Samples the health gauges of one worker into ``metrics``; ``sample`` is the timer."""

    app: faust.App
    tables: ServiceTables
    metrics: Metrics
    timeout: float
    # Entities per side ("principals", "resources"), written or not (write-behind); the
    # tables' lengths where not given.
    tracked: Callable[[], dict[str, int]] | None = None
    broker_was_up: bool | None = None  # None until the first sample

    async def sample(self) -> None:
        self.sample_tables()
        self.report_broker(await self.broker_reachable())
        lag = await self.consumer_lag()
        if lag is not None:
            for topic, messages in lag.items():
                self.metrics.consumer_lag.labels(topic=topic).set(messages)

    def report_broker(self, up: bool) -> None:
        """Set ``broker_up`` and log each change once (not every sample of an outage)."""
        self.metrics.broker_up.set(1 if up else 0)
        if up == self.broker_was_up:
            return
        if not up:
            log.warning("broker unreachable: no metadata answer within %.1fs; consuming and "
                        "publishing wait until it is back", self.timeout)
        elif self.broker_was_up is not None:
            log.warning("broker reachable again")
        self.broker_was_up = up

    def sample_tables(self) -> None:
        gauge = self.metrics.tracked_entities
        counts = self.tracked() if self.tracked is not None else {
            "principals": len(self.tables.principals), "resources": len(self.tables.resources)}
        gauge.labels(side="principal").set(counts["principals"])
        gauge.labels(side="resource").set(counts["resources"])

    async def broker_reachable(self) -> bool:
        # The aiokafka producer lives on this event loop (Faust's threaded_producer is off).
        producer: Any = getattr(self.app.producer, "_producer", None)
        if producer is None:
            return False
        try:
            return bool(
                await asyncio.wait_for(producer.client.force_metadata_update(), self.timeout)
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # timeouts and Kafka errors alike mean "not reachable"
            log.debug("broker metadata check failed: %r", exc)
            return False

    async def consumer_lag(self) -> dict[str, int] | None:
        """Lag per input topic, or None when it cannot be known right now (rebalance)."""
        consumer: Any = self.app.consumer
        topics = self.metrics.topics
        try:
            assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
            if not assigned:
                return dict.fromkeys(topics, 0)
            end_offsets = await asyncio.wait_for(consumer.highwaters(*assigned), self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("consumer lag sample failed: %r", exc)
            return None
        return lag_by_topic(end_offsets, consumer._committed_offset, topics)
