"""Dead letters: input messages that could not become access events, kept verbatim.

A dead letter is a JSON object (``schema_version`` 1) carrying the original message
(``value`` base64, so undecodable bytes survive; ``value_text`` too when it is UTF-8), its
key, where it came from (topic/partition/offset), the reason code (a ``SchemaError`` code
from ``records.REASONS``) with a human detail, and when it was rejected. Replaying a fixed
message means decoding ``value`` and producing it to ``source.topic`` again.

A message larger than ``value_limit`` (the worker passes its ``max_message_bytes``) keeps
only its first ``value_limit`` bytes, with ``value_bytes`` (the full size),
``value_sha256`` and ``value_truncated``: copied whole, a message above the limit would make
a dead letter above the producer's maximum request size, and one such message would crash
the worker on every restart (found by tests/integration/test_faults_hostile.py).
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

DEAD_LETTER_SCHEMA_VERSION = 1
# Enough of a rejected message for a human to recognise it; the base64 copy is complete.
TEXT_PREVIEW_CHARS = 4096


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected input message and why it was rejected."""

    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    message_ts: float | None = None
    rejected_ts: float = 0.0
    value_limit: int | None = None  # None: the whole value, however large

    def to_json(self) -> dict[str, Any]:
        value = self.value
        if value is not None and self.value_limit is not None and len(value) > self.value_limit:
            value = value[: self.value_limit]
        out: dict[str, Any] = {
            "schema_version": DEAD_LETTER_SCHEMA_VERSION,
            "reason": self.reason,
            "detail": self.detail,
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                       "timestamp": self.message_ts},
            "rejected_ts": self.rejected_ts or time.time(),
            "key": _b64(self.key),
            "value": _b64(value),
        }
        if value is not None and self.value is not None and len(value) < len(self.value):
            out["value_truncated"] = True
            out["value_bytes"] = len(self.value)
            out["value_sha256"] = hashlib.sha256(self.value).hexdigest()
        if value is not None:
            try:
                out["value_text"] = value.decode("utf-8")[:TEXT_PREVIEW_CHARS]
            except UnicodeDecodeError:
                pass
        return out

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def decode(cls, raw: bytes) -> DeadLetter:
        """Read a dead letter back (tools and tests)."""
        obj = orjson.loads(raw)
        source = obj["source"]
        return cls(
            reason=obj["reason"],
            detail=obj["detail"],
            topic=source["topic"],
            partition=source["partition"],
            offset=source["offset"],
            value=_unb64(obj.get("value")),
            key=_unb64(obj.get("key")),
            message_ts=source.get("timestamp"),
            rejected_ts=obj["rejected_ts"],
        )


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)
