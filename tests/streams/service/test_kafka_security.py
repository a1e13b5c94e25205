"""TLS and SASL settings reach the aiokafka consumer and producer the worker really builds.

No TLS broker is needed: the app is built from settings exactly as ``reachwatch run`` does,
then Faust is asked for the aiokafka clients it would connect with, and their security
fields are read back.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.compose import WORKERS, make_secrets, worker_environ

from reachwatch.models.errors import ConfigError
from reachwatch.streams.service.app import create_app
from reachwatch.streams.service.settings import load_settings


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate and key (serves as CA and client cert)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=reachwatch-test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def kafka_clients(settings_env: dict[str, str], registry_dir: Path) -> dict[str, Any]:
    """Security fields of the aiokafka consumer and producer the app would create."""
    settings = load_settings(
        {"registry_dir": registry_dir, "web_enabled": False},
        environ=settings_env,
    )
    app = create_app(settings)

    async def build() -> dict[str, Any]:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        producer = app.producer._new_producer()
        found = {}
        for role, client in (("consumer", consumer._client), ("producer", producer.client)):
            found[role] = {
                "security_protocol": client._security_protocol,
                "sasl_mechanism": client._sasl_mechanism,
                "sasl_plain_username": client._sasl_plain_username,
                "sasl_plain_password": client._sasl_plain_password,
                "ssl_context": client._ssl_context,
            }
        await consumer.stop()
        await producer.stop()
        return found

    return asyncio.run(build())


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_settings_reach_consumer_and_producer(tiny_registry, client_cert, mechanism):
    cert, _key = client_cert
    env = {
        "REACHWATCH_SECURITY_PROTOCOL": "SASL_SSL",
        "REACHWATCH_SASL_MECHANISM": mechanism,
        "REACHWATCH_SASL_USERNAME": "reachwatch-svc",
        "REACHWATCH_SASL_PASSWORD": "s3cret",
        "REACHWATCH_SSL_CAFILE": str(cert),
    }
    for role, client in kafka_clients(env, tiny_registry.root).items():
        assert client["security_protocol"] == "SASL_SSL", role
        assert client["sasl_mechanism"] == mechanism, role
        assert client["sasl_plain_username"] == "reachwatch-svc", role
        assert client["sasl_plain_password"] == "s3cret", role
        context = client["ssl_context"]
        assert isinstance(context, ssl.SSLContext), role
        # Verification on: a broker presenting another certificate is refused.
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname, role


def test_sasl_plaintext_sends_credentials_without_tls(tiny_registry):
    env = {
        "REACHWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "REACHWATCH_SASL_USERNAME": "reachwatch-svc",
        "REACHWATCH_SASL_PASSWORD": "s3cret",
    }
    for role, client in kafka_clients(env, tiny_registry.root).items():
        assert client["security_protocol"] == "SASL_PLAINTEXT", role
        assert client["sasl_mechanism"] == "PLAIN", role
        assert client["sasl_plain_username"] == "reachwatch-svc", role
        assert client["ssl_context"] is None, role


def test_mutual_tls_loads_the_client_certificate(tiny_registry, client_cert):
    cert, key = client_cert
    env = {
        "REACHWATCH_SECURITY_PROTOCOL": "SSL",
        "REACHWATCH_SSL_CAFILE": str(cert),
        "REACHWATCH_SSL_CERTFILE": str(cert),
        "REACHWATCH_SSL_KEYFILE": str(key),
    }
    clients = kafka_clients(env, tiny_registry.root)
    for role, client in clients.items():
        assert client["security_protocol"] == "SSL", role
        assert client["sasl_plain_username"] is None, role
        # The CA file is the trust store: its one certificate is the only one trusted.
        subjects = [dict(x[0] for x in c["subject"]) for c in client["ssl_context"].get_ca_certs()]
        assert subjects == [{"commonName": "reachwatch-test"}], role


def test_plaintext_is_the_default(tiny_registry):
    for role, client in kafka_clients({}, tiny_registry.root).items():
        assert client["security_protocol"] == "PLAINTEXT", role
        assert client["ssl_context"] is None, role


def test_missing_client_certificate_is_a_config_error(tiny_registry, tmp_path):
    env = {
        "REACHWATCH_SECURITY_PROTOCOL": "SSL",
        "REACHWATCH_SSL_CERTFILE": str(tmp_path / "absent.pem"),
    }
    with pytest.raises(ConfigError, match="ssl_certfile"):
        kafka_clients(env, tiny_registry.root)


def test_sasl_without_username_is_refused():
    with pytest.raises(ConfigError, match="sasl_username"):
        load_settings(environ={"REACHWATCH_SECURITY_PROTOCOL": "SASL_SSL"})


def test_sasl_password_can_come_from_a_file(tiny_registry, tmp_path):
    secret = tmp_path / "kafka-password"
    secret.write_text("from-a-file\n")
    env = {
        "REACHWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "REACHWATCH_SASL_USERNAME": "reachwatch-svc",
        "REACHWATCH_SASL_PASSWORD_FILE": str(secret),
    }
    for role, client in kafka_clients(env, tiny_registry.root).items():
        assert client["sasl_plain_password"] == "from-a-file", role


def test_the_compose_workers_settings_reach_consumer_and_producer(tiny_registry, tmp_path):
    """compose.yaml's worker env (SASL_SSL, SCRAM-SHA-512, password and CA from the Docker
    secrets `make secrets` makes) is what the aiokafka clients are built with."""
    secrets = make_secrets(tmp_path / "secrets")
    env = worker_environ(WORKERS[0], secrets)
    env.pop("REACHWATCH_REGISTRY_DIR")  # the container path; kafka_clients passes the registry
    password = (secrets / "kafka_reachwatch_password").read_text().strip()
    for role, client in kafka_clients(env, tiny_registry.root).items():
        assert client["security_protocol"] == "SASL_SSL", role
        assert client["sasl_mechanism"] == "SCRAM-SHA-512", role
        assert client["sasl_plain_username"] == env["REACHWATCH_SASL_USERNAME"], role
        assert client["sasl_plain_password"] == password, role
        context = client["ssl_context"]
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname, role
        subjects = [dict(x[0] for x in c["subject"]) for c in context.get_ca_certs()]
        assert subjects == [{"commonName": "reachwatch kafka CA"}], role
