"""Intake: one raw input message to the access events it holds, or the reason it holds none.

A message can carry several records (a CloudTrail envelope, an M365 array). Good records go
on even when a sibling is malformed; the malformed ones are reported so the whole message
is dead-lettered once, with the first failure as its reason.

Size limits (``records.Limits``, from the service settings) apply to the message bytes, its
JSON nesting and every field of every record: they are in force while the adapter maps the
records, since adapters hand fields to ``parse_event`` without carrying limits themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import (
    DEFAULT_LIMITS,
    AccessEvent,
    Limits,
    decode_json,
    enforce_limits,
    restore_limits,
)
from reachwatch.streams.formats.adapters import Adapter


@dataclass(slots=True)
class Intake:
    """What became of one message."""

    events: list[AccessEvent] = field(default_factory=list)
    skipped: int = 0
    rejected: SchemaError | None = None
    bad_records: int = 0


def admit(
    raw: bytes | None,
    adapter: Adapter,
    max_bytes: int | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> Intake:
    """Decode, split and validate one message under ``limits``.

    ``max_bytes``, when given, overrides ``limits.max_message_bytes`` (the older call form).

    >>> from reachwatch.streams.formats.adapters import get_adapter
    >>> admit(b'{"ts": 1767600000, "principal": "ana"}', get_adapter("native"), 1000).rejected.code
    'missing_field'
    >>> admit(b'{"ts": 1767600000, "principal": "ana", "resource": "hr.salaries"}',
    ...       get_adapter("native"), limits=Limits(max_id_length=8)).rejected.detail
    'resource is 11 characters, limit 8'
    """
    intake = Intake()
    if raw is None:
        intake.rejected = SchemaError("not_json", "message has no value (tombstone)")
        return intake
    if max_bytes is None:
        max_bytes = limits.max_message_bytes
    if len(raw) > max_bytes:
        detail = f"message is {len(raw)} bytes, limit {max_bytes}"
        intake.rejected = SchemaError("too_large", detail)
        return intake
    token = enforce_limits(limits)
    try:
        _map_records(raw, adapter, limits, intake)
    finally:
        restore_limits(token)
    return intake


def _map_records(raw: bytes, adapter: Adapter, limits: Limits, intake: Intake) -> None:
    """Split and map one decoded message into ``intake`` (events, skips, first failure)."""
    try:
        records = list(adapter.records(decode_json(raw, limits=limits)))
    except SchemaError as exc:
        intake.rejected = exc
        return
    except Exception as exc:  # an adapter bug must not stop the stream
        intake.rejected = SchemaError("adapter_error", f"{type(exc).__name__}: {exc}"[:300])
        return
    for index, record in enumerate(records):
        try:
            event = adapter.event(record)
        except SchemaError as exc:
            error = exc
        except Exception as exc:
            error = SchemaError("adapter_error", f"{type(exc).__name__}: {exc}"[:300])
        else:
            if event is None:
                intake.skipped += 1
            else:
                intake.events.append(event)
            continue
        intake.bad_records += 1
        if intake.rejected is None:
            where = f"record {index + 1} of {len(records)}: " if len(records) > 1 else ""
            intake.rejected = SchemaError(error.code, where + error.detail)
