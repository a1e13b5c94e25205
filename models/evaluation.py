"""Judging alerts against a simulation's labels: caught, missed, time to detect, false positives.

An incident is caught by an alert of its kind on its entity whose ``ts`` falls within
[start, end + 2 h]; time to detect is that first alert's ``ts`` minus the incident start,
or for an exposure minus its first out-of-audience read (``first_outside_read``) when the
labels give one. A false positive is a (kind, entity) pair alerted during the test period
that matches no incident; those that are labelled benign look-alikes are named as such,
with the highest severity they reached. Only alerts with ``ts`` in [test_start, test_end]
count, so a detector is not charged for what it says about the history it learnt from.

``scorecard`` pools the evaluations of many companies: recall and time to detect per
incident type (and per exposure variant), false-positive entities per company-day, and
look-alike hits by type and severity.

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

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import parse_timestamp

# How long after an incident's last event an alert still counts as catching it: detectors
# that window over an hour (or wait for the hour to close) alert after the fact.
GRACE_SECONDS = 2 * 3600.0
SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    type: str
    kind: str
    entity: str
    start: float
    end: float
    first_outside_read: float | None = None  # exposures: when the first outsider read it
    variant: dict[str, Any] = field(default_factory=dict)

    @property
    def detect_from(self) -> float:
        """The moment time to detect counts from."""
        return self.start if self.first_outside_read is None else self.first_outside_read


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
        return max(0.0, self.first_alert_ts - self.incident.detect_from)


@dataclass(frozen=True, slots=True)
class FalsePositive:
    """A (kind, entity) pair alerted in the test period that matches no incident."""

    kind: str
    entity: str
    alerts: int
    first_ts: float
    benign_id: str | None  # the benign look-alike it matches, if it is one
    benign_type: str | None
    severity: str | None = None  # the highest severity among its alerts


@dataclass(frozen=True, slots=True)
class Evaluation:
    verdicts: tuple[Verdict, ...]
    false_positives: tuple[FalsePositive, ...]
    alerts_counted: int  # alerts within the test period
    alerts_ignored: int  # alerts outside it
    test_days: float = 1.0  # length of the test period, for rates per company-day
    look_alikes: int = 0  # benign look-alikes the labels list

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

    @property
    def false_positives_per_day(self) -> float:
        return len(self.false_positives) / self.test_days

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
                    "variant": v.incident.variant,
                    "start_ts": v.incident.start,
                    "end_ts": v.incident.end,
                    "first_outside_read_ts": v.incident.first_outside_read,
                    "first_alert_ts": v.first_alert_ts,
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
                    "severity": fp.severity,
                    "first_ts": fp.first_ts,
                }
                for fp in self.false_positives
            ],
            "false_positive_entities": len(self.false_positives),
            "false_positive_entities_per_day": self.false_positives_per_day,
            "test_days": self.test_days,
            "look_alikes": self.look_alikes,
            "benign_look_alikes_alerted": len(self.benign_alerted),
            "alerts_counted": self.alerts_counted,
            "alerts_ignored": self.alerts_ignored,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Evaluation:
        """The inverse of ``to_json`` (evaluations travel between processes as JSON)."""
        verdicts = tuple(
            Verdict(
                Incident(v["id"], v["type"], v["kind"], v["entity"], v["start_ts"], v["end_ts"],
                         v.get("first_outside_read_ts"), v.get("variant") or {}),
                v["first_alert_ts"], v["severity"], v["alerts"],
            )
            for v in doc["incidents"]
        )
        false_positives = tuple(
            FalsePositive(fp["kind"], fp["entity"], fp["alerts"], fp["first_ts"],
                          fp["benign_id"], fp["benign_type"], fp.get("severity"))
            for fp in doc["false_positives"]
        )
        return cls(verdicts, false_positives, doc["alerts_counted"], doc["alerts_ignored"],
                   doc["test_days"], doc.get("look_alikes", 0))

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
            fp_rows = [("kind", "entity", "alerts", "severity", "benign look-alike")]
            for fp in self.false_positives:
                label = f"{fp.benign_id} {fp.benign_type}" if fp.benign_id else "-"
                fp_rows.append((fp.kind, fp.entity, str(fp.alerts), fp.severity or "-", label))
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
            Verdict(
                incident,
                hits[0][0] if hits else None,
                _highest(a[3] for a in hits) if hits else None,
                len(hits),
            )
        )

    incident_keys = {(i.kind, i.entity) for i in incidents}
    pairs: dict[tuple[str, str], list[tuple[float, str | None]]] = {}
    for ts, kind, entity, severity in counted:
        if (kind, entity) not in incident_keys:
            pairs.setdefault((kind, entity), []).append((ts, severity))
    false_positives = []
    for (kind, entity), hits in sorted(pairs.items()):
        look_alike = benign.get((kind, entity))
        false_positives.append(
            FalsePositive(
                kind,
                entity,
                len(hits),
                hits[0][0],
                None if look_alike is None else str(look_alike.get("id")),
                None if look_alike is None else str(look_alike.get("type")),
                _highest(severity for _, severity in hits),
            )
        )
    days = max(1e-9, (test_end - test_start) / 86400.0)
    return Evaluation(
        tuple(verdicts), tuple(false_positives), len(counted), ignored, days, len(benign)
    )


def scorecard(evaluations: Sequence[Evaluation]) -> dict[str, Any]:
    """Pool many companies' evaluations into the figures a detector is judged by.

    Recall and time to detect per incident type and per exposure variant (``worst`` is over
    the caught ones; ``missed`` says how many were not), false-positive entities per
    company-day (all of them over all test days), and look-alike hits by type and by the
    highest severity reached.

    >>> labels = {"test_start": "2026-03-23T00:00:00Z", "test_end": "2026-03-25T00:00:00Z",
    ...           "incidents": [], "benign": [{"id": "BEN-1", "type": "service_backup",
    ...                                        "kind": "broad_reader", "entity": "svc-b"}]}
    >>> alerts = [{"kind": "broad_reader", "entity": "svc-b", "ts": "2026-03-23T02:00:00Z",
    ...            "severity": "low"}]
    >>> card = scorecard([evaluate(labels, alerts)])
    >>> card["false_positive_entities_per_company_day"], card["look_alikes_above_low"]
    (0.5, 0)
    """
    verdicts = [v for e in evaluations for v in e.verdicts]
    by_type: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        by_type.setdefault(verdict.incident.type, []).append(verdict)
    exposures = [v for v in by_type.get("exposure", [])
                 if v.incident.variant.get("sensitivity", "restricted")
                 in ("restricted", "confidential")]
    by_variant: dict[str, list[Verdict]] = {}
    for verdict in by_type.get("exposure", []):
        for key, value in sorted(verdict.incident.variant.items()):
            if key == "grant":  # the access-control change: in the logs or not, and which
                logged = "logged" if value else "not logged"
                by_variant.setdefault(f"grant {logged}", []).append(verdict)
            if isinstance(value, str):
                by_variant.setdefault(f"{key}={value}", []).append(verdict)
    false_positives = [fp for e in evaluations for fp in e.false_positives]
    hits = [fp for fp in false_positives if fp.benign_id is not None]
    days = sum(e.test_days for e in evaluations)
    hit_types: dict[str, int] = {}
    hit_severities: dict[str, int] = {}
    for fp in hits:
        hit_types[str(fp.benign_type)] = hit_types.get(str(fp.benign_type), 0) + 1
        hit_severities[fp.severity or "-"] = hit_severities.get(fp.severity or "-", 0) + 1
    above_low = [fp for fp in hits if fp.severity not in (None, "low")]
    return {
        "companies": len(evaluations),
        "company_days": days,
        **_score(verdicts),
        "by_type": {name: _score(group) for name, group in sorted(by_type.items())},
        "exposures": _score(exposures),
        "exposures_by_variant": {k: _score(g) for k, g in sorted(by_variant.items())},
        "false_positive_entities": len(false_positives),
        "false_positive_entities_per_company_day": len(false_positives) / days if days else 0.0,
        "look_alikes": sum(e.look_alikes for e in evaluations),
        "look_alike_hits": len(hits),
        "look_alike_hits_by_type": dict(sorted(hit_types.items())),
        "look_alike_hits_by_severity": dict(sorted(hit_severities.items())),
        "look_alikes_above_low": len(above_low),
    }


def _score(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    times = sorted(v.time_to_detect for v in verdicts if v.time_to_detect is not None)
    caught = len(times)
    return {
        "incidents": len(verdicts),
        "caught": caught,
        "missed": len(verdicts) - caught,
        "recall": caught / len(verdicts) if verdicts else None,
        "ttd_median_s": statistics.median(times) if times else None,
        "ttd_worst_s": times[-1] if times else None,
    }


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
    first = entry.get("first_outside_read")
    variant = entry.get("variant")
    return Incident(
        id=str(_field(entry, "id", "incident")),
        type=str(entry.get("type") or "-"),
        kind=str(_field(entry, "kind", "incident")),
        entity=str(_field(entry, "entity", "incident")),
        start=start,
        end=end,
        first_outside_read=None if first is None else parse_timestamp(first, "first_outside_read"),
        variant=dict(variant) if isinstance(variant, dict) else {},
    )


def _highest(severities: Iterable[str | None]) -> str | None:
    known = [s for s in severities if s in SEVERITIES]
    return max(known, key=SEVERITIES.index) if known else None


def duration(seconds: float | None) -> str:
    """'4m05s', '3h15m', or '-' for nothing."""
    return _duration(seconds)


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
