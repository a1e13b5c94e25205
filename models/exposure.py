"""The exposure record: who outside a resource's usual audience read it, since when.

A ``broad_audience`` alert says *that* a dataset's audience widened; the people who must
then tell the affected employees and close the hole need *who* read it, *when*, and
*through which change*. An ``ExposureRecord`` answers that for one resource:

- every reader outside the usual audience — not of the owning team and not an established
  reader (one the resource's novelty memory had seen within its horizon before the read)
  — with team, first and last read, reads, records, bytes,
  actions and sources;
- from the first such read on: before an alert opens, a resource's outside newcomers of
  the last ``LOOKBACK`` seconds (the detection window) are kept *watching*, so the reads
  that raised the alert are in the record too; an opened alert turns the record *open*
  and it keeps every outside newcomer until the alert closes;
- bounded: at most ``cap`` readers; reads by further readers are counted as overflow;
- the cause, looked up in the grant log (``models.grants``) when the record is published.

Identities are whatever the events carry: with pseudonymisation on, pseudonyms.

>>> from reachwatch.models.records import AccessEvent
>>> rec = ExposureRecord("hr/reviews", sensitivity="restricted", owner="hr")
>>> e = AccessEvent(ts=1774368000.0, principal="ana", resource="hr/reviews",
...                 principal_group="sales", resource_group="hr", action="download")
>>> rec.note(e)
True
>>> rec.readers["ana"].reads, rec.downloaders()
(1, 1)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reachwatch.models.records import AccessEvent

EXPOSURE_SCHEMA_VERSION = 1
LOOKBACK = 3600.0  # how far before an alert opens its record reaches (the 1 h window)
CLOSED_RETENTION = 7 * 86400.0  # event time a closed record stays queryable by the worker
DEFAULT_CAP = 10_000  # readers per record (a 100k-reader exposure keeps counting overflow)
MAX_SOURCES = 4  # distinct sources kept per reader
# Event times of a reader's latest reads, kept to recognise a read seen before: the stream
# is at-least-once, and a batch replayed after a crash must not count its reads twice.
RECENT_READS = 8
DOWNLOAD_ACTIONS = frozenset({"download", "export", "sync"})
STATES = ("watching", "open", "closed")
CSV_FIELDS = (
    "principal",
    "group",
    "principal_type",
    "first_read",
    "last_read",
    "reads",
    "records",
    "bytes",
    "actions",
    "sources",
)


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Reader:
    """One outside reader of an exposed resource."""

    principal: str
    group: str | None
    principal_type: str
    first_read: float
    last_read: float
    reads: int = 0
    records: int = 0
    bytes: int = 0
    actions: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)

    def note(self, event: AccessEvent) -> bool:
        """Count one read; False for a read already counted (a replay)."""
        if event.ts in self.recent:
            return False
        self.recent.append(event.ts)
        if len(self.recent) > RECENT_READS:
            del self.recent[0]
        self.first_read = min(self.first_read, event.ts)
        self.last_read = max(self.last_read, event.ts)
        self.reads += 1
        self.records += event.records or 0
        self.bytes += event.bytes or 0
        if event.action not in self.actions:
            self.actions.append(event.action)
        if event.source and event.source not in self.sources and len(self.sources) < MAX_SOURCES:
            self.sources.append(event.source)
        if event.principal_group and not self.group:
            self.group = event.principal_group
        return True

    def to_obj(self) -> list[Any]:
        return [
            self.principal,
            self.group,
            self.principal_type,
            self.first_read,
            self.last_read,
            self.reads,
            self.records,
            self.bytes,
            self.actions,
            self.sources,
            self.recent,
        ]

    @classmethod
    def from_obj(cls, obj: Sequence[Any]) -> Reader:
        return cls(
            obj[0],
            obj[1],
            obj[2],
            obj[3],
            obj[4],
            obj[5],
            obj[6],
            obj[7],
            list(obj[8]),
            list(obj[9]),
            list(obj[10]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "group": self.group,
            "principal_type": self.principal_type,
            "first_read": rfc3339(self.first_read),
            "last_read": rfc3339(self.last_read),
            "reads": self.reads,
            "records": self.records,
            "bytes": self.bytes,
            "actions": sorted(self.actions),
            "sources": list(self.sources),
        }


@dataclass(slots=True)
class ExposureRecord:
    """Outside readers of one resource (see the module docstring)."""

    resource: str
    sensitivity: str = "internal"
    owner: str | None = None
    state: str = "watching"
    alert_id: str | None = None
    severity: str | None = None
    opened: float | None = None  # event time the alert opened
    closed: float | None = None
    alert_last_ts: float | None = None  # last unusually broad read (the alert's clock)
    cause: dict[str, Any] | None = None
    cap: int = DEFAULT_CAP
    overflow_reads: int = 0
    readers: dict[str, Reader] = field(default_factory=dict)
    published_readers: int = -1  # readers at the last publication (-1: never published)

    # -- reads ------------------------------------------------------------------------
    def note(self, event: AccessEvent) -> bool:
        """Count one outside read; True when it adds a reader (the audience grew)."""
        if event.sensitivity and self.state == "watching":
            self.sensitivity = event.sensitivity
        if event.resource_group and not self.owner:
            self.owner = event.resource_group
        reader = self.readers.get(event.principal)
        if reader is not None:
            reader.note(event)
            return False
        if len(self.readers) >= self.cap:
            self.overflow_reads += 1
            return False
        reader = self.readers[event.principal] = Reader(
            event.principal, event.principal_group, event.principal_type, event.ts, event.ts
        )
        reader.note(event)
        return True

    def forget_before(self, horizon: float) -> None:
        """While watching, keep only readers active since ``horizon`` (the lookback)."""
        if self.state != "watching":
            return
        for principal in [p for p, r in self.readers.items() if r.last_read < horizon]:
            del self.readers[principal]

    def open(self, alert_id: str, ts: float, severity: str, sensitivity: str) -> None:
        self.state = "open"
        self.alert_id = alert_id
        self.opened = ts
        self.alert_last_ts = ts
        self.severity = severity
        self.sensitivity = sensitivity

    def close(self, ts: float) -> None:
        self.state = "closed"
        self.closed = ts

    # -- figures ------------------------------------------------------------------------
    @property
    def first_read(self) -> float | None:
        return min((r.first_read for r in self.readers.values()), default=None)

    @property
    def last_read(self) -> float | None:
        return max((r.last_read for r in self.readers.values()), default=None)

    def teams(self) -> set[str]:
        return {r.group or "unknown" for r in self.readers.values()}

    def downloaders(self) -> int:
        return sum(1 for r in self.readers.values() if DOWNLOAD_ACTIONS & set(r.actions))

    def summary(self) -> str:
        """One plain sentence for legal, HR and the on-call engineer."""
        first, last = self.first_read, self.last_read
        people = sum(1 for r in self.readers.values() if r.principal_type != "service")
        services = len(self.readers) - people
        who = f"{people} {'person' if people == 1 else 'people'}"
        if services:
            who += f" and {services} service account{'s' if services != 1 else ''}"
        teams = len(self.teams())
        owner = self.owner or "its owning team"
        head = f"{self.resource} ({self.sensitivity}) "
        if first is None or last is None:
            return head + f"has no reader outside {owner} on record"
        text = (
            f"{head}was read by {who} of {teams} team{'s' if teams != 1 else ''} outside "
            f"{owner} between {_when(first)} and {_when(last, first)} UTC"
        )
        if self.overflow_reads:
            text += f" (plus {self.overflow_reads} reads by readers beyond the cap of {self.cap})"
        downloads = self.downloaders()
        text += f"; {downloads} downloaded it" if downloads else "; none downloaded it"
        if self.cause is not None:
            text += f"; {self.cause['text']}"
        if self.closed is not None:
            text += f"; alert closed at {_when(self.closed)} UTC"
        return text

    # -- serialisation ----------------------------------------------------------------
    def to_obj(self) -> list[Any]:
        return [
            EXPOSURE_SCHEMA_VERSION,
            self.resource,
            self.sensitivity,
            self.owner,
            self.state,
            self.alert_id,
            self.severity,
            self.opened,
            self.closed,
            self.alert_last_ts,
            self.cause,
            self.cap,
            self.overflow_reads,
            self.published_readers,
            [r.to_obj() for r in self.readers.values()],
        ]

    @classmethod
    def from_obj(cls, obj: Sequence[Any]) -> ExposureRecord:
        record = cls(
            resource=obj[1],
            sensitivity=obj[2],
            owner=obj[3],
            state=obj[4],
            alert_id=obj[5],
            severity=obj[6],
            opened=obj[7],
            closed=obj[8],
            alert_last_ts=obj[9],
            cause=obj[10],
            cap=obj[11],
            overflow_reads=obj[12],
            published_readers=obj[13],
        )
        record.readers = {r[0]: Reader.from_obj(r) for r in obj[14]}
        return record

    def to_json(self) -> dict[str, Any]:
        """The published form (``access-exposures`` topic, web API, ``exposure-report``)."""
        readers = sorted(self.readers.values(), key=lambda r: (r.first_read, r.principal))
        return {
            "schema_version": EXPOSURE_SCHEMA_VERSION,
            "resource": self.resource,
            "sensitivity": self.sensitivity,
            "owner": self.owner,
            "state": self.state,
            "alert_id": self.alert_id,
            "severity": self.severity,
            "opened": rfc3339(self.opened),
            "closed": rfc3339(self.closed),
            "first_read": rfc3339(self.first_read),
            "last_read": rfc3339(self.last_read),
            "cause": self.cause,
            "summary": self.summary(),
            "reader_count": len(self.readers),
            "team_count": len(self.teams()),
            "downloaders": self.downloaders(),
            "overflow_reads": self.overflow_reads,
            "cap": self.cap,
            "readers": [r.to_json() for r in readers],
        }


def _when(ts: float, same_day_as: float | None = None) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if same_day_as is not None and datetime.fromtimestamp(same_day_as, UTC).date() == (
        moment.date()
    ):
        return f"{moment:%H:%M}"
    return f"{moment:%Y-%m-%d %H:%M}"


def is_outside_newcomer(event: AccessEvent, first_time: bool) -> bool:
    """A read from outside the usual audience: not the owning team, not an established reader.

    A reader whose team is unknown counts as outside: without enrichment (CloudTrail and
    M365 carry no teams) every newcomer is listed, which errs on the side of telling.
    """
    if event.sensitivity == "public":
        return False  # public data read by everyone is what public means
    in_team = event.principal_group is not None and event.principal_group == event.resource_group
    return first_time and not in_team


def newcomers(events: Iterable[AccessEvent], states: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(resource, principal) pairs of ``events`` whose reader is not established.

    Call *before* the batch is scored: the resource's novelty memory then still says who
    had read it within its horizon (45 days) before these reads. A resource without state
    yet has no established reader. Reads that cannot be from outside the usual audience
    (public data, the owning team) are left out (``is_outside_newcomer``).
    """
    out: set[tuple[str, str]] = set()
    for event in events:
        if not is_outside_newcomer(event, True):
            continue  # public data or the owning team: never outside, whatever the memory
        state = states.get(event.resource)
        memory = getattr(state, "memory", None)
        last = memory.seen.get(event.principal) if memory is not None else None
        if last is None or int(event.ts // 86400.0) - last > memory.horizon_days:
            out.add((event.resource, event.principal))
    return out


@dataclass
class ExposureChanges:
    """What one batch did to the records: which to store, publish, and delete."""

    touched: set[str] = field(default_factory=set)  # resources whose record changed
    grown: set[str] = field(default_factory=set)  # records to publish (audience grew/opened)
    closed: list[ExposureRecord] = field(default_factory=list)  # final records, to publish
    dropped: set[str] = field(default_factory=set)  # watching records left empty: delete


class ExposureTracker:
    """Keeps the records of a set of resources up to date, batch by batch (no Kafka).

    ``records`` is a mapping the caller owns (a dict offline; in the stream a dict filled
    from, and written back to, a changelog table).
    """

    def __init__(self, cap: int = DEFAULT_CAP, lookback: float = LOOKBACK) -> None:
        self.cap = cap
        self.lookback = lookback

    def observe(
        self,
        events: Iterable[AccessEvent],
        states: Mapping[str, Any],
        alerts: Iterable[Any],
        records: dict[str, ExposureRecord],
        new: set[tuple[str, str]],
    ) -> ExposureChanges:
        """Reads of one scored resource batch, the alerts it raised, and its ``newcomers``."""
        changes = ExposureChanges()
        # Alerts are applied in event order among the reads: a batch can span more than the
        # lookback, and the reads after an alert opened must not be pruned as "watching".
        pending = sorted(
            (a for a in alerts if a.kind == "broad_audience"), key=lambda a: a.ts, reverse=True
        )
        for event in events:
            while pending and pending[-1].ts <= event.ts:
                self._apply_alert(pending.pop(), records, changes)
            record = records.get(event.resource)
            if record is not None and record.state == "closed":
                record = None  # kept for queries only; a new widening starts a new record
            # ``new`` holds outside newcomers only (see ``newcomers``): a set lookup per
            # read is all most reads cost here.
            if (record is None or event.principal not in record.readers) and (
                event.resource,
                event.principal,
            ) not in new:
                continue
            if record is None:
                record = records[event.resource] = ExposureRecord(
                    event.resource, event.sensitivity, event.resource_group, cap=self.cap
                )
            if record.note(event):
                changes.grown.add(event.resource)
            changes.touched.add(event.resource)
        while pending:
            self._apply_alert(pending.pop(), records, changes)
        # Watching reaches back one detection window, no further: pruned when an alert
        # opens (``_apply_alert``) and here, once per batch, against the latest read.
        for resource in list(changes.touched):
            record = records.get(resource)
            if record is not None and record.state == "watching":
                latest = record.last_read
                if latest is not None:
                    record.forget_before(latest - self.lookback)
            if record is not None and record.state == "watching" and not record.readers:
                del records[resource]
                changes.dropped.add(resource)
                changes.touched.discard(resource)
                changes.grown.discard(resource)
        # The open alert's clock: the last unusually broad read (the alert policy's).
        for resource in changes.touched:
            record = records[resource]
            open_alert = getattr(states.get(resource), "open_alert", None)
            if (
                record.state == "open"
                and open_alert is not None
                and (open_alert.alert_id == record.alert_id)
            ):
                record.alert_last_ts = open_alert.last_ts
        return changes

    def _apply_alert(
        self, alert: Any, records: dict[str, ExposureRecord], changes: ExposureChanges
    ) -> None:
        record = records.get(alert.entity)
        if record is None or record.state == "closed":
            record = records[alert.entity] = ExposureRecord(
                alert.entity,
                alert.context.get("sensitivity", "internal"),
                alert.context.get("team"),
                cap=self.cap,
            )
        if record.alert_id != alert.alert_id:
            record.forget_before(alert.ts - self.lookback)
            record.open(
                alert.alert_id,
                alert.first_ts,
                alert.severity,
                alert.context.get("sensitivity", record.sensitivity),
            )
            changes.grown.add(alert.entity)
        else:
            record.severity = alert.severity
        changes.touched.add(alert.entity)

    def close(self, record: ExposureRecord, ts: float) -> ExposureRecord:
        record.close(ts)
        return record

    def stale(self, records: Mapping[str, ExposureRecord], clock: float) -> list[str]:
        """Records to forget at event time ``clock``: watching ones whose readers all left
        the lookback, closed ones past ``CLOSED_RETENTION``."""
        out = []
        for resource, record in records.items():
            last = record.last_read
            if record.state == "watching" and (last is None or last < clock - self.lookback):
                out.append(resource)
            elif record.state == "closed" and (record.closed or 0.0) < clock - CLOSED_RETENTION:
                out.append(resource)
        return out


def readers_csv(record: Mapping[str, Any]) -> str:
    """The readers of a published record (``to_json`` form) as CSV, for legal and HR."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for reader in record.get("readers", ()):
        writer.writerow(
            [
                reader.get("principal"),
                reader.get("group"),
                reader.get("principal_type"),
                reader.get("first_read"),
                reader.get("last_read"),
                reader.get("reads"),
                reader.get("records"),
                reader.get("bytes"),
                " ".join(reader.get("actions", ())),
                " ".join(reader.get("sources", ())),
            ]
        )
    return out.getvalue()


def summary_of(record: Mapping[str, Any]) -> str:
    """The plain summary of a published record (kept in it; rebuilt when absent)."""
    summary = record.get("summary")
    return str(summary) if summary else f"{record.get('resource')}: no summary"
