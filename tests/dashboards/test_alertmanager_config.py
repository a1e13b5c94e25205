from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.opsstack import (
    ALERTMANAGER_CONFIG,
    AlertmanagerProcess,
    WebhookReceiver,
    run_tool,
    wait_until,
    write_alertmanager_config,
)


def test_config_passes_amtool(amtool: str) -> None:
    result = run_tool(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=page", "alertname=ReachwatchRestrictedExposure"], "pager"),
        (["severity=ticket", "alertname=ReachwatchWorkerDown"], "tickets"),
        (["alertname=SomethingUnlabelled"], "tickets"),
        # Pushed by the worker: its severity label is the alert's own, not page/ticket.
        (["alertname=ReachwatchDetection", "severity=high", "kind=broad_audience"], "pager"),
        (["alertname=ReachwatchDetection", "severity=medium", "sensitivity=restricted"],
         "pager"),
    ],
)
def test_routing_sends_pages_to_the_pager(amtool: str, labels: list[str], receiver: str) -> None:
    result = run_tool(
        amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels
    )
    assert result.stdout.split() == [receiver], result.stdout + result.stderr


def test_secrets_are_read_from_files_not_inlined() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    pager = next(r for r in config["receivers"] if r["name"] == "pager")
    pagerduty = pager["pagerduty_configs"][0]
    assert "routing_key" not in pagerduty and "service_key" not in pagerduty
    assert Path(pagerduty["routing_key_file"]).is_absolute()
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            assert "credentials" not in hook["http_config"]["authorization"]


@pytest.mark.integration
def test_worker_down_inhibits_no_events_in_a_real_alertmanager(
    alertmanager_bin: str, tmp_path: Path
) -> None:
    with WebhookReceiver() as webhook:
        config = write_alertmanager_config(tmp_path / "alertmanager.yml", webhook.url)
        with AlertmanagerProcess(alertmanager_bin, config, tmp_path) as alertmanager:
            alertmanager.wait_ready()
            down = {"alertname": "ReachwatchWorkerDown", "severity": "ticket", "job": "reachwatch"}
            quiet = {"alertname": "ReachwatchNoEventsConsumed", "severity": "ticket"}
            lag = {"alertname": "ReachwatchConsumerLagGrowing", "severity": "ticket"}
            # An inhibition holds only while its source alert is known: post that first.
            alertmanager.post_alerts([{"labels": down | {"instance": "w1"}}])
            wait_until(lambda: "ReachwatchWorkerDown" in alertmanager.alertnames(), 10,
                       "the source alert held")
            alertmanager.post_alerts(
                [
                    {"labels": quiet | {"job": "reachwatch"}},
                    # Same alert for another deployment: not explained by this worker.
                    {"labels": quiet | {"job": "other"}},
                    {"labels": lag | {"job": "reachwatch"}},
                ]
            )
            wait_until(lambda: len(webhook.alertnames("/tickets")) >= 3, 20, "three ticket groups")
            delivered = [
                (a["labels"]["alertname"], a["labels"]["job"])
                for p in webhook.payloads
                for a in p["alerts"]
            ]
    assert ("ReachwatchNoEventsConsumed", "reachwatch") not in delivered
    assert ("ReachwatchNoEventsConsumed", "other") in delivered
    assert ("ReachwatchConsumerLagGrowing", "reachwatch") in delivered
    assert ("ReachwatchWorkerDown", "reachwatch") in delivered
