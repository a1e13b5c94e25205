"""Adapters: turning one log format's records into access events.

An adapter does two things. ``records(document)`` splits what arrived (a JSONL line, a
Kafka message, a whole JSON file) into the format's records, e.g. a CloudTrail
``{"Records": [...]}`` envelope or a Management Activity API array. ``event(record)``
maps one record to an ``AccessEvent`` under the size ``Limits`` it is given, returns None
for a valid record that is not a data read (a write, a management call: counted as
*skipped*), or raises ``SchemaError`` for a malformed record. Validation itself is
``records.parse_event``'s; adapters only map and hand the limits on.

Actions are normalised across formats to a small vocabulary so features can compare them:

========================  =====================================================
``read``                  content read (S3 GetObject, FileAccessed, OCSF Read)
``query``                 a query over a datastore (DynamoDB Query/Scan, SQL)
``list``                  enumeration of a container (ListObjects, OCSF List)
``metadata``              object metadata or ACL without content (HeadObject)
``download``              explicit download (FileDownloaded, OCSF Download)
``preview``               preview of a file (FilePreviewed, OCSF Preview)
``sync``                  sync client pulled the file (FileSyncDownloadedFull)
``share``                 audience widened to people or groups (SharingSet...)
``share-organization``    audience widened to the whole organisation (company link)
``share-anonymous``       audience widened to anyone with the link
========================  =====================================================

Share actions are kept as events (not skipped) because a widened audience is the other
half of "broad access": the features decide whether to count them as reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from reachwatch.models.errors import ConfigError
from reachwatch.models.records import DEFAULT_LIMITS, AccessEvent, Limits, parse_event
from reachwatch.streams.formats.cloudtrail import CloudTrailAdapter
from reachwatch.streams.formats.m365 import M365Adapter
from reachwatch.streams.formats.ocsf import OcsfAdapter

ADAPTER_NAMES: tuple[str, ...] = ("native", "ocsf", "cloudtrail", "m365")


class Adapter(Protocol):
    name: str

    def records(self, document: Any) -> Iterable[Any]:
        """Split one arrived document (line, message, file) into the format's records."""
        ...

    def event(self, record: Any, limits: Limits = DEFAULT_LIMITS) -> AccessEvent | None:
        """One record as an event under ``limits``; None for a valid record that is not a
        data read."""
        ...


class NativeAdapter:
    """reachwatch's own wire format: one object is one event (see ``records.parse_event``)."""

    name = "native"

    def records(self, document: Any) -> Iterable[Any]:
        return (document,)

    def event(self, record: Any, limits: Limits = DEFAULT_LIMITS) -> AccessEvent | None:
        return parse_event(record, limits)


def get_adapter(name: str) -> Adapter:
    """The adapter called ``name`` (one of ``ADAPTER_NAMES``), or ``ConfigError``."""
    factory = _FACTORIES.get(name.strip().lower())
    if factory is None:
        raise ConfigError(f"unknown adapter {name!r}; valid adapters: {', '.join(ADAPTER_NAMES)}")
    return factory()


_FACTORIES: dict[str, type[Any]] = {
    "native": NativeAdapter,
    "ocsf": OcsfAdapter,
    "cloudtrail": CloudTrailAdapter,
    "m365": M365Adapter,
}
assert tuple(_FACTORIES) == ADAPTER_NAMES
