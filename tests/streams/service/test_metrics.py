from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from reachwatch.models.records import REASONS, SENSITIVITIES
from reachwatch.streams.service.metrics import (
    ALERT_KINDS,
    CONSUME_OUTCOMES,
    DEAD_LETTER_REASONS,
    SEVERITIES,
    Metrics,
    faust_monitor,
    render,
)

# Label names that would carry an entity, an address or a person: forbidden everywhere.
FORBIDDEN_LABEL = re.compile(r"principal|resource|user|entity|email|addr|host|(^|_)ip($|_)")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), topics=("access-events", "cloudtrail"))


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_consumed_series_exist_at_zero_for_every_topic_and_outcome(metrics: Metrics) -> None:
    for topic in ("access-events", "cloudtrail"):
        for outcome in CONSUME_OUTCOMES:
            got = value(metrics, "reachwatch_events_consumed_total", topic=topic, outcome=outcome)
            assert got == 0.0, (topic, outcome)


def test_dead_letter_reasons_cover_every_schema_error_code(metrics: Metrics) -> None:
    assert set(REASONS) <= set(DEAD_LETTER_REASONS)
    assert len(DEAD_LETTER_REASONS) == len(set(DEAD_LETTER_REASONS))
    for reason in (*REASONS, "decode_error"):
        assert value(metrics, "reachwatch_events_dead_lettered_total", reason=reason) == 0.0


def test_alert_series_exist_at_zero_for_kind_severity_and_sensitivity(metrics: Metrics) -> None:
    for kind in ALERT_KINDS:
        for severity in SEVERITIES:
            assert value(metrics, "reachwatch_alerts_total", kind=kind, severity=severity) == 0.0
        for sensitivity in SENSITIVITIES:
            got = value(
                metrics,
                "reachwatch_alerts_by_sensitivity_total",
                kind=kind,
                sensitivity=sensitivity,
            )
            assert got == 0.0


def test_record_alert_counts_under_severity_and_sensitivity(metrics: Metrics) -> None:
    metrics.record_alert("broad_audience", "critical", "restricted")
    assert (
        value(metrics, "reachwatch_alerts_total", kind="broad_audience", severity="critical") == 1.0
    )
    assert (
        value(
            metrics,
            "reachwatch_alerts_by_sensitivity_total",
            kind="broad_audience",
            sensitivity="restricted",
        )
        == 1.0
    )
    assert value(metrics, "reachwatch_alerts_total", kind="broad_reader", severity="critical") == 0


def test_record_batch_observes_size_duration_and_scores(metrics: Metrics) -> None:
    metrics.record_batch("principal", 40, 0.003, "broad_reader", [0.1, 0.97])
    assert value(metrics, "reachwatch_batch_size_sum", side="principal") == 40
    assert value(metrics, "reachwatch_batch_duration_seconds_count", side="principal") == 1
    assert value(metrics, "reachwatch_score_count", kind="broad_reader") == 2
    # Only the 0.97 score lies above 0.95.
    assert value(metrics, "reachwatch_score_bucket", kind="broad_reader", le="0.95") == 1
    assert value(metrics, "reachwatch_batch_size_count", side="resource") == 0


def test_event_lag_is_clamped_at_zero_for_future_events(metrics: Metrics) -> None:
    metrics.record_event_lag(event_ts=1000.0, now=990.0)
    metrics.record_event_lag(event_ts=1000.0, now=1030.0)
    assert value(metrics, "reachwatch_event_lag_seconds_sum") == 30.0
    assert value(metrics, "reachwatch_event_lag_seconds_count") == 2


def test_set_model_keeps_exactly_one_version_series(metrics: Metrics) -> None:
    metrics.set_model("v1", trained_at=100.0, loaded_at=200.0)
    metrics.set_model("v2", trained_at=300.0, loaded_at=400.0)
    assert value(metrics, "reachwatch_model_info", version="v1") is None
    assert value(metrics, "reachwatch_model_info", version="v2") == 1.0
    assert value(metrics, "reachwatch_model_trained_timestamp_seconds") == 300.0
    assert value(metrics, "reachwatch_model_loaded_timestamp_seconds") == 400.0


def test_worker_info_reports_the_given_version() -> None:
    m = Metrics(CollectorRegistry(), worker_version="9.9.9")
    assert value(m, "reachwatch_worker_info", version="9.9.9") == 1.0


def test_two_instances_on_fresh_registries_do_not_collide() -> None:
    first, second = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    first.alert_publish_failures.inc()
    assert value(second, "reachwatch_alert_publish_failures_total") == 0.0


def test_render_produces_parseable_exposition_with_every_family(metrics: Metrics) -> None:
    metrics.set_model("v1", trained_at=1.0)
    body, content_type = render(metrics.registry)
    assert content_type.startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    expected = {
        "reachwatch_events_consumed",
        "reachwatch_events_dead_lettered",
        "reachwatch_alerts",
        "reachwatch_alerts_by_sensitivity",
        "reachwatch_score",
        "reachwatch_batch_size",
        "reachwatch_batch_duration_seconds",
        "reachwatch_event_lag_seconds",
        "reachwatch_event_to_alert_seconds",
        "reachwatch_alert_publish_failures",
        "reachwatch_alert_publish_retries",
        "reachwatch_model_info",
        "reachwatch_model_trained_timestamp_seconds",
        "reachwatch_model_loaded_timestamp_seconds",
        "reachwatch_model_reload_failures",
        "reachwatch_tracked_entities",
        "reachwatch_entities_expired",
        "reachwatch_broker_up",
        "reachwatch_consumer_lag_messages",
        "reachwatch_worker_info",
    }
    assert expected <= names


def test_every_metric_name_is_prefixed(metrics: Metrics) -> None:
    faust_monitor(metrics.registry)
    for family in metrics.registry.collect():
        assert family.name.startswith("reachwatch_"), family.name


def test_no_label_could_carry_an_entity_or_address(metrics: Metrics) -> None:
    # Faust's sensor shares the registry, so its labels are held to the same rule.
    faust_monitor(metrics.registry)
    metrics.set_model("v1", trained_at=1.0)
    label_names = {
        label
        for family in metrics.registry.collect()
        for sample in family.samples
        for label in sample.labels
    }
    label_names |= {
        label
        for collector in metrics.registry._collector_to_names
        for label in getattr(collector, "_labelnames", ())
    }
    assert "topic" in label_names  # the scan did see labelled metrics
    offenders = sorted(name for name in label_names if FORBIDDEN_LABEL.search(name))
    assert offenders == []


def test_faust_sensor_records_into_the_shared_registry(metrics: Metrics) -> None:
    from faust.types import TP

    monitor = faust_monitor(metrics.registry)
    monitor.track_tp_end_offset(TP("access-events", 0), 42)
    got = value(
        metrics, "reachwatch_faust_topic_partition_end_offset", topic="access-events", partition="0"
    )
    assert got == 42.0
