"""Hot model reload: follow the registry's promoted version without a restart.

``reachwatch models promote V`` rewrites the registry's ``CURRENT`` pointer; every worker
polls it (cheap: one small file read) and, when it changes, loads the new version off the
event loop and swaps it into the pipeline between two micro-batches. Window state is kept
(it does not depend on the model), and no rebalance happens. A version that fails to load
is reported (log + ``reachwatch_model_reload_failures_total``) and the worker keeps scoring
with the model it has; it tries again only when the pointer changes.

Every load, the first and each reload, passes the model's metadata to ``check`` (the ingest
chain's ``check_model``): a version trained with other pseudonymisation or enrichment is
refused at start (one-line error) or, when promoted later, not switched to.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reachwatch.models.errors import ReachwatchError
from reachwatch.models.registry import LoadedModel, Registry
from reachwatch.streams.service.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class ModelWatcher:
    """Loads the configured model and notices promotions (when following ``current``)."""

    registry: Registry
    ref: str = "current"
    allowed_lateness: float | None = None
    metrics: Metrics | None = None
    # Raises ``ReachwatchError`` when a model's metadata does not fit this worker.
    check: Callable[[dict[str, Any]], None] | None = None
    loaded_version: str | None = None
    failed_version: str | None = None

    @property
    def follows_promotions(self) -> bool:
        return self.ref == "current"

    def load(self, ref: str | None = None) -> LoadedModel:
        """Load and ``check`` ``ref`` (default: the configured one), applying the lateness
        override."""
        model = self.registry.load(ref or self.ref)
        if self.check is not None:
            self.check(model.metadata)
        if self.allowed_lateness is not None:
            config = dataclasses.replace(model.config, allowed_lateness=self.allowed_lateness)
            model = dataclasses.replace(model, config=config)
        self.loaded_version = model.version
        self.failed_version = None
        if self.metrics is not None:
            self.metrics.set_model(model.version, model.trained_at)
        return model

    def poll(self) -> LoadedModel | None:
        """The newly promoted model, or None when nothing changed or loading failed.

        Blocking (file reads, deserialisation): run it in a thread from async code.
        """
        if not self.follows_promotions:
            return None
        try:
            current = self.registry.current_version()
        except OSError as exc:
            log.warning("cannot read the registry's current version: %s", exc)
            return None
        if current is None or current in (self.loaded_version, self.failed_version):
            return None
        try:
            model = self.load(current)
        except (ReachwatchError, OSError, KeyError, ValueError) as exc:
            self.failed_version = current
            if self.metrics is not None:
                self.metrics.model_reload_failures.inc()
            log.error(
                "promoted model %s failed to load, still scoring with %s: %s",
                current, self.loaded_version, exc,
            )
            return None
        log.info("switched to promoted model %s", model.version)
        return model
