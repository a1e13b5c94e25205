"""compose.yaml and Dockerfile, checked structurally (Docker does not run in CI here).

The Kafka side (listeners, SCRAM users, topics, ACLs) is checked in test_kafka_stack.py.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.compose import (
    COMPOSE,
    RUN_SECRETS,
    SERVICES,
    WORKERS,
    make_secrets,
    mounted_secrets,
    secret_files,
    worker_environ,
)
from support.opsstack import REPO

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
        assert env["REACHWATCH_WEB_HOST"] == "0.0.0.0"  # reachable on the compose network
        expected.add(f"{name}:{int(env['REACHWATCH_WEB_PORT'])}")
    assert targets == expected


def test_published_ports_bind_loopback_and_do_not_collide() -> None:
    seen = set()
    for name, service in SERVICES.items():
        for host, published, _ in _published(service):
            assert host == "127.0.0.1", name
            assert published not in seen, (name, published)
            seen.add(published)


def _secret_path(value: str, service: str) -> str:
    """The secret a /run/secrets path names, checked to be mounted in ``service``."""
    assert value.startswith(RUN_SECRETS), (service, value)
    name = value.removeprefix(RUN_SECRETS)
    assert name in mounted_secrets(service), (service, name)
    return name


def _kafka_listener_protocols() -> dict[int, str]:
    """Container port -> security protocol of the broker's listeners (from broker.sh)."""
    script = (REPO / "dashboards/kafka/broker.sh").read_text()
    listeners = re.search(r"^listeners=(.+)$", script, re.M).group(1)
    protocols = dict(
        item.split(":") for item in
        re.search(r"^listener.security.protocol.map=(.+)$", script, re.M).group(1).split(",")
    )
    out = {}
    for listener in listeners.split(","):
        name, _, address = listener.partition("://")
        out[int(address.rsplit(":", 1)[1])] = protocols[name]
    return out


def test_no_service_publishes_a_port_without_authentication() -> None:
    """Every port reachable from the host asks for a credential before it serves data."""
    for name, service in SERVICES.items():
        if not _published(service):
            continue
        env = service.get("environment", {})
        if name in WORKERS:
            _secret_path(env["REACHWATCH_WEB_TOKEN_FILE"], name)
            assert "REACHWATCH_INSECURE_OPEN_WEB" not in env
        elif name == "kafka":
            protocols = _kafka_listener_protocols()
            for _, _, container in _published(service):
                assert protocols[container] == "SASL_SSL", container
        elif name == "grafana":
            assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
            assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
            _secret_path(env["GF_SECURITY_ADMIN_PASSWORD__FILE"], name)
        else:
            pytest.fail(f"{name} publishes {service['ports']} and has no authentication")
    # No login of their own: reached through Grafana, never from the host.
    assert not _published(SERVICES["prometheus"]) and not _published(SERVICES["alertmanager"])


def _secret_references() -> list[tuple[str, str]]:
    """(service, secret name) for every secret a service's env or config files read."""
    in_config = re.compile(r"/run/secrets/([A-Za-z0-9_.-]+)")
    in_script = re.compile(r"(?:\$secrets/|\$\(secret \"?)([a-z][a-z0-9_]*)")
    configs = {
        "prometheus": [REPO / "dashboards/prometheus/prometheus.yml"],
        "grafana": sorted((REPO / "dashboards/grafana/provisioning").rglob("*.yml")),
    }
    scripts = {"kafka": REPO / "dashboards/kafka/broker.sh",
               "kafka-init": REPO / "dashboards/kafka/init.sh"}
    found = []
    for name, service in SERVICES.items():
        text = yaml.safe_dump({k: service.get(k) for k in ("environment", "healthcheck")})
        found += [(name, m) for m in in_config.findall(text)]
        for path in configs.get(name, []):
            found += [(name, m) for m in in_config.findall(path.read_text())]
        if name in scripts:
            found += [(name, m) for m in in_script.findall(scripts[name].read_text())]
    return found


def test_every_secret_a_service_reads_is_mounted_in_it_and_made(compose_secrets: Path) -> None:
    references = _secret_references()
    files = secret_files(compose_secrets)
    assert {"prometheus", "grafana", "kafka", "kafka-init", *WORKERS} <= {s for s, _ in references}
    for service, secret in references:
        if secret == "kafka_":  # init.sh's loop over the users, checked below
            continue
        assert secret in mounted_secrets(service), (service, secret)
    for user in ("reachwatch", "shipper", "siem"):
        assert f"kafka_{user}_password" in mounted_secrets("kafka-init")
    for service in SERVICES:
        for secret in mounted_secrets(service):
            assert secret in COMPOSE["secrets"], (service, secret)
            assert files[secret].is_file() and files[secret].stat().st_size > 0, secret


