"""Sends the worker awaits until the broker acknowledges them, retried until they go through.

Faust's ``send_soon`` only queues a message, and the flush before a commit
(``ProducerBuffer.flush_atmost``) returns after waiting 0.1 s for one message even while
others are still queued: a commit could overtake them and a crash lose them. Everything the
worker produces for a message it consumed (envelopes, dead letters, alerts, state) is sent
with ``deliver`` and awaited before that message is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from reachwatch.streams.service.metrics import Metrics

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


async def deliver(
    send: Callable[[], Awaitable[Any]], metrics: Metrics, what: str, retries: int = 0
) -> None:
    """Run ``send`` (a ``topic.send(...)`` call) and await the broker's acknowledgement.

    Retried with backoff until it succeeds, or ``retries`` times if non-zero (then raises).
    """
    attempt = 0
    while True:
        try:
            delivery = await send()
            await delivery
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempt += 1
            if retries and attempt > retries:
                metrics.record_publish_failure(what)
                log.error("%s publish failed %d times, giving up: %s", what, attempt, exc)
                raise
            metrics.record_publish_retry(what)
            delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S)) - 1]
            log.warning(
                "%s publish failed (attempt %d), retrying in %.1fs: %s", what, attempt, delay, exc
            )
            await asyncio.sleep(delay)


async def deliver_all(
    sends: list[Callable[[], Awaitable[Any]]], metrics: Metrics, what: str
) -> None:
    """``deliver`` each of ``sends``; returns once all are acknowledged.

    Sends that carry the same ``order_key`` (``in_order``) go one after the other, each
    acknowledged before the next is sent: concurrent sends to one partition can reach it in
    another order (a send waiting on a full producer buffer, or retried after a failure,
    is overtaken). The rest go concurrently."""
    if not sends:
        return
    lanes: dict[Any, list[Callable[[], Awaitable[Any]]]] = {}
    for index, send in enumerate(sends):
        lanes.setdefault(getattr(send, "order_key", ("unordered", index)), []).append(send)

    async def in_turn(lane: list[Callable[[], Awaitable[Any]]]) -> None:
        for send in lane:
            await deliver(send, metrics, what)

    await asyncio.gather(*(in_turn(lane) for lane in lanes.values()))


def in_order(send: Callable[[], Awaitable[Any]], key: Any) -> Callable[[], Awaitable[Any]]:
    """Mark ``send``: ``deliver_all`` sends those with an equal ``key`` in list order."""
    send.order_key = key  # type: ignore[attr-defined]
    return send
