"""Alert policy and the alert JSON schema.

An alert fires when a read's anomaly score passes the model's calibrated score threshold
*and* its breadth (the larger of the excess over the entity's own baseline and over its
peers', whichever is *smaller* — both must be exceeded) passes the calibrated breadth
threshold. Only confidential and restricted resources raise ``broad_audience``: public
data read by everyone is what public means, internal data read by every employee what
internal means (``sides.Side.alerts_on``).

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
import string
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reachwatch.models.detector import BreadthDetector
from reachwatch.models.features import CLUSTERED, GRANTED, SCANS, View
from reachwatch.models.records import rfc3339
from reachwatch.models.sides import BY_KIND
from reachwatch.models.windows import OpenAlert

ALERT_SCHEMA_VERSION = 2  # 2: status "new" became "opened"; "closed" and "team" added
SEVERITIES = ("low", "medium", "high", "critical")
SENSITIVITY_BASE = {"public": 0, "internal": 0, "confidential": 1, "restricted": 2}
EVIDENCE_SIZE = 5


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
            "entity_type": BY_KIND[self.kind].name,
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


class _Wording(string.Formatter):
    """``str.format`` for summaries: numbers as ``_fmt`` writes them, ``:teams`` counts."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "teams":
            return _teams(value)
        if isinstance(value, float | int):
            return _fmt(value)
        return super().format_field(value, format_spec)


_WORDING = _Wording()


def horizon_window(view: View) -> Any:
    """The entity's window of its breadth metric's horizon: the last 24 h for a daily
    metric, the last hour otherwise (what the metric that passed its gate counted)."""
    _, hour, day = view.state.windows
    return day if view.breadth_metric.endswith("24h") else hour


def involvement(view: View) -> tuple[str, bool]:
    """(the most sensitive data involved, whether it all lies within the peers' reach)
    of the read, from the entity's window of its breadth metric's horizon as it is now."""
    return view.side.involvement(view.event, view.metrics, horizon_window(view), view.reach)


def severity_of(view: View, breadth_threshold: float) -> str:
    """Sensitivity sets the base level; breadth moves it.

    Base: restricted data involved -> high, confidential -> medium, otherwise low (for
    ``broad_reader`` the datasets that make its reading unusual within the breadth
    metric's horizon, for ``broad_audience`` the dataset itself). A breadth at least
    twice the threshold (log-ratio, i.e. the ratio squared) adds a level; where the side
    demotes marginal cases (``broad_reader``) one barely past it (under 1.5 times)
    removes one, so marginal cases land in tickets, and so does an entity with no own
    history yet: judged against its peers alone (a newcomer, an auditor's first week),
    the evidence is half of what a mature entity's alert carries. So does a reader whose
    other teams' sensitive data all lies within its peers' reach
    (``sides._reading_involved``): the group reads those teams' data.
    """
    side = view.side
    involved, reached = view.involved or involvement(view)
    level = SENSITIVITY_BASE[involved]
    threshold = max(breadth_threshold, 1e-9)
    if view.breadth >= 2.0 * threshold:
        level += 1
    elif view.breadth < 1.5 * threshold and side.demotes_marginal:
        level -= 1
    if side.demotes_marginal and not view.own_mature:
        level -= 1
    if reached:
        level -= 1
    return SEVERITIES[min(max(level, 0), 3)]


def summary_of(view: View) -> str:
    """One sentence: how broad the read is, against the own and the peer baseline."""
    side, m, own, peer = view.side, view.metrics, view.own, view.peer
    metric = view.breadth_metric
    words = {"sensitivity": view.event.sensitivity, "metric": _metric_words(metric)}
    horizon = "24h" if metric.endswith("24h") else "1h"
    head = _WORDING.format(side.headlines[horizon], **m, **words)
    unit = _WORDING.format(side.unit, **words)
    peers = _WORDING.format(side.peers_text, **words)
    # A surprise is told in nats, its own scale: ``view.breadth`` is rescaled so that every
    # gate falls on the floor (``BreadthDetector.gate``), 1.1 for a scan of 3.6 nats.
    surprise = _fmt(view.breadths.get(metric, view.breadth))
    if metric in SCANS:
        return (
            f"{head}; {_metric_words(metric)} {_fmt(m[metric])} in the last "
            f"{_fmt(round(m[f'{metric}_hours'], 1))} h vs {_fmt(own[metric])} expected "
            f"({peers} rate {_fmt(peer[metric])} an hour), surprise {surprise}"
        )
    if metric in GRANTED:
        return (
            f"{head}; {_metric_words(metric)} {_fmt(m[metric])} since a permission grant "
            f"{round(m[f'{metric}_hours'] * 60)} min earlier vs {_fmt(own[metric])} "
            f"expected by chance besides its grantee's ({peers} rate {_fmt(peer[metric])} "
            f"an hour), surprise {surprise}"
        )
    if metric in CLUSTERED:
        arrivals = CLUSTERED[metric][1]
        return (
            f"{head}; {_metric_words(metric)} {_fmt(m[metric])} of "
            f"{_teams(m[arrivals])} in the last hour vs "
            f"{_fmt(own[metric])} teams expected an hour, {_fmt(peer[metric])} readers a "
            f"team on {peers} data, surprise {surprise}"
        )
    if metric in side.surprise_metrics:
        period, unit_of_time = ("24 h", "day") if horizon == "24h" else ("hour", "hour")
        return (
            f"{head}; {_metric_words(metric)} {_fmt(m[metric])} in the last {period} vs "
            f"{_fmt(own[metric])} expected (own mean {unit_of_time}, {peers} rate "
            f"{_fmt(peer[metric])}), surprise {surprise}"
        )
    own_text = (
        f"own 30-day p99 is {_fmt(own[metric])}"
        if not math.isnan(own[metric])
        else "no own history yet"
    )
    return f"{head}; {unit} {_fmt(m[metric])} vs {own_text}, {peers} p99 is {_fmt(peer[metric])}"


