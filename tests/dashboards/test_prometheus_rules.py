from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.opsstack import DASHBOARDS, REPO, RULES_DIR, run_tool

PROMETHEUS_DIR = DASHBOARDS / "prometheus"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


ALERTS = [rule for rule in _rules() if "alert" in rule]


def test_prometheus_config_is_valid(promtool: str, tmp_path: Path) -> None:
    # promtool opens every credentials file: check a copy that points the Docker secrets
    # (/run/secrets in compose) at a stand-in token and names the rule files absolutely.
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    secrets = set(re.findall(r"/run/secrets/[\w.-]+", text))
    assert secrets, "the scrape config reads no secret"
    for secret in secrets:
        stand_in = tmp_path / Path(secret).name
        stand_in.write_text("stand-in-token")
        text = text.replace(secret, str(stand_in))
    config = yaml.safe_load(text)
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run_tool(promtool, "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout + result.stderr


def test_rule_files_are_valid(promtool: str) -> None:
    result = run_tool(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    result = run_tool(promtool, "test", "rules", *map(str, TEST_FILES), cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_alert_has_severity_and_documentation(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in ("page", "ticket")
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    runbook = Path(annotations["runbook_url"])
    assert runbook.parts[:2] == ("dashboards", "runbooks"), runbook
    text = (REPO / runbook).read_text()
    for section in ("## What it means", "## How to check", "## How to fix"):
        assert section in text, f"{runbook} lacks {section!r}"
    assert rule["alert"] in text


def test_the_issue_s_pages_and_tickets_exist() -> None:
    by_name = {rule["alert"]: rule["labels"]["severity"] for rule in ALERTS}
    pages = {"ReachwatchDetectionSpike", "ReachwatchRestrictedExposure"}
    tickets = {
        "ReachwatchNoEventsConsumed",
        "ReachwatchConsumerLagGrowing",
        "ReachwatchDeadLetterRateHigh",
        "ReachwatchAlertPublishFailures",
        "ReachwatchWorkerDown",
        "ReachwatchBrokerDown",
        "ReachwatchModelStale",
    }
    assert {name: by_name.get(name) for name in pages} == dict.fromkeys(pages, "page")
    assert {name: by_name.get(name) for name in tickets} == dict.fromkeys(tickets, "ticket")


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in ALERTS}
    assert names - firing == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a non-firing test"


def test_metrics_in_rules_are_ones_the_worker_exports() -> None:
    from prometheus_client import CollectorRegistry

    from reachwatch.streams.service.metrics import Metrics, faust_monitor

    registry = CollectorRegistry()
    Metrics(registry)
    faust_monitor(registry)
    exported = {s.name for family in registry.collect() for s in family.samples}
    exported |= {family.name for family in registry.collect()}
    text = "\n".join(path.read_text() for path in RULE_FILES)
    used = set(re.findall(r"(?<![:\w])reachwatch_[a-z_]+(?![:\w])", text))
    assert used, "rules reference no reachwatch metric"
    # Recording-rule outputs (level:metric:ops) contain colons and are not matched here.
    assert used - exported == set()
