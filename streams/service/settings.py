"""reachwatch's own service knobs: one frozen object, read once at start-up.

Two layers of configuration, as in any Faust service: Faust's own env settings still apply
underneath, and these ``REACHWATCH_*`` settings (or the matching ``reachwatch run`` flags,
which win) hold reachwatch's knobs. This is the only module that reads ``os.environ``.

Broker timing (``broker_session_timeout`` & co.) defaults are tuned for the embedded tansu
broker, which holds a new group's first JoinGroup for half the session timeout: with
Faust's default 60 s every worker start and rebalance stalls ~30 s; 6 s makes it ~3 s. They
are also sane on Apache Kafka (its group.min.session.timeout.ms is 6 s).

Size limits (``limits``) bound every input message; each breach is dead-lettered as
``too_large`` with a one-line detail naming the field, its size and the limit:

- ``REACHWATCH_MAX_MESSAGE_BYTES`` (1000000): bytes of one input message.
- ``REACHWATCH_MAX_ID_LENGTH`` (1024): characters of ``principal`` and ``resource``.
- ``REACHWATCH_MAX_FIELD_LENGTH`` (256): characters of the other free-text fields
  (``principal_group``, ``resource_group``, ``action``, ``source``).
- ``REACHWATCH_MAX_NESTING`` (64): JSON nesting depth of one message (orjson refuses
  documents deeper than 1024 itself, as ``not_json``).

Each must be a positive integer.

The ingest chain (``streams.ingest.chain``) is the one ``train`` and ``replay`` read files
through, from the same three knobs: ``REACHWATCH_ENRICH`` (a mapping file),
``REACHWATCH_PSEUDONYM_KEY_FILE`` (the HMAC key) and ``REACHWATCH_PSEUDONYMIZE``
(``principals``, the default with a key, or ``resources``). The worker refuses a model
trained through another chain.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from reachwatch.models.errors import ConfigError
from reachwatch.models.records import (
    MAX_FIELD_LENGTH,
    MAX_ID_LENGTH,
    MAX_MESSAGE_BYTES,
    MAX_NESTING,
    Limits,
)
from reachwatch.streams.ingest.pseudonyms import PSEUDONYMIZE_MODES

ENV_PREFIX = "REACHWATCH_"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


# Input records per Faust message by default (``Settings.input_chunk``, ``chunks``): large
# enough that Faust's cost per message is small beside the events' (~0.2 µs each), small
# enough that a step's events stay a few thousand (``ingest_take``).
DEFAULT_INPUT_CHUNK = 500
# Where tables keep their state (``Settings.store``, ``streams.service.stores``).
MEMORY = "memory://"
ROCKSDB = "rocksdb://"
STORE_CHOICES = (MEMORY, ROCKSDB)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment, validated once."""

    broker_url: str = "kafka://127.0.0.1:9092"
    app_id: str = "reachwatch"
    input_topics: tuple[str, ...] = ("access-events",)
    alerts_topic: str = "access-alerts"
    dlq_topic: str = "access-events-dlq"
    # Compacted, keyed by resource: the exposure record of every broad_audience alert.
    exposures_topic: str = "access-exposures"
    # Alertmanager base URL (``http://host:9093``) the worker pushes pages to; None = off.
    alertmanager_url: str | None = None
    # Seconds between re-sends of open pages (Alertmanager resolves what is not re-sent).
    page_resend_interval: float = 60.0
    # Readers one exposure record lists at most; reads by further readers are counted.
    exposure_cap: int = 10_000
    # Alerts /alerts/recent keeps (their latest message each, in a changelog table).
    alert_log_size: int = 10_000
    # Seconds the dead-letter topic keeps a message (retention.ms of the topic the worker
    # creates): dead letters are raw input, a copy of who read what, kept for triage only.
    dlq_retention: float = 3 * 86400.0
    format: str = "native"
    # The ingest chain after the adapter: a mapping file, the pseudonym key and what the
    # key replaces (principals, or principals and resources). A model must have been
    # trained with the same three, which the worker checks on every load.
    enrich: Path | None = None
    pseudonym_key_file: Path | None = None
    pseudonymize: str | None = None
    registry_dir: Path = Path("var/models")
    model_ref: str = "current"
    # Partitions of the internal by-principal / by-resource topics and their changelogs;
    # the ceiling on how many workers share the scoring.
    partitions: int = 4
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_enabled: bool = True
    # A file holding the bearer token /metrics and /alerts/recent demand; None = open
    # (the web server binds loopback by default). A file, so the token never sits in env.
    web_token_file: Path | None = None
    # A second token for /alerts/recent alone (alert samples name who read what): then the
    # web_token_file token (Prometheus') opens /metrics only. None = web_token_file's.
    alerts_token_file: Path | None = None
    # The one way to serve /metrics and /alerts/recent beyond loopback without a token
    # (web.py, guard_web_exposure): loudly named so that it stands out in any review.
    insecure_open_web: bool = False
    # How many of this worker's latest published alerts /alerts/recent keeps (in memory).
    recent_alerts: int = 200
    # Seconds between samples of broker health, consumer lag and table sizes.
    health_interval: float = 5.0
    # Input messages per ingest micro-batch: an upper bound, reached only under load (at low
    # rates batch_max_wait closes a batch first). Larger batches write each touched entity's
    # state once per more events: 2,000 gave ~25 % more events/s than 500 (make bench).
    batch_size: int = 2000
    # Input records per Faust message (streams/service/chunks.py): above 1 the transport
    # hands each partition's fetched records to the ingest agent in runs of up to this many,
    # so Faust's per-message cost is paid per run, not per record (bench/chunks.py: Faust's
    # own path 100 -> 4 us a record). 1 = one message per record, the design before. An
    # ingest step takes up to batch_size / input_chunk messages.
    input_chunk: int = DEFAULT_INPUT_CHUNK
    # Decoded window states the worker keeps per side (principal, resource) to skip decoding
    # hot entities again; least recently used beyond it are dropped (the table keeps them).
    decoded_state_cache: int = 10_000
    batch_max_wait: float = 0.25
    # Seconds between checkpoints of the window states (write-behind): a state changed by a
    # step stays decoded in the cache, and all changed states are written to their table's
    # changelog together, every checkpoint_interval seconds (sooner when more than half the
    # decoded_state_cache is changed); the envelopes they cover are acknowledged only after.
    # 0 = after every scoring step. A crash replays at most this much of the internal topics.
    checkpoint_interval: float = 5.0
    # None: the lateness the model was trained with (its DetectionConfig).
    allowed_lateness: float | None = None
    # Size limits on input (see the module docstring and ``limits``).
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_id_length: int = MAX_ID_LENGTH
    max_field_length: int = MAX_FIELD_LENGTH
    max_nesting: int = MAX_NESTING
    reload_poll_interval: float = 2.0
    # Seconds (wall clock) between sweeps that forget entities idle for the model's
    # idle_ttl_days (judged in event time, like the offline replay's daily sweep).
    idle_sweep_interval: float = 600.0
    # Principals (and, separately, resources) one worker keeps state for at most; beyond it
    # the least recently active are forgotten (bench/soak.py: 100k principals + 1M
    # resources peaked at 907 MB). Scale out with partitions and workers for more.
    max_entities: int = 1_000_000
    # Event-time alignment of input partitions (streams/service/alignment.py): a partition
    # more than alignment_max_drift seconds of event time ahead of the slowest active one is
    # paused until it catches up; one silent for alignment_idle_timeout seconds (counted in
    # timer ticks, streams/service/alignment.py) stops holding the others back.
    alignment_max_drift: float = 300.0
    alignment_idle_timeout: float = 2.0
    # Test hook: append one line per durably scored event (side, ts, principal, resource).
    scored_log_file: Path | None = None
    alert_publish_retries: int = 0  # 0 = retry until it goes through (never drop an alert)
    broker_session_timeout: float = 6.0
    broker_heartbeat_interval: float = 1.5
    broker_request_timeout: float = 30.0
    broker_commit_interval: float = 1.0
    # Bytes the producer buffers per partition before a batch is sent (Faust's default).
    # 1 = one record per batch, needed on the embedded tansu 0.6.0: it reports a partition's
    # end offset as (first offset of the last batch + 1), so with multi-record batches Faust
    # stops changelog recovery early (losing the tail of the state) and lag reads too low.
    producer_max_batch_size: int = 16384
    data_dir: Path = Path("var/worker")
    # Where the tables keep their state: memory:// (rebuilt from the changelog topics at
    # every start) or rocksdb:// (on disk under data_dir; needs rocksdict, the [rocksdb]
    # extra). streams/service/stores.py; README "Performance" has the figures.
    store: str = MEMORY
    broker_bin: str | None = None
    log_level: str = "info"
    security_protocol: str = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = None
    # Preferred over sasl_password: a secret in a file does not show in `ps e` or /proc.
    sasl_password_file: Path | None = None

    @property
    def ingest_take(self) -> int:
        """Input messages per ingest step: messages of up to ``input_chunk`` records each
        (streams/service/chunks.py), about ``batch_size`` records under load."""
        return max(1, -(-self.batch_size // self.input_chunk))

    def __post_init__(self) -> None:
        if not self.input_topics:
            raise ConfigError("at least one input topic is required")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"security_protocol must be one of {'|'.join(SECURITY_PROTOCOLS)}, "
                f"got {self.security_protocol!r}"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"sasl_mechanism must be one of {'|'.join(SASL_MECHANISMS)}, "
                f"got {self.sasl_mechanism!r}"
            )
        if self.security_protocol.startswith("SASL") and not self.sasl_username:
            raise ConfigError(f"{self.security_protocol} needs sasl_username and sasl_password")
        if self.sasl_password_file is not None and not Path(self.sasl_password_file).is_file():
            raise ConfigError(
                f"sasl_password_file {str(self.sasl_password_file)!r} is not a readable file"
            )
        # Checked here, not when the first connection fails minutes later with an ssl error.
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{name} {str(path)!r} is not a readable file")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ConfigError("ssl_keyfile is set but ssl_certfile is not")
        for name in (
            "batch_size", "input_chunk", "partitions", "max_message_bytes", "recent_alerts",
            "producer_max_batch_size", "decoded_state_cache", "max_id_length",
            "max_field_length", "max_nesting", "max_entities", "exposure_cap", "alert_log_size",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in (
            "batch_max_wait", "reload_poll_interval", "broker_session_timeout", "health_interval",
            "idle_sweep_interval", "dlq_retention", "page_resend_interval",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.pseudonymize is not None and self.pseudonymize not in PSEUDONYMIZE_MODES:
            raise ConfigError(
                f"pseudonymize must be one of {'|'.join(PSEUDONYMIZE_MODES)}, "
                f"got {self.pseudonymize!r}"
            )
        if self.pseudonymize is not None and self.pseudonym_key_file is None:
            raise ConfigError(
                "pseudonymize needs a pseudonym key file "
                "(--pseudonym-key-file or REACHWATCH_PSEUDONYM_KEY_FILE)"
            )
        if self.store not in STORE_CHOICES:
            raise ConfigError(f"store must be one of {'|'.join(STORE_CHOICES)}, got {self.store!r}")
        if self.store == ROCKSDB and importlib.util.find_spec("rocksdict") is None:
            raise ConfigError(
                "store rocksdb:// needs the rocksdict package: pip install 'reachwatch[rocksdb]'"
            )
        if self.checkpoint_interval < 0:
            raise ConfigError("checkpoint_interval must not be negative")
        if self.allowed_lateness is not None and self.allowed_lateness < 0:
            raise ConfigError("allowed_lateness must not be negative")
        if not 0 <= self.web_port <= 65535:
            raise ConfigError(f"web_port {self.web_port} is not a port")

    def sasl_secret(self) -> str | None:
        """The SASL password: from ``sasl_password_file`` when set, else ``sasl_password``."""
        if self.sasl_password_file is not None:
            return Path(self.sasl_password_file).read_text().strip()
        return self.sasl_password

    @property
    def limits(self) -> Limits:
        """The size limits on input messages and their fields (built per call: keep it)."""
        return Limits(
            max_message_bytes=self.max_message_bytes,
            max_id_length=self.max_id_length,
            max_field_length=self.max_field_length,
            max_nesting=self.max_nesting,
        )

    @property
    def uses_registry_version(self) -> bool:
        """True when the service follows the registry's promoted version (hot reload)."""
        return self.model_ref == "current"

    @property
    def principal_topic(self) -> str:
        return f"{self.app_id}-events-by-principal"

    @property
    def resource_topic(self) -> str:
        return f"{self.app_id}-events-by-resource"


def _convert(name: str, raw: str, default: Any) -> Any:
    try:
        if name == "allowed_lateness":
            return float(raw) if raw else None
        if name == "input_topics":
            return tuple(t.strip() for t in raw.split(",") if t.strip())
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if (isinstance(default, Path) or name.startswith("ssl_") or name.endswith("_file")
                or name == "enrich"):
            return Path(raw) if raw else None
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not valid") from None
    return raw or None if default is None else raw


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then ``REACHWATCH_*`` env, then ``overrides`` (CLI flags; ``None`` = unset).

    >>> load_settings({"batch_size": 50}, environ={"REACHWATCH_ALERTS_TOPIC": "a"}).alerts_topic
    'a'
    """
    env = os.environ if environ is None else environ
    base = Settings()
    values: dict[str, Any] = {}
    for field in fields(Settings):
        raw = env.get(ENV_PREFIX + field.name.upper())
        if raw is not None:
            values[field.name] = _convert(field.name, raw, getattr(base, field.name))
    for name, value in (overrides or {}).items():
        if value is None or value == ():
            continue
        if name not in Settings.__dataclass_fields__:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = tuple(value) if name == "input_topics" else value
    try:
        return replace(base, **values)
    except TypeError as exc:  # pragma: no cover - guarded by the field check above
        raise ConfigError(str(exc)) from None
