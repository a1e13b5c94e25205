"""compose.yaml and Dockerfile, checked structurally (Docker does not run in CI here)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from support.opsstack import REPO

COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
WORKERS = sorted(name for name in SERVICES if name.startswith("worker-"))
# The one bind mount that is runtime data, not config: the model registry that
# `reachwatch train --promote` fills (the CLI's default registry directory).
MODEL_REGISTRY = "./var/models"


def _binds(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if source.startswith("."):
            out.append((source, target, mode[0] if mode else "rw"))
    return out


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    out = []
    for port in service.get("ports", []):
        host, published, container = port.split(":")
        out.append((host, int(published), int(container)))
    return out


def test_the_stack_has_every_service_the_issue_asks_for() -> None:
    assert {"kafka", "kafka-init", "prometheus", "alertmanager", "grafana"} <= set(SERVICES)
    assert len(WORKERS) == 2


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        if "image" in service and "build" not in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), (name, image)
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")


def test_kafka_runs_kraft_single_node() -> None:
    env = SERVICES["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node}@kafka:")
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_every_config_bind_mount_exists() -> None:
    for name, service in SERVICES.items():
        for source, _, _ in _binds(service):
            if source != MODEL_REGISTRY:
                assert (REPO / source).exists(), (name, source)


def test_workers_mount_the_model_registry_read_only_and_keep_their_own_state() -> None:
    from reachwatch.streams.cli.main import DEFAULT_REGISTRY

    assert Path(MODEL_REGISTRY) == Path(".") / DEFAULT_REGISTRY
    state_volumes = set()
    for name in WORKERS:
        service = SERVICES[name]
        env = service["environment"]
        binds = _binds(service)
        assert (MODEL_REGISTRY, env["REACHWATCH_REGISTRY_DIR"], "ro") in binds, name
        data = [v for v in service["volumes"] if v.endswith(":" + env["REACHWATCH_DATA_DIR"])]
        assert len(data) == 1, name
        state_volumes.add(data[0].split(":")[0])
        assert data[0].split(":")[0] in COMPOSE["volumes"]
    assert len(state_volumes) == len(WORKERS)


def test_worker_env_names_are_real_settings() -> None:
    from reachwatch.streams.service.settings import ENV_PREFIX, Settings

    known = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    for name in WORKERS:
        env = SERVICES[name]["environment"]
        assert set(env) - known == set(), name


def test_worker_ports_are_distinct_and_match_prometheus_targets() -> None:
    prometheus = yaml.safe_load((REPO / "dashboards/prometheus/prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "reachwatch")
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = set()
    for name in WORKERS:
        env = SERVICES[name]["environment"]
        port = int(env["REACHWATCH_WEB_PORT"])
        assert env["REACHWATCH_WEB_HOST"] == "0.0.0.0"  # reachable on the compose network
        assert (("127.0.0.1", port, port)) in _published(SERVICES[name])
        expected.add(f"{name}:{port}")
    assert targets == expected


def test_published_ports_bind_loopback_and_do_not_collide() -> None:
    seen = set()
    for name, service in SERVICES.items():
        for host, published, _ in _published(service):
            assert host == "127.0.0.1", name
            assert published not in seen, (name, published)
            seen.add(published)


def test_workers_wait_for_topics_and_topics_match_settings() -> None:
    for name in WORKERS:
        depends = SERVICES[name]["depends_on"]
        assert depends["kafka-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in SERVICES["kafka"]
    script = SERVICES["kafka-init"]["command"][0]
    created = set(re.findall(r"\b([a-z][a-z0-9-]+):\d+:\d+", script))
    env = SERVICES[WORKERS[0]]["environment"]
    wanted = {
        *env["REACHWATCH_INPUT_TOPICS"].split(","),
        env["REACHWATCH_ALERTS_TOPIC"],
        env["REACHWATCH_DLQ_TOPIC"],
    }
    assert wanted <= created
    broker = env["REACHWATCH_BROKER_URL"].removeprefix("kafka://")
    assert f"PLAINTEXT://{broker}" in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_prometheus_alertmanager_and_grafana_mount_the_repo_config() -> None:
    prom = SERVICES["prometheus"]
    assert ("./dashboards/prometheus", "/etc/prometheus", "ro") in _binds(prom)
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    am = SERVICES["alertmanager"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    am_config = yaml.safe_load((REPO / "dashboards/alertmanager/alertmanager.yml").read_text())
    secret_dirs = {t for _, t, _ in _binds(am)}
    for receiver in am_config["receivers"]:
        for pd in receiver.get("pagerduty_configs", []):
            assert str(Path(pd["routing_key_file"]).parent) in secret_dirs
    grafana_binds = {t: s for s, t, _ in _binds(SERVICES["grafana"])}
    assert grafana_binds["/etc/grafana/provisioning"] == "./dashboards/grafana/provisioning"
    provider = yaml.safe_load(
        (REPO / "dashboards/grafana/provisioning/dashboards/reachwatch.yml").read_text()
    )["providers"][0]
    assert grafana_binds[provider["options"]["path"]] == "./dashboards/grafana/json"
    plugins = SERVICES["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    assert "yesoreyeram-infinity-datasource" in plugins


def test_prometheus_sends_to_the_compose_alertmanager() -> None:
    prometheus = yaml.safe_load((REPO / "dashboards/prometheus/prometheus.yml").read_text())
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    ports = {c for _, _, c in _published(SERVICES["alertmanager"])}
    assert targets == [f"alertmanager:{port}" for port in ports]


def test_dockerfile_builds_a_non_root_worker_with_constraints() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "pip install -c constraints.txt ." in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in copied.split():
            assert (REPO / source).exists(), source
