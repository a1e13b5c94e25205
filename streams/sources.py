"""Sources: reading log files record by record for ``reachwatch replay`` and ``train``.

A file is JSONL/NDJSON (one document per line, blank lines ignored), or one whole JSON
document: an array of records, or an object such as CloudTrail's ``{"Records": [...]}``
(also pretty-printed over many lines). gzip is recognised by its magic bytes, whatever
the file is called. JSONL is streamed line by line; a whole-document file is loaded at
once, as JSON arrays cannot be split without parsing them.

Each input record ends as exactly one ``Outcome``: an event, a skip (a valid record that
is not a data read) or an error. A bad line never stops reading: decoding, adapter and
enrichment failures all become error outcomes, so callers can count and dead-letter them.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from reachwatch.streams.adapters import Adapter
from reachwatch.streams.enrichment import Enrichment
from reachwatch.streams.errors import SchemaError
from reachwatch.streams.records import AccessEvent, decode_json

_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One input record's fate; ``event`` and ``error`` both None means skipped.

    ``line`` is the 1-based line number for JSONL, or the 1-based position of the record
    in a whole-document file. ``raw`` is the line itself when the line held one record,
    otherwise the record re-serialised (what a rejects file should keep).
    """

    line: int
    raw: str | None
    event: AccessEvent | None
    error: SchemaError | None
    path: Path | None = None

    @property
    def skipped(self) -> bool:
        return self.event is None and self.error is None


def read_outcomes(
    paths: Sequence[Path],
    adapter: Adapter,
    enrichment: Enrichment | None = None,
) -> Iterator[Outcome]:
    """Outcomes of every record in ``paths``, files in the given order."""
    for path in paths:
        path = Path(path)
        whole = _whole_document(path)
        if whole is None:
            yield from _line_outcomes(path, adapter, enrichment)
        else:
            yield from _document_outcomes(path, whole, adapter, enrichment)


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    return path.open("rb")


def _whole_document(path: Path) -> Any | SchemaError | None:
    """The file's single JSON document when it is not JSONL, else None.

    A file is one document when its first line starts with '[' or '{' but is not
    complete JSON by itself (a pretty-printed array or object). A broken array is one
    error outcome; a broken would-be object falls back to line mode, where each bad
    line is reported.
    """
    with _open(path) as stream:
        first = b""
        for first in stream:
            if first.strip():
                break
    first = first.removeprefix(_UTF8_BOM).strip()
    if not first.startswith((b"[", b"{")):
        return None
    try:
        orjson.loads(first)
        return None  # the first line is a whole document: JSONL (of objects or arrays)
    except orjson.JSONDecodeError:
        pass
    with _open(path) as stream:
        content = stream.read().removeprefix(_UTF8_BOM)
    try:
        return decode_json(content)
    except SchemaError as exc:
        return exc if first.startswith(b"[") else None


def _document_outcomes(
    path: Path, document: Any, adapter: Adapter, enrichment: Enrichment | None
) -> Iterator[Outcome]:
    if isinstance(document, SchemaError):
        yield Outcome(1, None, None, document, path)
        return
    documents = document if isinstance(document, list) else [document]
    position = 0
    for item in documents:
        try:
            records = list(adapter.records(item))
        except SchemaError as exc:
            position += 1
            yield Outcome(position, _dump(item), None, exc, path)
            continue
        for record in records:
            position += 1
            yield _outcome(path, position, _dump(record), record, adapter, enrichment)


def _line_outcomes(
    path: Path, adapter: Adapter, enrichment: Enrichment | None
) -> Iterator[Outcome]:
    with _open(path) as stream:
        for number, line in enumerate(stream, 1):
            if number == 1:
                line = line.removeprefix(_UTF8_BOM)
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            raw = line.decode("utf-8", errors="replace")
            try:
                records = _as_list(adapter.records(decode_json(line)))
            except SchemaError as exc:
                yield Outcome(number, raw, None, exc, path)
                continue
            single = len(records) == 1
            for record in records:
                record_raw = raw if single else _dump(record)
                yield _outcome(path, number, record_raw, record, adapter, enrichment)


def _outcome(
    path: Path,
    line: int,
    raw: str | None,
    record: Any,
    adapter: Adapter,
    enrichment: Enrichment | None,
) -> Outcome:
    try:
        event = adapter.event(record)
        if event is not None and enrichment is not None:
            event = enrichment.apply(event)
    except SchemaError as exc:
        return Outcome(line, raw, None, exc, path)
    except Exception as exc:
        error = SchemaError("adapter_error", f"{adapter.name} failed: {type(exc).__name__}: {exc}")
        return Outcome(line, raw, None, error, path)
    return Outcome(line, raw, event, None, path)


def _as_list(records: Iterable[Any]) -> list[Any]:
    return records if isinstance(records, list) else list(records)


def _dump(record: Any) -> str | None:
    try:
        return orjson.dumps(record).decode()
    except (TypeError, orjson.JSONEncodeError):
        return None
