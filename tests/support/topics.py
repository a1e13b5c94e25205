"""A stand-in for a Faust topic in unit tests: records what is sent, delivered at once."""

from __future__ import annotations

import asyncio
from typing import Any


class RecordingTopic:
    """Records sends; each delivery is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> asyncio.Future[None]:
        self.sent.append(kwargs)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done
