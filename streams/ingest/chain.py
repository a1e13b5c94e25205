"""The ingest chain: adapter → enrichment → pseudonymisation, under size limits.

Every event reachwatch scores, from a file (``replay``, ``train``) or a Kafka message
(``run``), comes out of one ``Chain``; the two readers (``ingest.files``,
``ingest.messages``) only split their input into documents and count what became of
them. Order matters: enrichment rules name real principals and resources, so they run
before pseudonyms replace the names; limits bound every field the adapter maps (and, in
the readers, the bytes and nesting of what arrives).

A model records the chain it was trained through (``describe``: the key's fingerprint,
never the key, and the mapping's fingerprint) and ``check_model`` refuses to score with a
chain that does not match, so a model is never served events it was not trained on.

>>> from reachwatch.streams.formats.adapters import get_adapter
>>> chain = Chain(get_adapter("native"), limits=Limits(max_id_length=8))
>>> chain.event({"ts": 1767600000, "principal": "ana", "resource": "hr.pay"}).resource
'hr.pay'
>>> chain.event({"ts": 1767600000, "principal": "ana", "resource": "hr.salaries"})
Traceback (most recent call last):
reachwatch.models.errors.SchemaError: too_large: resource is 11 characters, limit 8
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reachwatch.models.errors import ConfigError, SchemaError
from reachwatch.models.records import DEFAULT_LIMITS, AccessEvent, Limits
from reachwatch.streams.formats.adapters import Adapter, get_adapter
from reachwatch.streams.ingest import enrichment as enrichments
from reachwatch.streams.ingest import pseudonyms
from reachwatch.streams.ingest.enrichment import Enrichment
from reachwatch.streams.ingest.pseudonyms import PSEUDONYMIZE_MODES, Pseudonymizer

_DETAIL_CHARS = 300  # an adapter bug's message, as far as a dead letter keeps it


@dataclass(frozen=True)
class Chain:
    """What turns one format's records into the events a model scores."""

    adapter: Adapter
    enrichment: Enrichment | None = None
    pseudonymizer: Pseudonymizer | None = None
    limits: Limits = DEFAULT_LIMITS

    @property
    def name(self) -> str:
        return self.adapter.name

    def records(self, document: Any) -> list[Any]:
        """The format's records in one arrived document; only ever ``SchemaError``.

        An adapter bug (any other exception), here as in ``event``, becomes
        ``adapter_error``: one document must not stop a stream or a replay.
        """
        try:
            return list(self.adapter.records(document))
        except SchemaError:
            raise
        except Exception as exc:
            raise self._bug(exc) from None

    def event(self, record: Any) -> AccessEvent | None:
        """One record through the chain; None when skipped; only ever ``SchemaError``."""
        try:
            event = self.adapter.event(record, self.limits)
        except SchemaError:
            raise
        except Exception as exc:
            raise self._bug(exc) from None
        if event is None:
            return None
        if self.enrichment is not None:
            event = self.enrichment.apply(event)
        if self.pseudonymizer is not None:
            event = self.pseudonymizer.apply(event)
        return event

    def _bug(self, exc: Exception) -> SchemaError:
        detail = f"{self.adapter.name} failed: {type(exc).__name__}: {exc}"
        return SchemaError("adapter_error", detail[:_DETAIL_CHARS])

    def describe(self) -> dict[str, Any]:
        """What a model trained through this chain keeps in its metadata."""
        described: dict[str, Any] = {}
        if self.pseudonymizer is not None:
            described[pseudonyms.METADATA_KEY] = self.pseudonymizer.describe()
        if self.enrichment is not None:
            described[enrichments.METADATA_KEY] = self.enrichment.describe()
        return described

    def check_model(self, metadata: dict[str, Any]) -> None:
        """``ConfigError`` (one line) when the model was trained through another chain."""
        pseudonyms.check_model(metadata, self.pseudonymizer)
        enrichments.check_model(metadata, self.enrichment)


def build_chain(
    fmt: str = "native",
    *,
    enrich: Path | None = None,
    pseudonym_key_file: Path | None = None,
    pseudonymize: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Chain:
    """The chain the CLI flags or ``REACHWATCH_*`` settings describe; ``ConfigError`` if not.

    ``pseudonymize`` is ``principals`` (the default with a key) or ``resources``
    (principals and resources); it needs a key.
    """
    if pseudonymize is not None and pseudonymize not in PSEUDONYMIZE_MODES:
        raise ConfigError(
            f"pseudonymize must be one of {'|'.join(PSEUDONYMIZE_MODES)}, got {pseudonymize!r}"
        )
    if pseudonymize is not None and pseudonym_key_file is None:
        raise ConfigError("pseudonymize needs a pseudonym key file (--pseudonym-key-file)")
    pseudonymizer = None
    if pseudonym_key_file is not None:
        pseudonymizer = Pseudonymizer.from_key_file(
            pseudonym_key_file, resources=pseudonymize == "resources"
        )
    enrichment = Enrichment.from_file(enrich) if enrich is not None else None
    return Chain(get_adapter(fmt), enrichment, pseudonymizer, limits)
