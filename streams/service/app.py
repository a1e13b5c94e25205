"""Builds the Faust app of a reachwatch worker (and nothing else).

``create_app(settings)`` is what ``reachwatch run`` starts. For Faust's own command line,
``faust -A reachwatch.streams.service.app worker --web-port P`` works too: the module attribute
``app`` is built on first access from ``REACHWATCH_*`` settings. Note that ``faust worker``
forces ``web_enabled`` on unless ``--without-web`` is given and defaults to web port 6066,
so a second worker on one host needs ``--web-port``; ``reachwatch run`` uses the settings.

Faust settings chosen for the embedded tansu broker (and fine on Apache Kafka):

- ``broker_session_timeout`` 6 s (default 60 s): tansu holds a new group's first JoinGroup
  for half the session timeout, so every start and rebalance would stall ~30 s.
- ``broker_heartbeat_interval`` 1.5 s: must stay well under the session timeout.
- ``store="memory://"``: tables live in memory and are rebuilt from their changelog
  topics on start and on rebalance (no RocksDB to install; state is small per partition).
- ``web_bind`` 127.0.0.1 by default: /metrics, /alerts/recent and /status are not for the
  network; ``web_token_file`` adds a bearer-token guard when they must be (streams/service/web.py).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust

from reachwatch.models.errors import ConfigError
from reachwatch.models.pipeline import Pipeline
from reachwatch.models.registry import Registry
from reachwatch.streams.ingest.chain import build_chain
from reachwatch.streams.service.agents import Worker, register_agents
from reachwatch.streams.service.exposure_views import register_exposure_views
from reachwatch.streams.service.followup import FollowUpStage, define_followup, register_followup
from reachwatch.streams.service.health import HealthProbe
from reachwatch.streams.service.metrics import Metrics, faust_monitor
from reachwatch.streams.service.pager import Pager
from reachwatch.streams.service.reload import ModelWatcher
from reachwatch.streams.service.settings import Settings, load_settings
from reachwatch.streams.service.stores import faust_store_url
from reachwatch.streams.service.topics import define_tables, define_topics
from reachwatch.streams.service.transport import use_short_fetch_wait
from reachwatch.streams.service.web import guard_web_exposure, read_token, register_views


def broker_credentials(settings: Settings) -> Any:
    """Faust credentials for the configured TLS/SASL mode (None for PLAINTEXT)."""
    protocol = settings.security_protocol
    context: ssl.SSLContext | None = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
        if settings.ssl_certfile:
            context.load_cert_chain(
                str(settings.ssl_certfile),
                str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
            )
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_secret(),
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def prepare_data_dir(path: Path) -> None:
    """Create the worker's data dir with its parents; ``ConfigError`` (one line) if not.

    Faust creates it without parents, so a first start in an empty directory would fail
    with a traceback on the default ``var/worker``.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"cannot create the data dir {path}: a file is in the way") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot create the data dir {path}: {reason}") from None
    probe = path / ".reachwatch-write-test"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"the data dir {path} is not writable: {reason}") from None


def create_app(settings: Settings, metrics: Metrics | None = None) -> faust.App:
    """A ready-to-start worker app: topics, tables, agents, model watcher, web pages.

    Fails with ``ConfigError`` (one line) before anything starts when the ingest chain's
    files, the model or the data dir do not fit.
    """
    token = read_token(settings.web_token_file)  # first: a bad token file fails fast
    alerts_token = read_token(settings.alerts_token_file)
    guard_web_exposure(settings)  # never who-read-what open on a network by accident
    metrics = metrics or Metrics(topics=settings.input_topics)
    chain = build_chain(
        settings.format,
        enrich=settings.enrich,
        pseudonym_key_file=settings.pseudonym_key_file,
        pseudonymize=settings.pseudonymize,
        limits=settings.limits,
    )
    watcher = ModelWatcher(
        Registry(settings.registry_dir),
        settings.model_ref,
        allowed_lateness=settings.allowed_lateness,
        metrics=metrics,
        check=chain.check_model,
    )
    model = watcher.load()
    prepare_data_dir(settings.data_dir)
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=broker_credentials(settings),
        store=faust_store_url(settings.store),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        datadir=str(settings.data_dir),
        web_enabled=settings.web_enabled,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=settings.broker_heartbeat_interval,
        broker_request_timeout=settings.broker_request_timeout,
        broker_commit_interval=settings.broker_commit_interval,
        producer_max_batch_size=settings.producer_max_batch_size,
        producer_max_request_size=max(settings.max_message_bytes * 2, 1_048_576),
        consumer_max_fetch_size=max(settings.max_message_bytes * 4, 4_194_304),
        table_standby_replicas=0,
        # Agents hold messages unacknowledged while their events wait for the aligned
        # watermark (streams/service/agents.py): waiting for "all acked" on stop or on a
        # rebalance would wait forever; committed offsets only ever cover finished messages.
        stream_wait_empty=False,
        autodiscover=False,
        # Faust's own pages would serve window state per entity (/table) and key placement
        # (/router): the web server answers only reachwatch's views (streams/service/web.py).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
    )
    # Before any topic (they bind to the app's transport). The agents acknowledge what the
    # input and scoring topics commit (streams/service/agents.py).
    use_short_fetch_wait(
        app,
        [*settings.input_topics, settings.principal_topic, settings.resource_topic],
        # In runs of input_chunk records (chunks.py); a message per record at 1.
        chunked=settings.input_topics if settings.input_chunk > 1 else (),
        chunk=settings.input_chunk,
    )
    app.monitor = faust_monitor(metrics.registry)
    worker = Worker(
        settings=settings,
        pipeline=Pipeline(model),
        watcher=watcher,
        chain=chain,
        topics=define_topics(app, settings),
        tables=define_tables(app, settings),
        metrics=metrics,
    )
    # Lifecycle, exposure records, grants, the alert log behind /alerts/recent, and pages.
    pager = (
        Pager(
            settings.alertmanager_url,
            metrics=metrics,
            broker=settings.broker_url,
            resend_interval=settings.page_resend_interval,
        )
        if settings.alertmanager_url
        else None
    )
    worker.attach(
        FollowUpStage(
            define_followup(app, settings),
            settings,
            worker.pipeline.policy.quiet_period,
            metrics,
            pager,
        )
    )
    register_agents(app, worker)
    register_followup(app, worker.followup, settings)

    probe = HealthProbe(app, worker.tables, metrics, timeout=settings.health_interval,
                        tracked=worker.tracked)
    app.timer(settings.health_interval, name="reachwatch.sample_health")(probe.sample)

    def status() -> dict[str, Any]:
        consumer = app.consumer
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in consumer.assignment())
        inputs = (
            consumer.fetch_states(settings.input_topics)
            if hasattr(consumer, "fetch_states") else {}
        )
        return {**worker.status(), "assigned": assigned, "inputs": inputs}

    register_views(
        app,
        metrics=metrics,
        recent=worker.recent,
        status=status,
        token=token,
        alerts_token=alerts_token,
    )
    # Exposure records name people: the alerts token where there is one, not the metrics one.
    register_exposure_views(
        app, worker.followup, alerts_token if alerts_token is not None else token
    )
    return app


def __getattr__(name: str) -> Any:
    # ``faust -A reachwatch.streams.service.app`` looks up ``app``: build it only then, so importing
    # this module (tests, the CLI) never reads the environment or loads a model.
    if name == "app":
        built = create_app(load_settings())
        globals()["app"] = built
        return built
    raise AttributeError(name)
