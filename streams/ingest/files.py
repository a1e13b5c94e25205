"""Files: the ingest chain's reader for log files (``reachwatch replay`` and ``train``).

A file is JSONL/NDJSON (one document per line, blank lines ignored), or one whole JSON
document: an array of records, or an object such as CloudTrail's ``{"Records": [...]}``
(also pretty-printed over many lines). gzip is recognised by its magic bytes, whatever
the file is called. JSONL is streamed line by line; a whole-document file is loaded at
once, as JSON arrays cannot be split without parsing them.

Each input record goes through the ``Chain`` (adapter, enrichment, pseudonyms, field
limits) and ends as exactly one ``Outcome``: an event, a skip (a valid record that is not
a data read) or an error. A bad line never stops reading: decoding, adapter and enrichment
failures all become error outcomes, so callers can count and dead-letter them.

Hostile files are bounded too: a line longer than ``max_line_bytes`` is a ``too_large``
outcome read past in chunks (a newline-free multi-gigabyte file never sits in memory),
a whole document over ``max_document_bytes`` is one ``too_large`` outcome, and a
truncated or corrupt gzip file ends in one ``corrupt_file`` outcome after the records
that could be read. ``corrupt_file`` is a file-level reason, so it is not in
``records.REASONS`` (the stream never sees files).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import AccessEvent, decode_json
from reachwatch.streams.ingest.chain import Chain

_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
# A line may be a whole minified CloudTrail file (one {"Records": [...]} per line, often
# megabytes), so the file limit is far above the stream's per-message one.
MAX_LINE_BYTES = 128 * 1024 * 1024
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
FILE_REASONS = ("corrupt_file",)
# What gzip raises on a truncated stream (EOFError), bad header or CRC (BadGzipFile),
# or damaged deflate data (zlib.error).
_UNREADABLE = (EOFError, gzip.BadGzipFile, zlib.error)
_RAW_PREFIX = 256  # bytes of an over-long line kept for the rejects file


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


def read_files(
    paths: Sequence[Path],
    chain: Chain,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
) -> Iterator[Outcome]:
    """Outcomes of every record in ``paths`` through ``chain``, files in the given order."""
    for path in paths:
        path = Path(path)
        try:
            whole = _whole_document(path, chain, max_line_bytes, max_document_bytes)
        except _UNREADABLE as exc:
            yield Outcome(1, None, None, _corrupt(exc), path)
            continue
        if whole is None:
            yield from _line_outcomes(path, chain, max_line_bytes)
        else:
            yield from _document_outcomes(path, whole, chain)


def _corrupt(exc: BaseException) -> SchemaError:
    return SchemaError("corrupt_file", f"cannot decompress: {type(exc).__name__}: {exc}"[:300])


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    return path.open("rb")


@dataclass(frozen=True, slots=True)
class _Line:
    """One line of a file, without its ending; ``content`` is only a prefix when too long."""

    number: int
    content: bytes
    size: int
    too_long: bool


def _lines(stream: IO[bytes], limit: int) -> Iterator[_Line]:
    """Every line of ``stream``, holding at most ``limit`` bytes of any line in memory.

    The rest of an over-long line is read past in 1 MiB chunks, so a newline-free
    multi-gigabyte file costs ``limit`` bytes, not its size.
    """
    number = 0
    while True:
        line = stream.readline(limit + 2)  # + room for a "\r\n" ending
        if not line:
            return
        number += 1
        content = line.rstrip(b"\r\n")
        if len(content) <= limit:
            yield _Line(number, content, len(content), False)
            continue
        size = len(content)
        while not line.endswith(b"\n"):
            line = stream.readline(1 << 20)
            if not line:
                break
            size += len(line.rstrip(b"\r\n"))
        yield _Line(number, content[:_RAW_PREFIX], size, True)


def _whole_document(
    path: Path, chain: Chain, max_line_bytes: int, max_document_bytes: int
) -> Any | SchemaError | None:
    """The file's single JSON document when it is not JSONL, else None.

    A file is one document when its first line starts with '[' or '{' but is not
    complete JSON by itself (a pretty-printed array or object). A broken array is one
    error outcome; a broken would-be object falls back to line mode, where each bad
    line is reported. A first line over ``max_line_bytes`` means line mode too (where
    it becomes a ``too_large`` outcome): pretty-printed documents start with short lines.
    """
    with _open(path) as stream:
        first = b""
        for line in _lines(stream, max_line_bytes):
            if line.too_long:
                return None
            if line.content.strip():
                first = line.content
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
        content = stream.read(max_document_bytes + 1).removeprefix(_UTF8_BOM)
    if len(content) > max_document_bytes:
        return SchemaError(
            "too_large", f"JSON document is over {max_document_bytes} bytes, the limit"
        )
    try:
        return decode_json(content, limits=chain.limits)
    except SchemaError as exc:
        return exc if first.startswith(b"[") else None


def _document_outcomes(path: Path, document: Any, chain: Chain) -> Iterator[Outcome]:
    if isinstance(document, SchemaError):
        yield Outcome(1, None, None, document, path)
        return
    documents = document if isinstance(document, list) else [document]
    position = 0
    for item in documents:
        try:
            records = chain.records(item)
        except SchemaError as exc:
            position += 1
            yield Outcome(position, _dump(item), None, exc, path)
            continue
        for record in records:
            position += 1
            yield _outcome(path, position, _dump(record), record, chain)


def _line_outcomes(path: Path, chain: Chain, max_line_bytes: int) -> Iterator[Outcome]:
    with _open(path) as stream:
        lines = _lines(stream, max_line_bytes)
        number = 0
        while True:
            try:
                line = next(lines, None)
            except _UNREADABLE as exc:
                # Records before the damage were already yielded; the rest is lost.
                yield Outcome(number + 1, None, None, _corrupt(exc), path)
                return
            if line is None:
                return
            number = line.number
            yield from _line_outcome(path, line, chain, max_line_bytes)


def _line_outcome(path: Path, line: _Line, chain: Chain, limit: int) -> Iterator[Outcome]:
    content = line.content.removeprefix(_UTF8_BOM) if line.number == 1 else line.content
    if line.too_long:
        raw = content.decode("utf-8", errors="replace") + "…"
        error = SchemaError("too_large", f"line is {line.size} bytes, limit {limit}")
        yield Outcome(line.number, raw, None, error, path)
        return
    if not content.strip():
        return
    raw = content.decode("utf-8", errors="replace")
    try:
        records = chain.records(decode_json(content, limits=chain.limits))
    except SchemaError as exc:
        yield Outcome(line.number, raw, None, exc, path)
        return
    single = len(records) == 1
    for record in records:
        record_raw = raw if single else _dump(record)
        yield _outcome(path, line.number, record_raw, record, chain)


def _outcome(path: Path, line: int, raw: str | None, record: Any, chain: Chain) -> Outcome:
    try:
        event = chain.event(record)
    except SchemaError as exc:
        return Outcome(line, raw, None, exc, path)
    return Outcome(line, raw, event, None, path)


def _dump(record: Any) -> str | None:
    try:
        return orjson.dumps(record).decode()
    except (TypeError, orjson.JSONEncodeError):
        return None
