"""The scoring pipeline shared by ``reachwatch replay``, ``train`` and the Faust agents.

A batch of events goes through three steps per side: update each entity's state and
build its feature view (in event order), score every view of the batch in one call, then
let the alert policy decide per view (again in event order). States live in a mapping the
caller owns: a dict offline, a dict filled from (and written back to) a Faust table in
the stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reachwatch.models.alerts import Alert, AlertPolicy, involvement, sample_of
from reachwatch.models.features import FeatureBuilder, View
from reachwatch.models.grants import GRANT_ACTIONS, GrantLog
from reachwatch.models.records import AccessEvent
from reachwatch.models.registry import LoadedModel
from reachwatch.models.sides import PRINCIPAL, RESOURCE, Side
from reachwatch.models.windows import EntityState


@dataclass
class BatchResult:
    alerts: list[Alert] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    scored: int = 0
    late: int = 0
    late_events: list[AccessEvent] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


class Pipeline:
    """Features -> batched scores -> alert policy, for one loaded model at a time."""

    def __init__(
        self, model: LoadedModel, policy: AlertPolicy | None = None, grants: GrantLog | None = None
    ) -> None:
        self.policy = policy or AlertPolicy()
        # The grants the resource side's reads are judged with (``FeatureBuilder._granted``):
        # a dict offline, the follow-up stage's grant-log table in the stream.
        self.grants = grants if grants is not None else GrantLog()
        self.swap_model(model)

    def use_grants(self, grants: GrantLog) -> None:
        """Judge reads with ``grants`` (the stream's grant log) from now on."""
        self.grants = self.features.grants = grants

    @property
    def model_version(self) -> str:
        return self.model.version

    def swap_model(self, model: LoadedModel) -> None:
        """Use another model from the next batch on; entity state is kept.

        Windows and own baselines do not depend on the model, so a hot swap needs no
        state migration; peer profiles come with the new model.
        """
        self.model = model
        self.features = FeatureBuilder(model.config, model.profiles, grants=self.grants)

    def idle(self, watermarks: Iterable[tuple[str, float]], now: float) -> list[str]:
        """The keys of ``(key, watermark)`` pairs idle at ``now`` (``DetectionConfig.idle``:
        no read for longer than the model's ``idle_ttl_days``)."""
        config = self.model.config
        return [key for key, watermark in watermarks if config.idle(watermark, now)]

    def expire_idle(self, states: MutableMapping[str, EntityState], now: float) -> list[str]:
        """Forget the idle entities of a plain mapping of decoded states; return their keys.

        (A store that knows watermarks without decoding passes them to ``idle``.)
        """
        idle = self.idle(((key, state.watermark) for key, state in states.items()), now)
        for key in idle:
            del states[key]
        return idle

    def observe_principals(
        self,
        events: Sequence[AccessEvent],
        states: MutableMapping[str, EntityState],
        watermark: float | None = None,
    ) -> BatchResult:
        return self.observe(PRINCIPAL, events, states, watermark)

    def observe_resources(
        self,
        events: Sequence[AccessEvent],
        states: MutableMapping[str, EntityState],
        watermark: float | None = None,
    ) -> BatchResult:
        return self.observe(RESOURCE, events, states, watermark)

    def observe(
        self,
        side: Side,
        events: Sequence[AccessEvent],
        states: MutableMapping[str, EntityState],
        watermark: float | None = None,
    ) -> BatchResult:
        """Score one side of a batch: ``states`` holds that side's entities by key (missing
        ones are created) and is updated in place.

        ``watermark``: the event time the caller's input has reached (the stream's aligned
        watermark); a read more than ``allowed_lateness`` before it is late. Without it, a
        read is late against its entity's own latest read only.

        Grant events (``models.grants``) among ``events`` are not reads: the resource side
        files them in ``grants``, in event order, for the reads after them; neither side
        scores them."""
        result = BatchResult()
        horizon = (
            -math.inf if watermark is None else watermark - self.model.config.allowed_lateness
        )
        features = self.features
        detector = self.model.detectors[side.kind]
        views: list[View] = []
        samples: list[list[dict[str, Any]] | None] = []
        gate = detector.breadth_threshold_
        key_of, build = side.entity, features.view
        files_grants = side is RESOURCE
        for event in events:
            if event.action in GRANT_ACTIONS:
                if files_grants:
                    features.file_grant(event)
                continue
            if event.ts < horizon:
                result.late += 1
                result.late_events.append(event)
                continue
            key = key_of(event)
            state = states.get(key)
            if state is None:
                state = states[key] = features.new_state(side)
            view = build(event, state)
            result.touched.add(key)
            if view is None:
                result.late += 1
                result.late_events.append(event)
                continue
            # Each breadth metric against its own calibrated gate (``BreadthDetector.gate``).
            view.breadth, view.breadth_metric = detector.gate(view.breadths)
            views.append(view)
            # Reads that may alert keep a snapshot of the entity's recent reads now, so an
            # alert's sample does not depend on where the batch boundary fell.
            if view.breadth >= gate:
                samples.append(sample_of(view))
                view.involved = involvement(view)  # its level, likewise
            else:
                samples.append(None)
        if not views:
            return result
        scores = detector.score(np.asarray([v.vector for v in views], dtype=np.float64))
        result.scored = len(views)
        result.scores = scores.tolist()
        version = self.model.version
        decide = self.policy.decide
        for view, score, sample in zip(views, result.scores, samples, strict=True):
            if sample is None:
                # Keep expiry of a stale open alert consistent even for quiet reads.
                open_alert = view.state.open_alert
                if open_alert is not None and view.event.ts - open_alert.last_ts > (
                    self.policy.quiet_period
                ):
                    view.state.open_alert = None
                continue
            alert = decide(view, score, detector, version, sample)
            if alert is not None:
                result.alerts.append(alert)
        return result