_METRIC_WORDS = {
    "heavy_24h": "whole-table reads larger than its usual hour",
    "outside_new_sensitive_teams_24h": "teams whose confidential/restricted data, new to it "
    "and its peers, it read",
    "outside_first_teams_1h": "teams of first-time outside readers",
    "outside_first_teams_scan": "teams of first-time outside readers",
    "outside_first_teams_granted": "teams of first-time outside readers",
    "outside_first_readers_1h": "first-time outside readers",
}


def _metric_words(metric: str) -> str:
    words = _METRIC_WORDS.get(metric)
    if words is not None:
        return words
    return metric.replace("_24h", "").replace("_1h", "").replace("_", " ")


def evidence_of(view: View, detector: BreadthDetector) -> list[dict[str, Any]]:
    """The breadth figure first, then the features furthest from typical training values."""
    names = view.side.features
    median, scale = detector.feature_median_, detector.feature_scale_
    vector = np.asarray(view.vector, dtype=float)
    distance = np.abs(vector - median) / scale
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
                "typical": round(float(median[index]), 4),
                "deviation": round(float(distance[index]), 2),
            }
        )
    return out


def sample_of(view: View) -> list[dict[str, Any]]:
    """A few recent reads (bounded: data minimisation)."""
    fields = view.side.sample_fields
    return [
        {"ts": rfc3339(read[0]), **dict(zip(fields, read[1:], strict=True))}
        for read in view.state.sample
    ]


@dataclass(frozen=True)
class AlertPolicy:
    """When a scored read becomes, updates or leaves alone an alert."""

    # As long as the longest window: until then the reads that raised an alert are still
    # in the windows, and alerting again would re-report the same evidence.
    quiet_period: float = 24 * 3600.0
    # A new message for an open alert needs the breadth to have grown by this log-ratio.
    update_growth: float = math.log(2.0)

    def qualifies(self, view: View, score: float, detector: BreadthDetector) -> bool:
        return view.side.may_alert(view.event) and detector.alerts(score, view.breadth)

    def decide(
        self,
        view: View,
        score: float,
        detector: BreadthDetector,
        model_version: str,
        sample: list[dict[str, Any]] | None = None,
    ) -> Alert | None:
        state = view.state
        ts = view.event.ts
        current = state.open_alert
        if current is not None and ts - current.last_ts > self.quiet_period:
            state.open_alert = current = None
        if current is not None and view.breadth >= detector.breadth_threshold_:
            # Still unusually broad: the incident goes on, keep its alert open even when
            # this particular read does not score high.
            current.last_ts = max(current.last_ts, ts)
        if not self.qualifies(view, score, detector):
            return None
        if view.involved is None:  # not taken when the read was applied (no pipeline)
            view.involved = involvement(view)
        severity = severity_of(view, detector.breadth_threshold_)
        if current is None:
            counterpart = view.side.counterpart(view.event)
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
            evidence=evidence_of(view, detector),
            sample=sample if sample is not None else sample_of(view),
            context={
                "sensitivity": view.event.sensitivity,
                # The entity's team: a low-cardinality label for pages (models.lifecycle).
                "team": view.event.principal_group
                if view.kind == "broad_reader"
                else view.event.resource_group,
                "breadth": round(view.breadth, 4),
                # Every other team's sensitive data it read is data its peers read too:
                # the severity is a level lower for it (``severity_of``).
                "within_peer_reach": view.involved[1],
                "thresholds": {
                    "score": round(detector.score_threshold_, 6),
                    "breadth": round(detector.breadth_threshold_, 4),
                },
            },
        )
