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

A dead letter is a copy of raw input: who read what. The topic keeps them only briefly
(``dlq_retention``, 3 days by default, set on the topic the worker creates), and with a
``redaction`` (on whenever pseudonymisation is: ``redaction_for``) a dead letter carries
no identity at all: no ``value``, ``value_text`` or ``key``; instead ``value_redacted``,
the JSON document with ``principal`` / ``resource`` replaced by their pseudonyms and
every other string dropped unless its field is one of ``SAFE_FIELDS`` (times, actions,
outcomes: what explains a rejection, never who). Numbers, booleans and the document's
shape stay, so the reason can still be understood; a message that is not JSON keeps only
its size and digest. Quoted values in ``detail`` are dropped too. Such a letter cannot be
replayed: re-send the fixed record from its source.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

DEAD_LETTER_SCHEMA_VERSION = 1
# Enough of a rejected message for a human to recognise it; the base64 copy is complete.
TEXT_PREVIEW_CHARS = 4096
DROPPED = "<redacted>"
# String fields a redacted dead letter keeps: what explains a rejection in the native
# format and in the adapters' (CloudTrail, Microsoft 365, OCSF) documents, never who or
# what was read.
SAFE_FIELDS = frozenset({
    "schema_version", "ts", "principal_type", "sensitivity", "action", "outcome",
    "eventTime", "@timestamp", "eventName", "eventSource", "eventType", "eventVersion",
    "errorCode", "readOnly", "type", "CreationTime", "Operation", "Workload", "RecordType",
    "ResultStatus", "time", "class_uid", "class_name", "activity_id", "activity_name",
    "category_uid", "type_uid", "status", "status_id", "severity_id",
})
# A value quoted in a detail (SchemaError details quote offending values with repr(),
# some cut short before the closing quote: then everything after the opening one goes).
QUOTED = re.compile(r"'[^']*(?:'|$)|\"[^\"]*(?:\"|$)")


@dataclass(frozen=True, slots=True)
class Redaction:
    """How identities leave a dead letter: each side's function maps an id to what is kept.

    ``Redaction()`` drops both; ``Redaction.pseudonymising(names)`` keeps the pseudonyms
    the rest of the pipeline uses (resources in clear when only principals are
    pseudonymised, as in alerts).
    """

    principal: Callable[[str], str] | None = None  # None: dropped
    resource: Callable[[str], str] | None = None

    @classmethod
    def pseudonymising(cls, names: Any) -> Redaction:
        """From a ``streams.ingest.pseudonyms.Pseudonymizer``."""
        return cls(principal=names.principal,
                   resource=names.resource if names.resources else str)

    def document(self, value: Any, field: str | None = None) -> Any:
        """``value`` (a decoded JSON document) with every identity replaced or dropped."""
        if isinstance(value, dict):
            return {key: self.document(item, key) for key, item in value.items()}
        if isinstance(value, list):
            return [self.document(item, field) for item in value]
        if not isinstance(value, str):
            return value
        side = self.principal if field == "principal" else (
            self.resource if field == "resource" else None)
        if side is not None:
            return side(value)
        return value if field in SAFE_FIELDS else DROPPED

    def detail(self, detail: str) -> str:
        """A rejection detail without the values it quotes.

        >>> Redaction().detail("userIdentity.arn 'arn:aws:iam::1:user/ana' is not an assumed role")
        'userIdentity.arn <redacted> is not an assumed role'
        """
        return QUOTED.sub(DROPPED, detail)


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
    redaction: Redaction | None = None  # None: the message kept verbatim

    def to_json(self) -> dict[str, Any]:
        if self.redaction is not None:
            return self._redacted(self.redaction)
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

    def _redacted(self, redaction: Redaction) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": DEAD_LETTER_SCHEMA_VERSION,
            "reason": self.reason,
            "detail": redaction.detail(self.detail),
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                       "timestamp": self.message_ts},
            "rejected_ts": self.rejected_ts or time.time(),
            "key": None,
            "value": None,
            "redacted": True,
        }
        if self.value is None:
            return out
        out["value_bytes"] = len(self.value)
        out["value_sha256"] = hashlib.sha256(self.value).hexdigest()
        fits = self.value_limit is None or len(self.value) <= self.value_limit
        try:
            document = orjson.loads(self.value) if fits else None
        except orjson.JSONDecodeError:
            document = None
        if document is not None:
            out["value_redacted"] = redaction.document(document)
        return out

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json())

    @property
    def wire_key(self) -> bytes | None:
        """The Kafka key to send this letter with: the original's, none when redacted
        (a producer may key its messages by principal)."""
        return None if self.redaction is not None else self.key

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


def redaction_for(pseudonymizer: Any | None) -> Redaction | None:
    """The redaction of a worker's dead letters: on whenever pseudonymisation is.

    ``pseudonymizer`` is the worker's ``streams.ingest.pseudonyms.Pseudonymizer`` (None when
    pseudonymisation is off). Pseudonymisation promises that nothing downstream of intake
    holds an identity; a verbatim dead letter would break that promise for every rejected
    line.
    """
    return None if pseudonymizer is None else Redaction.pseudonymising(pseudonymizer)


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)
