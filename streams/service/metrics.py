"""Every Prometheus metric a reachwatch worker exposes, in one injectable registry.

``Metrics(registry)`` owns all metric objects; the worker builds one at start-up and passes
it to its agents, tests build one on a fresh ``CollectorRegistry``. Label values are
pre-initialised so every series exists at zero from the first scrape: ``rate()`` and
``increase()`` then see the first event instead of a series appearing out of nowhere, and
"absent" never has to stand in for "zero" in the alerting rules.

Labels are bounded enumerations only (topic, outcome, reason, kind, severity, sensitivity,
side, version). Never a principal, resource, IP address or free text: those are unbounded
(one series each would exhaust Prometheus) and they are exactly the sensitive facts this
tool exists to protect. Per-entity detail lives in the alerts topic and ``/alerts/recent``.

Faust's own sensor (faust-streaming 0.15.3, ``faust.sensors.prometheus``) is joined to the
same registry by ``faust_monitor``: its metrics are named ``reachwatch_faust_*``
(messages received per topic, committed and end offsets per topic/partition, rebalances,
producer send latency, table operations, web requests; latencies in *milliseconds*, as
Faust observes them). Faust's ``setup_prometheus_sensors`` would also register an unguarded
``/metrics`` page, so we build only the monitor and let the worker serve ``render``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from reachwatch.models import sides
from reachwatch.models.records import REASONS, SENSITIVITIES

NAMESPACE = "reachwatch"
FAUST_PREFIX = "reachwatch_faust"

DEFAULT_TOPICS = ("access-events",)
# "grant": a permission change, kept for exposure causes and never scored.
CONSUME_OUTCOMES = ("scored", "invalid", "skipped", "late", "error", "grant")
# SchemaError codes plus failures that happen before or around parsing.
DEAD_LETTER_REASONS = tuple(dict.fromkeys((*REASONS, "decode_error", "adapter_error", "too_large")))
ALERT_KINDS = sides.KINDS
SEVERITIES = ("low", "medium", "high", "critical")
SIDES = tuple(side.name for side in sides.SIDES)
# What the worker produces besides alerts (each delivery awaited before a commit).
OUTPUTS = ("envelope", "dead_letter")

# Scores are in [0, 1], higher = more anomalous; 0.05 steps resolve drift and thresholds.
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
BATCH_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
CHECKPOINT_STATES_BUCKETS = (0, 1, 10, 100, 1000, 2500, 5000, 10_000, 25_000, 50_000)
# Event-time lag spans sub-second live streams to replays of day-old logs.
EVENT_LAG_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400)
ALERT_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


def _package_version() -> str:
    try:
        return version("reachwatch")
    except PackageNotFoundError:  # running from a bare checkout
        return "unknown"


class Metrics:
    """All reachwatch metrics, registered on ``registry`` (a fresh one if omitted).

    >>> m = Metrics(topics=("access-events",))
    >>> m.events_consumed.labels(topic="access-events", outcome="scored").inc()
    >>> b"reachwatch_events_consumed_total" in render(m.registry)[0]
    True
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        topics: Sequence[str] = DEFAULT_TOPICS,
        worker_version: str | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.topics = tuple(topics)
        reg = self.registry

        self.events_consumed = Counter(
            "events_consumed",
            "Input messages consumed, by input topic and what became of them.",
            ["topic", "outcome"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.events_dead_lettered = Counter(
            "events_dead_lettered",
            "Input messages written to the dead-letter topic, by reason code.",
            ["reason"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.alerts = Counter(
            "alerts",
            "Alerts raised (new or escalated), by kind and severity.",
            ["kind", "severity"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.alerts_by_sensitivity = Counter(
            "alerts_by_sensitivity",
            "Alerts raised, by kind and the highest sensitivity of the data involved.",
            ["kind", "sensitivity"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.score = Histogram(
            "score",
            "Anomaly scores of scored windows (0..1, higher = more anomalous).",
            ["kind"],
            buckets=SCORE_BUCKETS,
            namespace=NAMESPACE,
            registry=reg,
        )
        self.batch_size = Histogram(
            "batch_size",
            "Events per scoring micro-batch, by side (principal or resource).",
            ["side"],
            buckets=BATCH_SIZE_BUCKETS,
            namespace=NAMESPACE,
            registry=reg,
        )
        self.batch_duration = Histogram(
            "batch_duration_seconds",
            "Wall time to score one micro-batch, by side.",
            ["side"],
            buckets=BATCH_SECONDS_BUCKETS,
            namespace=NAMESPACE,
            registry=reg,
        )
        self.event_lag = Histogram(
            "event_lag_seconds",
            "Processing time minus event time of consumed events.",
            buckets=EVENT_LAG_BUCKETS,
            namespace=NAMESPACE,
            registry=reg,
        )
        self.event_to_alert = Histogram(
            "event_to_alert_seconds",
            "Wall time from consuming the triggering event to publishing its alert.",
            buckets=ALERT_LATENCY_BUCKETS,
            namespace=NAMESPACE,
            registry=reg,
        )
        self.alert_publish_failures = Counter(
            "alert_publish_failures",
            "Alerts that could not be published to the alerts topic after all retries.",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.alert_publish_retries = Counter(
            "alert_publish_retries",
            "Retried attempts to publish an alert.",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.alerts_closed = Counter(
            "alerts_closed",
            "Alerts closed after their quiet period (a closed message published), by kind.",
            ["kind"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.exposures_published = Counter(
            "exposures_published",
            "Exposure records published to the exposures topic, by state (open, closed).",
            ["state"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.pages = Counter(
            "pages",
            "Alerts pushed to Alertmanager as pages, by event (firing, resolved).",
            ["event"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.page_push_retries = Counter(
            "page_push_retries",
            "Retried pushes to Alertmanager's v2 API.",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.page_push_failures = Counter(
            "page_push_failures",
            "Pages that could not be pushed to Alertmanager after all retries (or dropped).",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.publish_retries = Counter(
            "publish_retries",
            "Retried attempts to publish an envelope or a dead letter (alerts: "
            "alert_publish_retries).",
            ["output"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.events_scored = Counter(
            "events_scored",
            "Events scored, by side (every valid event is scored once on each side; more "
            "than once after a crash replays it).",
            ["side"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.events_repeated = Counter(
            "events_repeated",
            "Events forwarded a second time after a restart or a rebalance (the input commit "
            "lags what was forwarded) and recognised by their input position: not scored "
            "again, by side.",
            ["side"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.checkpoints = Counter(
            "checkpoints",
            "Checkpoints written and settled (every dirty state of a side written to its "
            "table's changelog and acknowledged by the broker), by side.",
            ["side"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.checkpoint_states = Histogram(
            "checkpoint_states",
            "States one checkpoint wrote, by side.",
            ["side"],
            buckets=CHECKPOINT_STATES_BUCKETS,
            namespace=NAMESPACE,
            registry=reg,
        )
        self.checkpoint_duration = Histogram(
            "checkpoint_duration_seconds",
            "Wall time of one checkpoint, from the first state encoded to the last write "
            "acknowledged, by side.",
            ["side"],
            buckets=BATCH_SECONDS_BUCKETS,
            namespace=NAMESPACE,
            registry=reg,
        )
        self.dirty_states = Gauge(
            "dirty_states",
            "States changed since the last checkpoint (held decoded, not in the table yet), "
            "by side.",
            ["side"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.step_failures = Counter(
            "step_failures",
            "Scoring steps that raised and were tried again (the agent keeps its place: a "
            "crashed agent would leave its unacknowledged messages blocking every later "
            "acknowledgement), by stage.",
            ["stage"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.partitions_read_again = Counter(
            "partitions_read_again",
            "Seeks back to a message Faust fetched but never handed to the stage's agent "
            "(around rebalances): the partition is read again from it, by stage.",
            ["stage"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.messages_never_handed = Counter(
            "messages_never_handed",
            "Messages still never handed to the stage's agent after repeated seeks back: "
            "their events are missing. Should stay 0; by stage.",
            ["stage"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.events_late = Counter(
            "events_late",
            "Events not scored because they came later than allowed_lateness behind the "
            "aligned watermark (the slowest active input partition), by side.",
            ["side"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.partitions_paused = Gauge(
            "partitions_paused",
            "Input partitions paused for running ahead of the slowest one by more than "
            "the alignment bound.",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.events_held = Gauge(
            "events_held",
            "Events waiting for the aligned watermark to pass them, by stage (ingest, "
            "principal, resource).",
            ["stage"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.watermark_skew = Gauge(
            "watermark_skew_seconds",
            "Event time between the fastest and the slowest active input partition.",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.model_info = Gauge(
            "model_info",
            "The model version this worker scores with (value is always 1).",
            ["version"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.model_trained_timestamp = Gauge(
            "model_trained_timestamp_seconds",
            "Unix time the loaded model was trained.",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.model_loaded_timestamp = Gauge(
            "model_loaded_timestamp_seconds",
            "Unix time the loaded model was (re)loaded by this worker.",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.model_reload_failures = Counter(
            "model_reload_failures",
            "Promoted models this worker failed to load (it keeps the previous one).",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.tracked_entities = Gauge(
            "tracked_entities",
            "Principals or resources with window state in this worker.",
            ["side"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.entities_expired = Counter(
            "entities_expired",
            "Principals or resources forgotten: idle past idle_ttl_days (event time), or the "
            "least recently active beyond max_entities (cap).",
            ["side", "reason"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.broker_up = Gauge(
            "broker_up",
            "1 if the worker's Kafka connection is healthy, else 0.",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.consumer_lag = Gauge(
            "consumer_lag_messages",
            "Messages between the committed offset and the end of the input topic.",
            ["topic"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.worker_info = Gauge(
            "worker_info",
            "The reachwatch package version of this worker (value is always 1).",
            ["version"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self._model_version: str | None = None
        self._preinitialise()
        self.worker_info.labels(version=worker_version or _package_version()).set(1)

    def _preinitialise(self) -> None:
        for topic in self.topics:
            self.consumer_lag.labels(topic=topic)
            for outcome in CONSUME_OUTCOMES:
                self.events_consumed.labels(topic=topic, outcome=outcome)
        for reason in DEAD_LETTER_REASONS:
            self.events_dead_lettered.labels(reason=reason)
        for event in ("firing", "resolved"):
            self.pages.labels(event=event)
        for state in ("open", "closed"):
            self.exposures_published.labels(state=state)
        for kind in ALERT_KINDS:
            self.alerts_closed.labels(kind=kind)
            self.score.labels(kind=kind)
            for severity in SEVERITIES:
                self.alerts.labels(kind=kind, severity=severity)
            for sensitivity in SENSITIVITIES:
                self.alerts_by_sensitivity.labels(kind=kind, sensitivity=sensitivity)
        for side in SIDES:
            self.batch_size.labels(side=side)
            self.batch_duration.labels(side=side)
            self.tracked_entities.labels(side=side)
            for reason in ("idle", "cap"):
                self.entities_expired.labels(side=side, reason=reason)
            self.events_scored.labels(side=side)
            self.events_late.labels(side=side)
            self.events_repeated.labels(side=side)
            self.checkpoints.labels(side=side)
            self.checkpoint_states.labels(side=side)
            self.checkpoint_duration.labels(side=side)
            self.dirty_states.labels(side=side)
            self.events_held.labels(stage=side)
        self.events_held.labels(stage="ingest")
        for stage in ("ingest", *SIDES):
            self.partitions_read_again.labels(stage=stage)
            self.step_failures.labels(stage=stage)
            self.messages_never_handed.labels(stage=stage)
        for output in OUTPUTS:
            self.publish_retries.labels(output=output)

    # Small recording helpers, so agents stay one line per fact.

    def record_alert(self, kind: str, severity: str, sensitivity: str) -> None:
        """Count one raised alert under both its risk level and its data sensitivity."""
        self.alerts.labels(kind=kind, severity=severity).inc()
        self.alerts_by_sensitivity.labels(kind=kind, sensitivity=sensitivity).inc()

    def record_batch(
        self, side: str, size: int, seconds: float, kind: str, scores: Iterable[float]
    ) -> None:
        """One scored micro-batch: its size, duration and the scores it produced."""
        self.batch_size.labels(side=side).observe(size)
        self.batch_duration.labels(side=side).observe(seconds)
        histogram = self.score.labels(kind=kind)
        for score in scores:
            histogram.observe(score)

    def record_publish_retry(self, output: str) -> None:
        if output == "alert":
            self.alert_publish_retries.inc()
        else:
            self.publish_retries.labels(output=output).inc()

    def record_publish_failure(self, output: str) -> None:
        # Only alerts can be given up on (alert_publish_retries); other outputs retry on.
        self.alert_publish_failures.inc()

    def record_event_lag(self, event_ts: float, now: float | None = None) -> None:
        """Observe processing time minus event time (clamped at 0 for clock skew)."""
        now = time.time() if now is None else now
        self.event_lag.observe(max(0.0, now - event_ts))

    def set_model(self, version: str, trained_at: float, loaded_at: float | None = None) -> None:
        """Report the model now in use; the previous version's info series disappears."""
        if self._model_version is not None and self._model_version != version:
            self.model_info.remove(self._model_version)
        self._model_version = version
        self.model_info.labels(version=version).set(1)
        self.model_trained_timestamp.set(trained_at)
        self.model_loaded_timestamp.set(time.time() if loaded_at is None else loaded_at)


def faust_monitor(registry: CollectorRegistry, name_prefix: str = FAUST_PREFIX) -> Any:
    """Faust's Prometheus sensor, recording into ``registry``; assign it to ``app.monitor``.

    Use it instead of ``faust.sensors.prometheus.setup_prometheus_sensors`` (which also adds
    its own unguarded ``/metrics`` page). Call before the app starts, once per registry:
    ``app.monitor = faust_monitor(metrics.registry)``.
    """
    # Imported here so that metrics (and its tests) do not pull in Faust unless needed.
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

    return PrometheusMonitor(metrics=FaustMetrics.create(registry, name_prefix))


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in Prometheus text format: ``(body, content_type)`` for a web view."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
