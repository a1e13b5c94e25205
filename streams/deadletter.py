"""Dead letters: input messages that could not become access events, kept verbatim.

A dead letter is a JSON object (``schema_version`` 1) carrying the original message
(``value`` base64, so undecodable bytes survive; ``value_text`` too when it is UTF-8), its
key, where it came from (topic/partition/offset), the reason code (a ``SchemaError`` code
from ``records.REASONS``) with a human detail, and when it was rejected. Replaying a fixed
message means decoding ``value`` and producing it to ``source.topic`` again.
"""

from __future__ import annotations

import base64
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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": DEAD_LETTER_SCHEMA_VERSION,
            "reason": self.reason,
            "detail": self.detail,
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                       "timestamp": self.message_ts},
            "rejected_ts": self.rejected_ts or time.time(),
            "key": _b64(self.key),
            "value": _b64(self.value),
        }
        if self.value is not None:
            try:
                out["value_text"] = self.value.decode("utf-8")[:TEXT_PREVIEW_CHARS]
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
