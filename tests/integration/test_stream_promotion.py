"""Promoting another model version switches ``model_version`` on live alerts, no restart."""

from __future__ import annotations

import shutil

import orjson
import pytest

from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import parse_event, parse_timestamp
from reachwatch.models.registry import Registry

pytestmark = pytest.mark.integration


def _alert_times(registry, version, lines, entity):
    pipeline = Pipeline(Registry(registry).load(version))
    events = [parse_event(orjson.loads(line)) for line in lines]
    return sorted(a.ts for a in pipeline.observe_resources(events, {}).alerts
                  if a.entity == entity)


def test_promotion_switches_model_version_of_live_alerts(
    company, service, start_worker, clients, tmp_path
):
    # A private copy: promoting in the shared registry would change other tests' model.
    service.registry = shutil.copytree(company.registry, tmp_path / "registry")
    entity = company.incident["entity"]
    lines = company.lines_between(company.incident_start - 3600, company.incident_end)
    times = _alert_times(service.registry, company.version, lines, entity)
    assert len(times) >= 2, f"need two alert messages for the entity: {times}"
    split = (times[0] + times[1]) / 2
    before = [x for x in lines if parse_timestamp(orjson.loads(x)["ts"]) < split]
    after = lines[len(before):]

    worker = start_worker()
    worker.wait_assigned()
    clients.produce_confluent(service.input_topic, before)
    clients.read_topic(service.alerts_topic, lambda r: any(a["entity"] == entity for a in r),
                       timeout=90)
    worker.wait_until(lambda s: s["messages_in"] >= len(before), 60, "all messages")
    pid = worker.pid

    Registry(service.registry).promote(company.spare_version)
    worker.wait_until(lambda s: s["model_version"] == company.spare_version, 30, "new model")
    clients.produce_confluent(service.input_topic, after)
    alerts = clients.read_topic(
        service.alerts_topic,
        lambda r: any(a["model_version"] == company.spare_version for a in r),
        timeout=90,
    )

    versions = [a["model_version"] for a in alerts if a["entity"] == entity]
    assert versions[0] == company.version
    assert company.spare_version in versions
    # Once switched, never back: the new version scores everything after the promotion.
    assert versions[versions.index(company.spare_version):] == [company.spare_version] * (
        len(versions) - versions.index(company.spare_version)
    )
    assert worker.pid == pid and worker.process.poll() is None  # same process, no restart
