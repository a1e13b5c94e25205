"""Access events: the one schema every adapter produces and every feature consumes.

The native wire format is one JSON object per Kafka message or JSONL line; see
``parse_event`` for the fields. Parsing never raises anything but ``SchemaError``, whose
``code`` is the reason reported in rejects files, dead letters and metrics.

Size limits are a ``Limits`` value, passed down explicitly: the ingest chain hands its
limits to the adapter, which hands them to ``parse_event``; ``parse_event`` and
``decode_json`` called without limits apply the defaults.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import orjson

from reachwatch.models.errors import ConfigError, SchemaError

SCHEMA_VERSION = 1

SENSITIVITIES = ("public", "internal", "confidential", "restricted")
PRINCIPAL_TYPES = ("human", "service")
OUTCOMES = ("allowed", "denied")

# Default limits against absurd input (``Limits`` makes them configurable). They bound
# memory per event, not what is plausible for a real read.
MAX_MESSAGE_BYTES = 1_000_000
MAX_ID_LENGTH = 1024  # principal, resource
MAX_FIELD_LENGTH = 256  # the other free-text fields: groups, action, source
MAX_COUNT = 10**15  # records or bytes in one read: a petabyte is absurd enough
# Deepest JSON nesting accepted. Real formats nest about ten levels (CloudTrail's
# requestParameters); orjson itself stops at 1024, reported as not_json. Between the two
# the document is valid JSON but no log format looks like that, and every deeper level
# is one more frame for whoever walks it next (orjson.dumps of a dead letter stops at 255).
MAX_NESTING = 64
# 1990-01-01 .. 2100-01-01: anything outside is a broken clock or a unit mistake.
MIN_TS = 631152000.0
MAX_TS = 4102444800.0
# Control characters and line/paragraph separators break log lines and terminals. Other
# non-printables (no-break spaces, the zero-width joiners of emoji) occur in real file
# names, so str.isprintable() alone would reject legitimate resources.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
# Choice fields (sensitivity, outcome, ...) must be one of a few short words, so they keep
# the default bound: a lowered field limit must not turn "confidential" away.
_CHOICE_LENGTH = MAX_FIELD_LENGTH

REASONS = (
    "not_utf8",
    "not_json",
    "not_object",
    "too_large",
    "missing_field",
    "empty_field",
    "wrong_type",
    "bad_value",
    "bad_timestamp",
    "negative_count",
    "absurd_count",
    "adapter_error",
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits on one message and the fields of its events; the defaults are today's.

    ``max_message_bytes`` bounds a stream message (files have their own line limits, see
    ``streams.ingest.files``); ``max_id_length`` bounds principal and resource;
    ``max_field_length`` the other free-text fields; ``max_nesting`` JSON depth.

    >>> Limits(max_id_length=64).max_field_length
    256
    """

    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_id_length: int = MAX_ID_LENGTH
    max_field_length: int = MAX_FIELD_LENGTH
    max_nesting: int = MAX_NESTING

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{limit.name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One read of one resource by one principal, at event time ``ts`` (epoch seconds)."""

    ts: float
    principal: str
    resource: str
    principal_type: str = "human"
    principal_group: str | None = None
    resource_group: str | None = None
    sensitivity: str = "internal"
    action: str = "read"
    records: int | None = None
    bytes: int | None = None
    outcome: str = "allowed"
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The native wire form (what ``parse_event`` reads back)."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def decode_json(
    raw: bytes | str, max_bytes: int | None = None, limits: Limits = DEFAULT_LIMITS
) -> Any:
    """Decode one message or line into a JSON value, or raise ``SchemaError``.

    ``max_bytes`` bounds the input (``too_large``); nesting deeper than ``max_nesting`` of
    ``limits`` is ``too_large`` too. ``limits`` does not
    bound the size: a file line is not a stream message, so the caller says which applies.
    """
    if max_bytes is not None and len(raw) > max_bytes:
        unit = "bytes" if isinstance(raw, bytes) else "characters"
        raise SchemaError("too_large", f"message is {len(raw)} {unit}, limit {max_bytes}")
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SchemaError("not_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        msg = str(exc).split("\n", 1)[0]
        if "recursion" in msg.lower() or "depth" in msg.lower():
            raise SchemaError("not_json", f"nesting deeper than orjson allows: {msg}") from None
        raise SchemaError("not_json", msg[:200]) from None
    # Counting brackets runs at C speed and spares the walk for nearly every message.
    if isinstance(value, (dict, list)):
        nesting = limits.max_nesting
        if _brackets(raw) > nesting and _nested_deeper(value, nesting):
            raise SchemaError("too_large", f"JSON nested deeper than {nesting} levels")
    return value


def _brackets(raw: bytes | str) -> int:
    if isinstance(raw, bytes):
        return raw.count(b"[") + raw.count(b"{")
    return raw.count("[") + raw.count("{")


def _nested_deeper(value: dict[str, Any] | list[Any], limit: int) -> bool:
    # An explicit stack: recursion here would be the very stack risk being guarded against.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def parse_timestamp(value: Any, field: str = "ts") -> float:
    """RFC 3339 with a zone, or epoch seconds / milliseconds, to epoch seconds."""
    if isinstance(value, bool):
        raise SchemaError("wrong_type", f"{field} must be a string or number, got bool")
    if isinstance(value, (int, float)):
        ts = float(value)
        if not math.isfinite(ts):
            raise SchemaError("bad_timestamp", f"{field} is not finite")
        if ts > 1e11:  # milliseconds (epoch seconds reach 1e11 only in the year 5138)
            ts /= 1000.0
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise SchemaError("empty_field", f"{field} is empty")
        if len(text) > 64:
            raise SchemaError("bad_timestamp", f"{field} is too long to be a timestamp")
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            try:
                ts = float(text)
            except ValueError:
                raise SchemaError(
                    "bad_timestamp", f"{field} {text[:40]!r} is not RFC 3339 or epoch"
                ) from None
            return parse_timestamp(ts, field)
        if parsed.tzinfo is None:
            raise SchemaError("bad_timestamp", f"{field} {text[:40]!r} has no time zone")
        ts = parsed.timestamp()
    else:
        raise SchemaError(
            "wrong_type", f"{field} must be a string or number, got {type(value).__name__}"
        )
    if not MIN_TS <= ts <= MAX_TS:
        raise SchemaError("bad_timestamp", f"{field} {value!r:.40} is outside 1990..2100")
    return ts


def _text(obj: dict[str, Any], field: str, *, required: bool, limit: int) -> str | None:
    value = obj.get(field)
    if value is None:
        if required:
            raise SchemaError("missing_field", f"{field} is required")
        return None
    if not isinstance(value, str):
        raise SchemaError("wrong_type", f"{field} must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        if required:
            raise SchemaError("empty_field", f"{field} is empty")
        return None
    if len(value) > limit:
        raise SchemaError("too_large", f"{field} is {len(value)} characters, limit {limit}")
    if not value.isprintable() and any(
        unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in value
    ):
        raise SchemaError("bad_value", f"{field} contains control characters")
    return value


def _choice(obj: dict[str, Any], field: str, allowed: tuple[str, ...], default: str) -> str:
    value = _text(obj, field, required=False, limit=_CHOICE_LENGTH)
    if value is None:
        return default
    value = value.lower()
    if value not in allowed:
        raise SchemaError(
            "bad_value", f"{field} must be one of {'|'.join(allowed)}, got {value!r:.40}"
        )
    return value


def _count(obj: dict[str, Any], field: str) -> int | None:
    value = obj.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError("wrong_type", f"{field} must be an integer, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise SchemaError("wrong_type", f"{field} must be an integer, got {value!r}")
        value = int(value)
    if value < 0:
        raise SchemaError("negative_count", f"{field} is negative ({value})")
    if value > MAX_COUNT:
        raise SchemaError("absurd_count", f"{field} {value} exceeds {MAX_COUNT}")
    return value


def parse_event(obj: Any, limits: Limits = DEFAULT_LIMITS) -> AccessEvent:
    """Validate one native JSON object into an ``AccessEvent``.

    ``limits`` bounds the text fields (``too_large``).

    >>> parse_event({"ts": "2026-01-05T09:00:00Z", "principal": "ana", "resource": "hr.salaries",
    ...              "sensitivity": "restricted"}).sensitivity
    'restricted'
    >>> parse_event({"ts": 1767600000, "principal": "ana", "resource": "hr.salaries"},
    ...             Limits(max_id_length=8))
    Traceback (most recent call last):
    reachwatch.models.errors.SchemaError: too_large: resource is 11 characters, limit 8
    """
    id_length = limits.max_id_length
    field_length = limits.max_field_length
    if not isinstance(obj, dict):
        raise SchemaError("not_object", f"expected a JSON object, got {type(obj).__name__}")
    if "ts" not in obj or obj["ts"] is None:
        raise SchemaError("missing_field", "ts is required")
    ts = parse_timestamp(obj["ts"])
    principal = _text(obj, "principal", required=True, limit=id_length)
    resource = _text(obj, "resource", required=True, limit=id_length)
    assert principal is not None and resource is not None
    return AccessEvent(
        ts=ts,
        principal=principal,
        resource=resource,
        principal_type=_choice(obj, "principal_type", PRINCIPAL_TYPES, "human"),
        principal_group=_text(obj, "principal_group", required=False, limit=field_length),
        resource_group=_text(obj, "resource_group", required=False, limit=field_length),
        sensitivity=_choice(obj, "sensitivity", SENSITIVITIES, "internal"),
        action=(_text(obj, "action", required=False, limit=field_length) or "read").lower(),
        records=_count(obj, "records"),
        bytes=_count(obj, "bytes"),
        outcome=_choice(obj, "outcome", OUTCOMES, "allowed"),
        source=_text(obj, "source", required=False, limit=field_length),
    )


def rfc3339(ts: float, timespec: str = "milliseconds") -> str:
    """Epoch seconds as RFC 3339 UTC, truncated to ``timespec`` (``datetime.isoformat``).

    >>> rfc3339(1774260000.25), rfc3339(1774260000.25, "seconds")
    ('2026-03-23T10:00:00.250Z', '2026-03-23T10:00:00Z')
    """
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
