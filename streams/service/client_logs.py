"""Kafka client log throttle: one line per repeated client error per interval, not ten a second.

While the broker is down, aiokafka retries every ``retry_backoff_ms`` (100 ms, not settable
through Faust) and logs each failed attempt at ERROR: "Unable connect to node", "Unable to
update metadata", "Failed fetch messages"... A minute-long outage writes thousands of lines
that bury the one that matters (``broker unreachable`` from ``streams.health``) and fill the
disk on a long one. The throttle lets the first of each message template through, drops
repeats for ``interval`` seconds, and then says how many it dropped.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable

CLIENT_LOGGER_PREFIX = "aiokafka"
CLIENT_MODULES = ("aiokafka", "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator")
THROTTLE_INTERVAL_S = 30.0


class RepeatThrottle(logging.Filter):
    """Passes a WARNING+ record only if its template was not passed in the last ``interval``."""

    def __init__(self, interval: float = THROTTLE_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._dropped: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        # The template, not the formatted text: node ids and error details vary per attempt.
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        if dropped and last is not None:
            record.msg = f"{record.msg} [{dropped} like this dropped in {now - last:.0f}s]"
        return True


def throttle_client_logs(interval: float = THROTTLE_INTERVAL_S) -> RepeatThrottle:
    """Attach one throttle to every aiokafka logger (call after aiokafka is imported).

    Filters on a logger apply only to records created on that very logger, not its children,
    hence one attachment per module logger.
    """
    # Its module loggers must exist before we attach to them.
    for module in CLIENT_MODULES:
        importlib.import_module(module)

    throttle = RepeatThrottle(interval)
    names = [CLIENT_LOGGER_PREFIX] + [
        name for name in logging.root.manager.loggerDict
        if name.startswith(CLIENT_LOGGER_PREFIX + ".")
    ]
    for name in names:
        logging.getLogger(name).addFilter(throttle)
    return throttle
