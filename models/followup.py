"""After a scored batch: alert lifecycle, exposure records and the grant log, for one side.

The scoring pipeline decides alerts; ``FollowUp`` carries them on. Per batch of one side it
keeps each open alert's last unusually broad read, closes alerts whose quiet period is
over (``models.lifecycle``), and on the resource side files grant events
(``models.grants``) and keeps the exposure record of every resource whose audience widens
(``models.exposure``), naming the grant that caused it. It returns what to publish, in
order; the caller owns the mappings (dicts offline, changelog tables in the stream) and
writes back what ``touched`` names.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reachwatch.models.exposure import DEFAULT_CAP, ExposureRecord, ExposureTracker, newcomers
from reachwatch.models.grants import GrantLog
from reachwatch.models.lifecycle import AlertBook
from reachwatch.models.records import AccessEvent

SIDE_KINDS = {"principal": "broad_reader", "resource": "broad_audience"}


@dataclass
class FollowUpResult:
    """What one batch produced beyond its scored alerts."""

    messages: list[dict[str, Any]] = field(default_factory=list)  # lifecycle, in order
    exposures: list[dict[str, Any]] = field(default_factory=list)  # records to publish
    records_touched: set[str] = field(default_factory=set)  # exposure records to write
    records_deleted: set[str] = field(default_factory=set)
    grant_scopes: set[str] = field(default_factory=set)  # grant log keys written
    closed: list[dict[str, Any]] = field(default_factory=list)  # the closed messages


class FollowUp:
    """Lifecycle and exposures of one side over mappings the caller owns."""

    def __init__(
        self,
        side: str,
        *,
        quiet_period: float = 24 * 3600.0,
        cap: int = DEFAULT_CAP,
        book: MutableMapping[str, dict[str, Any]] | None = None,
        exposures: MutableMapping[str, ExposureRecord] | None = None,
        grants: MutableMapping[str, list[list[Any]]] | None = None,
    ) -> None:
        self.side = side
        self.kind = SIDE_KINDS[side]
        self.book = AlertBook(quiet_period, book)
        self.tracker = ExposureTracker(cap)
        self.exposures: MutableMapping[str, ExposureRecord] = (
            exposures if exposures is not None else {}
        )
        self.grants = GrantLog(grants)  # type: ignore[arg-type]

    def before_batch(
        self, reads: Sequence[AccessEvent], states: Mapping[str, Any]
    ) -> set[tuple[str, str]]:
        """Call before scoring: which readers of the batch are new to their resource."""
        return newcomers(reads, states) if self.side == "resource" else set()

    def after_batch(
        self,
        reads: Sequence[AccessEvent],
        grants: Sequence[AccessEvent],
        states: Mapping[str, Any],
        alerts: Sequence[Any],
        touched: set[str],
        clock: float,
        new: set[tuple[str, str]] | None = None,
        records: dict[str, ExposureRecord] | None = None,
    ) -> FollowUpResult:
        """One batch: ``alerts`` as the policy raised them, ``clock`` the side's event time.

        ``new`` is what ``before_batch`` returned for the same reads. ``records`` holds
        the exposure records of this batch's resources (the stream loads them from its
        table; offline the tracker's own mapping is used).
        """
        out = FollowUpResult()
        book = self.book
        # 1. Extend open alerts by this batch's broad reads (the policy moved last_ts).
        for key in touched:
            open_alert = getattr(states.get(key), "open_alert", None)
            if open_alert is not None:
                book.touch(key, open_alert.alert_id, open_alert.last_ts)
        # 2. Close what has been quiet long enough, before anything new for the same entity.
        for closed in book.close_due(clock):
            out.messages.append(closed)
            out.closed.append(closed)
        # 3. The batch's own alerts, in order.
        for alert in alerts:
            message = alert.to_json()
            book.record(message, last_ts=alert.ts)
            out.messages.append(message)
        if self.side != "resource":
            return out
        # 4. Grants, then exposure records (resource side only).
        out.grant_scopes = self.grants.add_events(grants)
        records = self.exposures if records is None else records  # type: ignore[assignment]
        changes = self.tracker.observe(
            reads,
            states,
            alerts,
            records,
            new or set(),  # type: ignore[arg-type]
        )
        out.records_touched |= changes.touched
        out.records_deleted |= changes.dropped
        for resource in sorted(changes.grown):
            record = records[resource]
            if record.state == "open":
                out.exposures.append(self.publishable(record))
        for closed in out.closed:
            record = records.get(closed["entity"]) or self.exposures.get(closed["entity"])
            if record is None or record.alert_id != closed["alert_id"]:
                continue
            self.tracker.close(record, _epoch(closed["ts"]))
            out.exposures.append(self.publishable(record))
            # Kept, closed, for queries until a new widening or the retention replaces it.
            records[record.resource] = record
            out.records_touched.add(record.resource)
        return out

    def sweep(self, clock: float) -> list[str]:
        """Forget stale exposure records (see ``ExposureTracker.stale``); returns them."""
        stale = self.tracker.stale(self.exposures, clock)
        for resource in stale:
            del self.exposures[resource]
        return stale

    def publishable(self, record: ExposureRecord) -> dict[str, Any]:
        # The cause: the last grant before the alert opened (the widening the detector saw;
        # a stray outside reader just before the change must not hide it), recomputed at
        # every publication because a grant can arrive after the first reads.
        widened = record.opened if record.opened is not None else record.first_read
        if widened is not None:
            record.cause = self.grants.cause_for(record.resource, before=widened)
        record.published_readers = len(record.readers)
        return record.to_json()


def _epoch(text: str) -> float:
    from reachwatch.models.records import parse_timestamp

    return parse_timestamp(text)