def test_make_secrets_makes_every_secret_once_and_keeps_them_private(
    compose_secrets: Path,
) -> None:
    directory = compose_secrets
    files = secret_files(directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    before = {name: path.read_bytes() for name, path in files.items()}
    assert len(set(before.values())) == len(before)  # no two secrets alike
    make_secrets(directory)  # a second run changes nothing
    assert {name: path.read_bytes() for name, path in files.items()} == before
    result = subprocess.run(["make", "-n", "secrets"], cwd=REPO, capture_output=True, text=True)
    assert "dashboards/secrets.sh secrets" in result.stdout


def test_secrets_are_never_committed_nor_copied_into_the_image() -> None:
    tracked = subprocess.run(["git", "ls-files", "secrets"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    assert set(tracked) <= {"secrets/README.md", "secrets/.gitignore"}
    probes = ["secrets/kafka_ca.pem", "secrets/reachwatch_web_token"]
    ignored = subprocess.run(["git", "check-ignore", *probes], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    assert ignored == probes
    assert "secrets/" in (REPO / ".dockerignore").read_text().split()
    for spec in COMPOSE["secrets"].values():
        assert spec["file"].startswith("./secrets/"), spec


def test_workers_start_from_the_compose_env_with_token_and_sasl(compose_secrets: Path) -> None:
    """The worker env is a valid Settings and passes the fail-closed guard."""
    from reachwatch.streams.service.settings import load_settings
    from reachwatch.streams.service.web import guard_web_exposure, read_token

    secrets = compose_secrets
    for name in WORKERS:
        settings = load_settings(environ=worker_environ(name, secrets))
        guard_web_exposure(settings)
        assert read_token(settings.web_token_file)
        assert not settings.insecure_open_web
        assert settings.security_protocol == "SASL_SSL"
        password = (secrets / "kafka_reachwatch_password").read_text().strip()
        assert settings.sasl_secret() == password


def test_workers_wait_for_kafka_init_and_kafka_init_for_kafka() -> None:
    for name in WORKERS:
        depends = SERVICES[name]["depends_on"]
        assert depends["kafka-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    health = " ".join(SERVICES["kafka"]["healthcheck"]["test"])
    assert "--command-config /run/kafka/admin.properties" in health  # authenticates as admin
    for name in ("kafka", "kafka-init"):
        script = SERVICES[name]["entrypoint"][-1]
        assert script.startswith("/etc/reachwatch/kafka/")
        assert ("./dashboards/kafka", "/etc/reachwatch/kafka", "ro") in _binds(SERVICES[name])
        assert (REPO / "dashboards/kafka" / Path(script).name).is_file()
        assert "/run/kafka" in SERVICES[name]["tmpfs"]  # rendered configs stay in memory


def test_prometheus_alertmanager_and_grafana_mount_the_repo_config() -> None:
    prom = SERVICES["prometheus"]
    assert ("./dashboards/prometheus", "/etc/prometheus", "ro") in _binds(prom)
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert "--web.enable-lifecycle" not in prom["command"]  # no remote shutdown or reload
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
    assert targets == ["alertmanager:9093"] and "alertmanager" in SERVICES


def test_grafana_reads_the_alerts_with_the_workers_token() -> None:
    datasources = yaml.safe_load(
        (REPO / "dashboards/grafana/provisioning/datasources/reachwatch.yml").read_text()
    )["datasources"]
    alerts = next(d for d in datasources if d["type"] == "yesoreyeram-infinity-datasource")
    assert alerts["jsonData"]["auth_method"] == "bearerToken"
    secret = re.fullmatch(r"\$__file\{(/run/secrets/[\w.-]+)\}",
                          alerts["secureJsonData"]["bearerToken"]).group(1)
    assert _secret_path(secret, "grafana") == "reachwatch_alerts_token"
    assert {SERVICES[w]["environment"]["REACHWATCH_ALERTS_TOKEN_FILE"] for w in WORKERS} == {
        secret}
    # Grafana's token is not the metrics token, and Prometheus holds no alerts token.
    web_tokens = {SERVICES[w]["environment"]["REACHWATCH_WEB_TOKEN_FILE"] for w in WORKERS}
    assert secret not in web_tokens
    assert "reachwatch_alerts_token" not in mounted_secrets("prometheus")
    assert "reachwatch_web_token" not in mounted_secrets("grafana")
    hosts = {f"http://{w}:{SERVICES[w]['environment']['REACHWATCH_WEB_PORT']}" for w in WORKERS}
    assert set(alerts["jsonData"]["allowedHosts"]) == hosts
    # Alertmanager has no login and is not published: Grafana is the way to its silences.
    manager = next(d for d in datasources if d["type"] == "alertmanager")
    assert manager["url"] == "http://alertmanager:9093"


def test_dockerfile_builds_a_non_root_worker_with_constraints() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "pip install -c constraints.txt ." in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in copied.split():
            assert (REPO / source).exists(), source


def test_the_image_alone_refuses_to_serve_its_web_port_without_a_token() -> None:
    """`docker run reachwatch` binds 0.0.0.0 (the image's ENV): without a token it must stop."""
    from reachwatch.models.errors import ConfigError
    from reachwatch.streams.service.settings import load_settings
    from reachwatch.streams.service.web import guard_web_exposure

    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    image_env = dict(re.findall(r"\b(REACHWATCH_[A-Z_]+)=(\S+)", text))
    assert image_env["REACHWATCH_WEB_HOST"] == "0.0.0.0"
    assert "REACHWATCH_WEB_TOKEN_FILE" not in image_env  # the token comes from a secret
    with pytest.raises(ConfigError, match="without a bearer token"):
        guard_web_exposure(load_settings(environ=image_env))
