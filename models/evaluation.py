"""Judging alerts against a simulation's labels: caught, missed, time to detect, false positives.

An incident is caught by an alert of its kind on its entity whose ``ts`` falls within
[start, end + 2 h]; time to detect is that first alert's ``ts`` minus the incident start.
A false positive is a (kind, entity) pair alerted during the test period that matches no
incident; those that are labelled benign look-alikes are named as such. Only alerts with
``ts`` in [test_start, test_end] count, so a detector is not charged for what it says about
the history it learnt from.

>>> labels = {"test_start": "2026-03-23T00:00:00Z", "test_end": "2026-03-24T00:00:00Z",
...           "incidents": [{"id": "INC-1", "type": "exposure", "kind": "broad_audience",
...                          "entity": "hr.x", "start": "2026-03-23T10:00:00Z",
...                          "end": "2026-03-23T11:00:00Z"}], "benign": []}
>>> alerts = [{"kind": "broad_audience", "entity": "hr.x", "ts": "2026-03-23T10:05:00Z",
...            "severity": "high"}]
>>> evaluate(labels, alerts).time_to_detect
{'INC-1': 300.0}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import parse_timestamp

# How long after an incident's last event an alert still counts as catching it: detectors
# that window over an hour (or wait for the hour to close) alert after the fact.
GRACE_SECONDS = 2 * 3600.0


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    type: str
    kind: str
    entity: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """What became of one incident."""

    incident: Incident
    first_alert_ts: float | None
    severity: str | None
    alerts: int  # alerts of its kind and entity within its window

    @property
    def caught(self) -> bool:
        return self.first_alert_ts is not None

    @property
    def time_to_detect(self) -> float | None:
        if self.first_alert_ts is None:
            return None
        return self.first_alert_ts - self.incident.start


@dataclass(frozen=True, slots=True)
class FalsePositive:
    """A (kind, entity) pair alerted in the test period that matches no incident."""

    kind: str
    entity: str
    alerts: int
    first_ts: float
    benign_id: str | None  # the benign look-alike it matches, if it is one
    benign_type: str | None


@dataclass(frozen=True, slots=True)
class Evaluation:
    verdicts: tuple[Verdict, ...]
    false_positives: tuple[FalsePositive, ...]
    alerts_counted: int  # alerts within the test period
    alerts_ignored: int  # alerts outside it

    @property
    def caught(self) -> list[str]:
        return [v.incident.id for v in self.verdicts if v.caught]

    @property
    def missed(self) -> list[str]:
        return [v.incident.id for v in self.verdicts if not v.caught]

    @property
    def time_to_detect(self) -> dict[str, float]:
        return {
            v.incident.id: v.time_to_detect for v in self.verdicts if v.time_to_detect is not None
        }

    @property
    def benign_alerted(self) -> list[str]:
        return [fp.benign_id for fp in self.false_positives if fp.benign_id is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "incidents": [
                {
                    "id": v.incident.id,
                    "type": v.incident.type,
                    "kind": v.incident.kind,
                    "entity": v.incident.entity,
                    "caught": v.caught,
                    "time_to_detect_s": v.time_to_detect,
                    "severity": v.severity,
                    "alerts": v.alerts,
                }
                for v in self.verdicts
            ],
            "caught": self.caught,
            "missed": self.missed,
            "false_positives": [
                {
                    "kind": fp.kind,
                    "entity": fp.entity,
                    "alerts": fp.alerts,
                    "benign_id": fp.benign_id,
                    "benign_type": fp.benign_type,
                }
                for fp in self.false_positives
            ],
            "false_positive_entities": len(self.false_positives),
            "benign_look_alikes_alerted": len(self.benign_alerted),
            "alerts_counted": self.alerts_counted,
            "alerts_ignored": self.alerts_ignored,
        }

    def render(self) -> str:
        """A plain-text table for terminals, READMEs and bench reports."""
        rows = [("incident", "type", "kind", "entity", "caught", "detect", "severity")]
        for v in self.verdicts:
            rows.append(
                (
                    v.incident.id,
                    v.incident.type,
                    v.incident.kind,
                    v.incident.entity,
                    "yes" if v.caught else "NO",
                    _duration(v.time_to_detect),
                    v.severity or "-",
                )
            )
        lines = _table(rows)
        benign = len(self.benign_alerted)
        lines.append("")
        lines.append(
            f"caught {len(self.caught)}/{len(self.verdicts)}; false-positive entities "
            f"{len(self.false_positives)} ({benign} labelled benign look-alikes, "
            f"{len(self.false_positives) - benign} other); alerts counted {self.alerts_counted}"
        )
        if self.false_positives:
            lines.append("")
            fp_rows = [("kind", "entity", "alerts", "benign look-alike")]
            for fp in self.false_positives:
                label = f"{fp.benign_id} {fp.benign_type}" if fp.benign_id else "-"
                fp_rows.append((fp.kind, fp.entity, str(fp.alerts), label))
            lines.extend(_table(fp_rows))
        return "\n".join(lines)


def evaluate(labels: dict[str, Any], alerts: Iterable[dict[str, Any]]) -> Evaluation:
    """Judge reachwatch alert objects against ``labels.json`` of a simulation."""
    if not isinstance(labels, dict):
        raise SchemaError("not_object", "labels must be a JSON object")
    test_start = parse_timestamp(_field(labels, "test_start", "labels"), "test_start")
    test_end = parse_timestamp(_field(labels, "test_end", "labels"), "test_end")
    incidents = [_incident(entry) for entry in labels.get("incidents") or []]
    benign: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in labels.get("benign") or []:
        key = (str(_field(entry, "kind", "benign")), str(_field(entry, "entity", "benign")))
        benign.setdefault(key, entry)

    counted: list[tuple[float, str, str, str | None]] = []
    ignored = 0
    for alert in alerts:
        if not isinstance(alert, dict):
            raise SchemaError("not_object", "an alert must be a JSON object")
        ts = parse_timestamp(_field(alert, "ts", "alert"))
        if not test_start <= ts <= test_end:
            ignored += 1
            continue
        severity = alert.get("severity")
        counted.append(
            (
                ts,
                str(_field(alert, "kind", "alert")),
                str(_field(alert, "entity", "alert")),
                None if severity is None else str(severity),
            )
        )
    counted.sort(key=lambda alert: alert[0])

    verdicts = []
    for incident in incidents:
        hits = [
            a
            for a in counted
            if a[1] == incident.kind
            and a[2] == incident.entity
            and incident.start <= a[0] <= incident.end + GRACE_SECONDS
        ]
        verdicts.append(
            Verdict(incident, hits[0][0] if hits else None, hits[0][3] if hits else None, len(hits))
        )

    incident_keys = {(i.kind, i.entity) for i in incidents}
    pairs: dict[tuple[str, str], list[float]] = {}
    for ts, kind, entity, _severity in counted:
        if (kind, entity) not in incident_keys:
            pairs.setdefault((kind, entity), []).append(ts)
    false_positives = []
    for (kind, entity), times in sorted(pairs.items()):
        look_alike = benign.get((kind, entity))
        false_positives.append(
            FalsePositive(
                kind,
                entity,
                len(times),
                times[0],
                None if look_alike is None else str(look_alike.get("id")),
                None if look_alike is None else str(look_alike.get("type")),
            )
        )
    return Evaluation(tuple(verdicts), tuple(false_positives), len(counted), ignored)


def _field(obj: Any, name: str, what: str) -> Any:
    if not isinstance(obj, dict):
        raise SchemaError("not_object", f"{what} must be a JSON object")
    value = obj.get(name)
    if value is None or value == "":
        raise SchemaError("missing_field", f"{what} has no {name}")
    return value


def _incident(entry: Any) -> Incident:
    start = parse_timestamp(_field(entry, "start", "incident"), "start")
    end = parse_timestamp(_field(entry, "end", "incident"), "end")
    if end < start:
        raise SchemaError("bad_value", f"incident {entry.get('id')!r} ends before it starts")
    return Incident(
        id=str(_field(entry, "id", "incident")),
        type=str(entry.get("type") or "-"),
        kind=str(_field(entry, "kind", "incident")),
        entity=str(_field(entry, "entity", "incident")),
        start=start,
        end=end,
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines
