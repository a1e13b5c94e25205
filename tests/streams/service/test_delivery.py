"""Sends to one partition reach it in the order they were made (``delivery.deliver_all``)."""

from __future__ import annotations

import asyncio
from typing import Any

from reachwatch.streams.service.delivery import deliver_all, in_order
from reachwatch.streams.service.metrics import Metrics


class _Partition:
    """A broker partition behind a producer whose first send waits (a full buffer)."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.sends = 0

    def sender(self, value: str) -> Any:
        async def send() -> Any:
            self.sends += 1
            if self.sends == 1:
                await asyncio.sleep(0.05)  # waiting on the producer's buffer
            self.log.append(value)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        return send


def test_parts_for_one_partition_arrive_in_order_even_when_the_first_waits() -> None:
    partition = _Partition()
    sends = [in_order(partition.sender(v), ("by-principal", 2)) for v in ("part-1", "part-2")]
    asyncio.run(deliver_all(sends, Metrics(), "envelope"))
    assert partition.log == ["part-1", "part-2"]


def test_unordered_sends_still_go_concurrently() -> None:
    partition = _Partition()
    asyncio.run(deliver_all([partition.sender("a"), partition.sender("b")], Metrics(), "x"))
    assert partition.log == ["b", "a"]  # the second overtook the waiting first
