"""Reveal: mapping a pseudonym back to an id among candidates, audit-logged.

Without the key nobody can map a pseudonym back; with it, ``reveal`` recomputes the
pseudonyms of candidate ids (a directory export, or the ids in an event log) and
``audit_reveal`` appends who looked for which pseudonym, when, and whether it was found;
never the identity itself.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from reachwatch.models.errors import SchemaError
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.files import read_files
from reachwatch.streams.ingest.pseudonyms import PSEUDONYM_CHARS, PSEUDONYM_PATTERN, Pseudonymizer

DEFAULT_AUDIT_LOG = Path("var/reveal-audit.jsonl")


def candidate_ids(path: Path, chain: Chain) -> Iterator[str]:
    """Ids a pseudonym may stand for: one per line, or the principal and resource of each
    event in a log (a file whose first non-blank character is '{' or '[', read through
    ``chain``, which must not pseudonymise; malformed records are passed over)."""
    path = Path(path)
    if _looks_like_json(path):
        for outcome in read_files([path], chain):
            if outcome.event is not None:
                yield outcome.event.principal
                yield outcome.event.resource
        return
    with path.open("rb") as handle:
        for line in handle:
            identity = line.decode("utf-8", errors="replace").strip()
            if identity:
                yield identity


def _looks_like_json(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((b"{", b"[", b"\x1f\x8b"))


def reveal(
    pseudonym: str, pseudonymizer: Pseudonymizer, candidates: Iterable[str]
) -> tuple[str | None, int]:
    """The candidate whose pseudonym is ``pseudonym`` (or None), and how many were tried."""
    if not PSEUDONYM_PATTERN.match(pseudonym):
        raise SchemaError(
            "bad_value",
            f"{pseudonym[:40]!r} is not a pseudonym (p_ or r_ + {PSEUDONYM_CHARS} base32 chars)",
        )
    derive = pseudonymizer.principal if pseudonym.startswith("p_") else pseudonymizer.resource
    tried = 0
    for candidate in candidates:
        tried += 1
        if hmac.compare_digest(derive(candidate), pseudonym):
            return candidate, tried
    return None, tried


def audit_reveal(
    log: Path,
    *,
    who: str,
    pseudonym: str,
    found: bool,
    key_id: str,
    candidates: Path | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Append one audit line for a reveal (never the revealed identity); return it."""
    row: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now)),
        "action": "reveal",
        "who": who,
        "pseudonym": pseudonym,
        "result": "found" if found else "not_found",
        "key_id": key_id,
    }
    if candidates is not None:
        row["candidates"] = str(candidates)
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND: concurrent reveals each add whole lines; 0600: the log says who looked
    # at whom (by pseudonym), which is itself worth protecting.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as handle:
        handle.write(orjson.dumps(row) + b"\n")
    return row
