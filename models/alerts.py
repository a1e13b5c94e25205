"""Alert policy and the alert JSON schema.

An alert fires when a read's anomaly score passes the model's calibrated score threshold
*and* its breadth (the larger of the excess over the entity's own baseline and over its
peers', whichever is *smaller* — both must be exceeded) passes the calibrated breadth
threshold. Public resources never raise ``broad_audience``: public data read by everyone
is what public means.

There is at most one open alert per (entity, kind). Later qualifying reads update it
(same ``alert_id``, ``revision`` + 1) only when its severity rises or its breadth doubles,
so a scraping session produces a handful of messages, not thousands. It stays open while
the entity's reads remain unusually broad and closes after ``quiet_period`` seconds of
event time without such a read.

``alert_id`` is derived from the kind, the entity and the read that opened the alert, so
replaying the same history yields the same ids and a SIEM can de-duplicate.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from reachwatch.models.features import FEATURE_NAMES, View
from reachwatch.models.registry import KindModel
from reachwatch.models.windows import OpenAlert

ALERT_SCHEMA_VERSION = 2  # 2: status "new" became "opened"; "closed" and "team" added
SEVERITIES = ("low", "medium", "high", "critical")
SENSITIVITY_BASE = {"public": 0, "internal": 0, "confidential": 1, "restricted": 2}
EVIDENCE_SIZE = 5


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_id_for(kind: str, entity: str, ts: float, counterpart: str) -> str:
    """Deterministic id: same opening read, same id, in every replay."""
    text = f"{kind}\x1f{entity}\x1f{ts:.6f}\x1f{counterpart}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(slots=True)
class Alert:
    alert_id: str
    kind: str
    entity: str
    ts: float
    first_ts: float
    revision: int
    status: str
    severity: str
    score: float
    model_version: str
    summary: str
    evidence: list[dict[str, Any]]
    sample: list[dict[str, Any]]
    context: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": ALERT_SCHEMA_VERSION,
            "alert_id": self.alert_id,
            "revision": self.revision,
            "status": self.status,
            "kind": self.kind,
            "entity": self.entity,
            "entity_type": "principal" if self.kind == "broad_reader" else "resource",
            "ts": rfc3339(self.ts),
            "first_ts": rfc3339(self.first_ts),
            "severity": self.severity,
            "score": round(self.score, 6),
            "model_version": self.model_version,
            "summary": self.summary,
            "evidence": self.evidence,
            "sample": self.sample,
            **self.context,
        }


def _teams(count: float) -> str:
    return f"{_fmt(count)} team" if count == 1 else f"{_fmt(count)} teams"


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value - round(value)) < 1e-9:
        return str(round(value))
    return f"{value:.1f}"


def severity_of(view: View, breadth_threshold: float) -> str:
    """Sensitivity sets the base level; breadth moves it.

    Base: restricted data involved -> high, confidential -> medium, otherwise low (for
    ``broad_audience``, the dataset's own sensitivity). A breadth at least twice the
    threshold (log-ratio, i.e. the ratio squared) adds a level; for ``broad_reader`` one
    barely past it (under 1.5 times) removes one, so marginal cases land in tickets.
    """
    if view.kind == "broad_reader":
        m = view.metrics
        if m["restricted_1h"] + m["restricted_24h"] > 0:
            level = 2
        elif m["sensitive_1h"] + m["sensitive_24h"] > 0:
            level = 1
        else:
            level = 0
    else:
        level = SENSITIVITY_BASE[view.event.sensitivity]
    threshold = max(breadth_threshold, 1e-9)
    if view.breadth >= 2.0 * threshold:
        level += 1
    elif view.breadth < 1.5 * threshold and view.kind == "broad_reader":
        # Exposures keep their level: restricted data read by everyone is a page.
        level -= 1
    return SEVERITIES[min(max(level, 0), 3)]


def summary_of(view: View) -> str:
    m, own, peer = view.metrics, view.own, view.peer
    metric = view.breadth_metric
    if view.kind == "broad_reader":
        if metric.endswith("24h"):
            head = (
                f"read {_fmt(m['outside_24h'])} datasets of {_teams(m['outside_groups_24h'])} "
                f"other than its own in 24 h ({_fmt(m['sensitive_24h'])} confidential/restricted)"
            )
        else:
            head = (
                f"read {_fmt(m['distinct_1h'])} datasets in the last hour "
                f"({_fmt(m['distinct_15m'])} in the last 15 min), "
                f"{_fmt(m['outside_1h'])} of them from "
                f"{_teams(m['outside_groups_1h'])} other than its own "
                f"({_fmt(m['sensitive_1h'])} confidential/restricted)"
            )
        unit = "sensitivity-weighted breadth"
    else:
        head = (
            f"{view.event.sensitivity} dataset read by {_fmt(m['readers_1h'])} principals from "
            f"{_teams(m['reader_groups_1h'])} in the last hour "
            f"({_fmt(m['outside_readers_1h'])} outside the owning team, "
            f"{_fmt(m['first_time_1h'])} first-time)"
        )
        unit = metric.replace("_1h", "").replace("_", " ") + " per hour"
    own_text = (
        f"own 30-day p99 is {_fmt(own[metric])}"
        if not math.isnan(own[metric])
        else "no own history yet"
    )
    peers = (
        "peers'" if view.kind == "broad_reader" else f"similar {view.event.sensitivity} datasets'"
    )
    return f"{head}; {unit} {_fmt(m[metric])} vs {own_text}, {peers} p99 is {_fmt(peer[metric])}"


def evidence_of(view: View, model: KindModel) -> list[dict[str, Any]]:
    """The breadth figure first, then the features furthest from typical training values."""
    names = FEATURE_NAMES[view.kind]
    vector = np.asarray(view.vector, dtype=float)
    distance = np.abs(vector - model.feature_median) / model.feature_scale
    out: list[dict[str, Any]] = [
        {
            "feature": view.breadth_metric,
            "value": round(view.metrics[view.breadth_metric], 3),
            "own_baseline": None
            if math.isnan(view.own[view.breadth_metric])
            else round(view.own[view.breadth_metric], 3),
            "peer_baseline": round(view.peer[view.breadth_metric], 3),
        }
    ]
    for index in np.argsort(-distance)[:EVIDENCE_SIZE]:
        out.append(
            {
                "feature": names[index],
                "value": round(float(vector[index]), 4),
                "typical": round(float(model.feature_median[index]), 4),
                "deviation": round(float(distance[index]), 2),
            }
        )
    return out


def sample_of(view: View) -> list[dict[str, Any]]:
    """A few recent reads (bounded: data minimisation)."""
    if view.kind == "broad_reader":
        return [
            {"ts": rfc3339(ts), "resource": res, "sensitivity": sens, "resource_group": grp}
            for ts, res, sens, grp in view.state.sample
        ]
    return [
        {"ts": rfc3339(ts), "principal": who, "principal_group": grp, "principal_type": typ}
        for ts, who, grp, typ in view.state.sample
    ]


@dataclass(frozen=True)
class AlertPolicy:
    """When a scored read becomes, updates or leaves alone an alert."""

    # As long as the longest window: until then the reads that raised an alert are still
    # in the windows, and alerting again would re-report the same evidence.
    quiet_period: float = 24 * 3600.0
    # A new message for an open alert needs the breadth to have grown by this log-ratio.
    update_growth: float = math.log(2.0)

    def qualifies(self, view: View, score: float, model: KindModel) -> bool:
        if view.kind == "broad_audience" and view.event.sensitivity == "public":
            return False
        return score >= model.score_threshold and view.breadth >= model.breadth_threshold

    def decide(
        self,
        view: View,
        score: float,
        model: KindModel,
        model_version: str,
        sample: list[dict[str, Any]] | None = None,
    ) -> Alert | None:
        state = view.state
        ts = view.event.ts
        current = state.open_alert
        if current is not None and ts - current.last_ts > self.quiet_period:
            state.open_alert = current = None
        if current is not None and view.breadth >= model.breadth_threshold:
            # Still unusually broad: the incident goes on, keep its alert open even when
            # this particular read does not score high.
            current.last_ts = max(current.last_ts, ts)
        if not self.qualifies(view, score, model):
            return None
        severity = severity_of(view, model.breadth_threshold)
        if current is None:
            counterpart = (
                view.event.resource if view.kind == "broad_reader" else view.event.principal
            )
            current = OpenAlert(
                alert_id=alert_id_for(view.kind, view.entity, ts, counterpart),
                first_ts=ts,
                last_ts=ts,
                revision=0,
                severity=severity,
                breadth=view.breadth,
                score=score,
            )
            state.open_alert = current
            status = "opened"
        else:
            current.last_ts = max(current.last_ts, ts)
            rises = SEVERITIES.index(severity) > SEVERITIES.index(current.severity)
            grows = view.breadth >= current.breadth + self.update_growth
            if not (rises or grows):
                return None
            current.revision += 1
            current.severity = severity if rises else current.severity
            current.breadth = max(current.breadth, view.breadth)
            current.score = max(current.score, score)
            status = "escalated" if rises else "updated"
        return Alert(
            alert_id=current.alert_id,
            kind=view.kind,
            entity=view.entity,
            ts=ts,
            first_ts=current.first_ts,
            revision=current.revision,
            status=status,
            severity=current.severity,
            score=score,
            model_version=model_version,
            summary=summary_of(view),
            evidence=evidence_of(view, model),
            sample=sample if sample is not None else sample_of(view),
            context={
                "sensitivity": view.event.sensitivity,
                # The entity's team: a low-cardinality label for pages (models.lifecycle).
                "team": view.event.principal_group
                if view.kind == "broad_reader"
                else view.event.resource_group,
                "breadth": round(view.breadth, 4),
                "thresholds": {
                    "score": round(model.score_threshold, 6),
                    "breadth": round(model.breadth_threshold, 4),
                },
            },
        )
