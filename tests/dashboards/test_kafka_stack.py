"""The compose Kafka: SASL_SSL listeners, SCRAM users, topics and least-privilege ACLs.

Docker does not run here, so the two entrypoint scripts run for real with stand-ins for
the Kafka command-line tools that record their arguments (the broker's rendered
server.properties, every kafka-configs/kafka-topics/kafka-acls call kafka-init makes),
and the topics the workers need are derived from the app ``create_app`` builds (its
agents' topics, its tables, Faust's leader topic, every ``*_topic`` setting), never from a
copy. The TLS material `make secrets` makes is checked by a real handshake with the
worker's own SSL context.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from support.compose import SERVICES, WORKERS, secret_files, worker_environ
from support.opsstack import REPO

from reachwatch.streams.service.settings import Settings, load_settings

KAFKA = REPO / "dashboards" / "kafka"
FAKE_TOOL = """#!/bin/bash
{ printf '%s' "$(basename "$0")"; for a in "$@"; do printf '\\x1f%s' "$a"; done; echo; } >> "$CALLS"
"""
TOOLS = ("kafka-storage.sh", "kafka-server-start.sh", "kafka-configs.sh", "kafka-topics.sh",
         "kafka-acls.sh")


@dataclass(frozen=True)
class Ran:
    calls: list[list[str]]  # [tool, *args] per call, in order
    run_dir: Path


def _run_script(name: str, secrets: Path, tmp_path: Path) -> Ran:
    bin_dir, run_dir = tmp_path / "bin", tmp_path / "run"
    bin_dir.mkdir(exist_ok=True)
    run_dir.mkdir(exist_ok=True)
    for tool in TOOLS:
        (bin_dir / tool).write_text(FAKE_TOOL)
        (bin_dir / tool).chmod(0o755)
    calls = tmp_path / "calls"
    env = {**os.environ, "KAFKA_BIN": str(bin_dir), "RUN_DIR": str(run_dir),
           "SECRETS_DIR": str(mounted_secret_dir(secrets, tmp_path)),
           "CONFIG_DIR": str(KAFKA), "CALLS": str(calls),
           **{k: str(v) for k, v in SERVICES[name].get("environment", {}).items()}}
    script = Path(SERVICES[name]["entrypoint"][-1]).name
    subprocess.run(["bash", str(KAFKA / script)], env=env, check=True, capture_output=True,
                   text=True, timeout=60)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return Ran([line.split("\x1f") for line in lines], run_dir)


def mounted_secret_dir(secrets: Path, tmp_path: Path) -> Path:
    """/run/secrets as a container sees it: secret names (not file names) -> contents."""
    mounted = tmp_path / "run-secrets"
    mounted.mkdir(exist_ok=True)
    for name, path in secret_files(secrets).items():
        if not (mounted / name).exists():
            (mounted / name).symlink_to(path)
    return mounted


def _properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def _option(call: list[str], flag: str) -> list[str]:
    return [call[i + 1] for i, arg in enumerate(call) if arg == flag]


# -- the broker -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def broker(compose_secrets: Path, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return _run_script("kafka", compose_secrets, tmp_path_factory.mktemp("broker"))


def test_every_client_listener_is_sasl_ssl_and_the_controller_is_loopback(broker: Ran) -> None:
    conf = _properties(broker.run_dir / "server.properties")
    protocols = dict(p.split(":") for p in conf["listener.security.protocol.map"].split(","))
    listeners = dict(item.split("://") for item in conf["listeners"].split(","))
    assert set(listeners) == set(protocols)
    for name, address in listeners.items():
        if name == conf["controller.listener.names"]:
            assert address.startswith("localhost:") and protocols[name] == "PLAINTEXT"
        else:
            assert protocols[name] == "SASL_SSL", name
    assert conf["controller.quorum.voters"] == "1@" + listeners["CONTROLLER"]
    assert conf["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert conf["ssl.client.auth"] == "none"  # clients prove who they are with SCRAM


def test_acls_are_enforced_and_only_admin_is_super(broker: Ran) -> None:
    conf = _properties(broker.run_dir / "server.properties")
    assert conf["authorizer.class.name"].endswith("StandardAuthorizer")
    assert conf["allow.everyone.if.no.acl.found"] == "false"
    # ANONYMOUS can only be the principal of the loopback PLAINTEXT controller listener.
    assert conf["super.users"].split(";") == ["User:admin", "User:ANONYMOUS"]
    assert conf["auto.create.topics.enable"] == "false"


def test_the_broker_bootstraps_its_admin_credential_and_starts_with_the_rendered_config(
    broker: Ran, compose_secrets: Path
) -> None:
    tools = [call[0] for call in broker.calls]
    assert tools == ["kafka-storage.sh", "kafka-server-start.sh"]
    storage, start = broker.calls
    password = (compose_secrets / "kafka_admin_password").read_text().strip()
    assert _option(storage, "--add-scram") == [f"SCRAM-SHA-512=[name=admin,password={password}]"]
    assert _option(storage, "--cluster-id") == [SERVICES["kafka"]["environment"]["CLUSTER_ID"]]
    assert start[1:] == [str(broker.run_dir / "server.properties")]
    conf = _properties(broker.run_dir / "server.properties")
    assert f'username="admin" password="{password}"' in conf[
        "listener.name.internal.scram-sha-512.sasl.jaas.config"]
    assert (broker.run_dir / "server.properties").stat().st_mode & 0o077 == 0  # umask 077


def test_workers_and_the_host_reach_the_advertised_listeners(broker: Ran) -> None:
    conf = _properties(broker.run_dir / "server.properties")
    advertised = dict(item.split("://") for item in conf["advertised.listeners"].split(","))
    for name in WORKERS:
        url = SERVICES[name]["environment"]["REACHWATCH_BROKER_URL"].removeprefix("kafka://")
        assert advertised[conf["inter.broker.listener.name"]] == url
    published = {p.split(":")[-1] for p in SERVICES["kafka"]["ports"]}
    assert {a.split(":")[1] for a in advertised.values()} - {url.split(":")[1]} == published
    assert any(a.startswith("localhost:") for a in advertised.values())


# -- kafka-init: users, topics, ACLs ----------------------------------------------------
@pytest.fixture(scope="module")
def init(compose_secrets: Path, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return _run_script("kafka-init", compose_secrets, tmp_path_factory.mktemp("init"))


def _table(name: str) -> list[list[str]]:
    rows = []
    for line in (KAFKA / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append(line.split())
    return rows


@dataclass(frozen=True)
class Grant:
    principal: str
    kind: str  # topic | group
    pattern: str  # literal | prefixed
    name: str
    operations: frozenset[str]

    def covers(self, kind: str, name: str) -> bool:
        if kind != self.kind:
            return False
        return name == self.name if self.pattern == "literal" else name.startswith(self.name)


def _applied_grants(init: Ran) -> list[Grant]:
    grants = []
    for call in init.calls:
        if call[0] != "kafka-acls.sh":
            continue
        kind = next(k for k in ("topic", "group") if f"--{k}" in call)
        grants.append(Grant(_option(call, "--allow-principal")[0], kind,
                            _option(call, "--resource-pattern-type")[0],
                            _option(call, f"--{kind}")[0], frozenset(_option(call, "--operation"))))
    return grants


def _worker_settings(compose_secrets: Path, registry: Path | None = None) -> Settings:
    overrides = {} if registry is None else {"registry_dir": registry}
    return load_settings(overrides, environ=worker_environ(WORKERS[0], compose_secrets))


@pytest.fixture(scope="module")
def worker_topics(compose_secrets: Path, tiny_registry) -> dict[str, set[str]]:
    """Every topic a compose worker touches, from the app it builds, with the operations.

    The app is built by ``create_app`` from compose's worker env (only the model registry
    swapped for a test one): the topics its agents consume, its tables' changelogs,
    Faust's leader topic, and every ``*_topic`` setting (the outputs: alerts, dead
    letters, and whatever a later module adds). Nothing here is a copy of a topic name.
    """
    from reachwatch.streams.service.app import create_app

    settings = _worker_settings(compose_secrets, tiny_registry.root)
    app = create_app(settings)
    internal = settings.app_id + "-"
    needed: dict[str, set[str]] = {}

    def need(topic: str, *operations: str) -> None:
        needed.setdefault(topic, {"Describe"}).update(operations)

    for agent in app.agents.values():
        for topic in agent.channel.topics:
            if topic in settings.input_topics:
                need(topic, "Read")
            else:  # repartition topics: written by ingest, read by scoring
                need(topic, "Read", "Write")
    for table in app.tables.values():
        need(table.changelog_topic.get_topic_name(), "Read", "Write")
    need(app._leader_assignor._leader_topic_name, "Read", "Write")
    for field in fields(Settings):
        if field.name.endswith("_topic") and getattr(settings, field.name):
            topic = getattr(settings, field.name)
            if topic not in needed:
                need(topic, "Write")
    for topic in needed:
        if topic.startswith(internal):
            need(topic, "Create")  # Faust creates its internal topics and changelogs
    return needed


def test_the_topic_list_comes_from_the_code(
    compose_secrets: Path, worker_topics: dict[str, set[str]]
) -> None:
    settings = _worker_settings(compose_secrets)
    topics = worker_topics
    # A new topic in topics.py or a new *_topic setting shows up here by itself.
    named = {getattr(settings, f.name) for f in fields(Settings) if f.name.endswith("_topic")}
    named |= set(settings.input_topics)
    assert named <= set(topics)
    assert {f"{settings.app_id}-principal-state-changelog",
            f"{settings.app_id}-__assignor-__leader"} <= set(topics)


def test_acls_grant_the_workers_everything_they_touch(
    init: Ran, compose_secrets: Path, worker_topics: dict[str, set[str]]
) -> None:
    settings = _worker_settings(compose_secrets)
    worker = "User:" + settings.sasl_username
    grants = [g for g in _applied_grants(init) if g.principal == worker]
    for topic, operations in worker_topics.items():
        granted = set().union(*(g.operations for g in grants if g.covers("topic", topic)))
        assert operations <= granted, (topic, operations - granted)
    group = set().union(*(g.operations for g in grants if g.covers("group", settings.app_id)))
    assert "Read" in group


def test_only_the_workers_write_reachwatch_topics_and_only_the_siem_reads_alerts(
    init: Ran, compose_secrets: Path, worker_topics: dict[str, set[str]]
) -> None:
    settings = _worker_settings(compose_secrets)
    grants = _applied_grants(init)
    worker = "User:" + settings.sasl_username

    def who(operation: str, topic: str) -> set[str]:
        return {g.principal for g in grants
                if g.covers("topic", topic) and operation in g.operations}

    for topic in worker_topics:
        if topic in settings.input_topics:
            assert who("Read", topic) == {worker}, topic
            assert who("Write", topic) == {"User:shipper"}, topic
        else:
            assert who("Write", topic) == {worker}, topic
    assert who("Read", settings.alerts_topic) == {"User:siem"}
    assert who("Read", settings.dlq_topic) == set()  # dead letters: the admin only
    exposures = [t for t in worker_topics if "exposure" in t]
    for topic in [*exposures, f"{settings.app_id}-principal-state-changelog"]:
        assert who("Read", topic) <= {worker}, topic
    assert {g.principal for g in grants} == {worker, "User:shipper", "User:siem"}
    assert not any("All" in g.operations or g.name in ("*", "") for g in grants)


def test_every_acl_line_and_topic_line_is_applied(init: Ran) -> None:
    applied = {(g.principal, g.kind, g.pattern, g.name, g.operations)
               for g in _applied_grants(init)}
    listed = {(p, k, pat, n, frozenset(ops.split(","))) for p, k, pat, n, ops in _table("acls.txt")}
    assert applied == listed
    created = {(_option(c, "--topic")[0], _option(c, "--partitions")[0],
                frozenset(_option(c, "--config")))
               for c in init.calls if c[0] == "kafka-topics.sh"}
    listed_topics = _table("topics.txt")
    assert created == {(t, p, frozenset(c.split(","))) for t, p, c in listed_topics}
    altered = {(_option(c, "--entity-name")[0], _option(c, "--add-config")[0])
               for c in init.calls if c[0] == "kafka-configs.sh" and "topics" in c}
    assert altered == {(t, c) for t, _, c in listed_topics}


def test_topics_the_workers_do_not_create_are_created_by_kafka_init(
    compose_secrets: Path, worker_topics: dict[str, set[str]]
) -> None:
    settings = _worker_settings(compose_secrets)
    listed = {row[0]: dict(c.split("=") for c in row[2].split(",")) for row in _table("topics.txt")}
    for topic in worker_topics:
        if not topic.startswith(settings.app_id + "-"):
            assert topic in listed, topic
    dead_letters = listed[settings.dlq_topic]
    assert int(dead_letters["retention.ms"]) == int(settings.dlq_retention * 1000)
    assert int(dead_letters["retention.ms"]) <= 7 * 86400 * 1000  # kept briefly
    assert dead_letters.get("cleanup.policy", "delete") == "delete"


def test_kafka_init_sets_each_users_scram_password_from_its_secret(
    init: Ran, compose_secrets: Path
) -> None:
    users = {}
    for call in init.calls:
        if call[0] == "kafka-configs.sh" and "users" in call:
            users[_option(call, "--entity-name")[0]] = _option(call, "--add-config")[0]
    assert set(users) == {"reachwatch", "shipper", "siem"}
    for user, config in users.items():
        password = (compose_secrets / f"kafka_{user}_password").read_text().strip()
        assert re.fullmatch(rf"SCRAM-SHA-512=\[iterations=\d+,password={password}\]", config)
    for call in init.calls:
        assert _option(call, "--bootstrap-server") == ["kafka:9092"], call[0]
        assert _option(call, "--command-config") == [str(init.run_dir / "admin.properties")]
    admin = _properties(init.run_dir / "admin.properties")
    assert admin["security.protocol"] == "SASL_SSL" and admin["sasl.mechanism"] == "SCRAM-SHA-512"


# -- TLS: the certificate `make secrets` makes, checked by a real handshake --------------
@pytest.fixture(scope="module")
def broker_cert(compose_secrets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The broker's certificate and key, out of the PKCS#12 keystore, as one PEM file."""
    pem = tmp_path_factory.mktemp("broker-cert") / "broker.pem"
    subprocess.run(["openssl", "pkcs12", "-in", str(compose_secrets / "kafka_broker.p12"),
                    "-nodes", "-passin", f"file:{compose_secrets / 'kafka_keystore_password'}",
                    "-out", str(pem)], check=True, capture_output=True)
    return pem


