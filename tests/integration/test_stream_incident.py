"""An exposure incident streamed through Kafka comes back as the right alert."""

from __future__ import annotations

import pytest

from reachwatch.models.records import parse_timestamp

pytestmark = pytest.mark.integration


def test_exposure_incident_produces_broad_audience_alert(company, service, start_worker, clients):
    worker = start_worker()
    worker.wait_assigned()
    # The test day up to the end of the exposure, through librdkafka.
    lines = company.lines_between(company.day_start, company.incident_end)
    clients.produce_confluent(service.input_topic, lines)
    entity = company.incident["entity"]

    def caught(alerts):
        return any(a["kind"] == "broad_audience" and a["entity"] == entity for a in alerts)

    # Generous: seconds on a quiet machine, but CI may share two cores with other jobs.
    alerts = clients.read_topic(service.alerts_topic, caught, timeout=180)

    mine = [a for a in alerts if a["kind"] == "broad_audience" and a["entity"] == entity]
    seen = [(a["kind"], a["entity"]) for a in alerts]
    assert mine, (
        f"no broad_audience alert for {entity}; got {seen}; "
        f"status {worker.status()}\n{worker.log_tail(40)}"
    )
    first = min(mine, key=lambda a: a["ts"])
    assert company.incident_start <= parse_timestamp(first["ts"]) <= company.incident_end
    assert first["model_version"] == company.version
    assert first["severity"] in ("high", "critical")  # restricted data: high at least
    # Keyed by entity, so one entity's alert revisions stay in one partition, in order.
    assert len({a["_partition"] for a in mine}) == 1


def test_worker_exposes_prometheus_metrics_on_its_own_port(service, start_worker, clients,
                                                            company):
    worker = start_worker()
    worker.wait_assigned()
    clients.produce_confluent(service.input_topic, company.lines_between(
        company.day_start, company.day_start + 3600))
    worker.wait_until(lambda s: s["messages_in"] > 0, 60, "messages")
    text = worker.metrics()
    assert "reachwatch_events_consumed_total" in text
    assert f'reachwatch_model_info{{version="{company.version}"}} 1.0' in text
