from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.opsstack import DASHBOARDS, PrometheusProcess

GRAFANA = DASHBOARDS / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "json").glob("*.json"))
# Grafana's own macros and this repo's template variables, with values a query accepts.
MACROS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": ".+",
    "$kind": "broad_audience",
}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _promql_targets() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARD_FILES:
        for panel in _panels(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == "prometheus":
                    where = f"{path.stem}/{panel['title']}/{target['refId']}"
                    found.append((where, target["expr"]))
    return found


PROMQL = _promql_targets()


def _datasource_uids() -> dict[str, str]:
    provisioning = GRAFANA / "provisioning" / "datasources"
    return {
        ds["uid"]: ds["type"]
        for path in provisioning.glob("*.yml")
        for ds in yaml.safe_load(path.read_text())["datasources"]
    }


def test_the_three_dashboards_exist_with_unique_uids() -> None:
    names = {path.stem for path in DASHBOARD_FILES}
    assert {"soc-overview", "pipeline-health", "model"} <= names
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARD_FILES]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_panel_uses_a_provisioned_datasource(path: Path) -> None:
    uids = _datasource_uids()
    dashboard = json.loads(path.read_text())
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            source = target["datasource"]
            assert uids.get(source["uid"]) == source["type"], (panel["title"], source)


def test_every_panel_has_a_description() -> None:
    for path in DASHBOARD_FILES:
        for panel in _panels(json.loads(path.read_text())):
            if panel["type"] != "row":
                assert panel.get("description", "").strip(), (path.stem, panel["title"])


def test_top_alerts_table_reads_every_compose_worker() -> None:
    soc = json.loads((GRAFANA / "json" / "soc-overview.json").read_text())
    table = next(p for p in _panels(soc) if p["title"].startswith("Top alerts"))
    urls = {t["url"] for t in table["targets"]}
    compose = yaml.safe_load((DASHBOARDS.parent / "compose.yaml").read_text())
    expected = {
        f"http://{name}:{svc['environment']['REACHWATCH_WEB_PORT']}/alerts/recent"
        for name, svc in compose["services"].items()
        if name.startswith("worker-")
    }
    assert urls == expected
    allowed = next(
        ds
        for path in (GRAFANA / "provisioning" / "datasources").glob("*.yml")
        for ds in yaml.safe_load(path.read_text())["datasources"]
        if ds["uid"] == table["datasource"]["uid"]
    )["jsonData"]["allowedHosts"]
    assert {url.removesuffix("/alerts/recent") for url in urls} == set(allowed)


def test_promql_uses_only_known_macros() -> None:
    for where, expr in PROMQL:
        unknown = set(re.findall(r"\$\w+", expr)) - set(MACROS)
        assert not unknown, (where, unknown)


@pytest.mark.integration
@pytest.mark.parametrize(("where", "expr"), PROMQL, ids=[w for w, _ in PROMQL])
def test_panel_promql_parses_in_real_prometheus(
    empty_prometheus: PrometheusProcess, where: str, expr: str
) -> None:
    for macro, value in sorted(MACROS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(macro, value)
    answer = empty_prometheus.query(expr)
    assert answer["status"] == "success", (where, answer.get("error"))