def _handshake(server_cert: Path, client: ssl.SSLContext, server_name: str) -> str:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(str(server_cert))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with client.wrap_socket(raw, server_hostname=server_name) as tls:
                    version = tls.version() or ""
                    tls.sendall(b"x")
        finally:
            thread.join(timeout=10)
    return version


@pytest.mark.parametrize("name", ["kafka", "localhost"])
def test_the_worker_trusts_the_broker_under_both_advertised_names(
    compose_secrets: Path, broker_cert: Path, name: str
) -> None:
    from reachwatch.streams.service.app import broker_credentials

    credentials = broker_credentials(_worker_settings(compose_secrets))
    assert _handshake(broker_cert, credentials.ssl_context, name).startswith("TLS")


def test_the_worker_refuses_a_certificate_for_another_name(
    compose_secrets: Path, broker_cert: Path
) -> None:
    from reachwatch.streams.service.app import broker_credentials

    credentials = broker_credentials(_worker_settings(compose_secrets))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(broker_cert, credentials.ssl_context, "evil.example")


def test_the_keystore_holds_the_key_and_a_chain_to_the_ca(
    compose_secrets: Path, broker_cert: Path
) -> None:
    text = broker_cert.read_text()
    assert "PRIVATE KEY" in text and text.count("BEGIN CERTIFICATE") == 2
    leaf = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName,extendedKeyUsage"],
                          input=text, capture_output=True, text=True, check=True).stdout
    assert "DNS:kafka" in leaf and "DNS:localhost" in leaf and "Server Authentication" in leaf
    assert "-----BEGIN" not in (compose_secrets / "kafka_ca.pem").read_text().split(
        "-----END CERTIFICATE-----")[1]  # the CA file holds the certificate only, no key
