"""Messages: the ingest chain's reader for Kafka messages (``reachwatch run``).

A message can carry several records (a CloudTrail envelope, an M365 array). Good records go
on even when a sibling is malformed; the malformed ones are reported so the whole message
is dead-lettered once, with the first failure as its reason.

Size limits come with the ``Chain``: ``max_message_bytes`` and ``max_nesting`` bound the
message here, the field limits bound every record the chain's adapter maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import AccessEvent, decode_json
from reachwatch.streams.ingest.chain import Chain


@dataclass(slots=True)
class MessageOutcome:
    """What became of one message."""

    events: list[AccessEvent] = field(default_factory=list)
    skipped: int = 0
    rejected: SchemaError | None = None
    bad_records: int = 0


def read_message(raw: bytes | None, chain: Chain) -> MessageOutcome:
    """Decode, split and map one message through ``chain``, under its limits.

    >>> from reachwatch.models.records import Limits
    >>> from reachwatch.streams.formats.adapters import get_adapter
    >>> chain = Chain(get_adapter("native"), limits=Limits(max_message_bytes=40))
    >>> read_message(b'{"ts": 1767600000, "principal": "ana"}', chain).rejected.code
    'missing_field'
    >>> read_message(b'{"ts": 1767600000, "principal": "ana", "resource": "hr"}',
    ...              chain).rejected.detail
    'message is 56 bytes, limit 40'
    """
    outcome = MessageOutcome()
    if raw is None:
        outcome.rejected = SchemaError("not_json", "message has no value (tombstone)")
        return outcome
    limit = chain.limits.max_message_bytes
    if len(raw) > limit:
        outcome.rejected = SchemaError("too_large", f"message is {len(raw)} bytes, limit {limit}")
        return outcome
    try:
        records = chain.records(decode_json(raw, limits=chain.limits))
    except SchemaError as exc:
        outcome.rejected = exc
        return outcome
    for index, record in enumerate(records):
        try:
            event = chain.event(record)
        except SchemaError as error:
            outcome.bad_records += 1
            if outcome.rejected is None:
                where = f"record {index + 1} of {len(records)}: " if len(records) > 1 else ""
                outcome.rejected = SchemaError(error.code, where + error.detail)
            continue
        if event is None:
            outcome.skipped += 1
        else:
            outcome.events.append(event)
    return outcome
