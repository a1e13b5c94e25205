"""Pseudonyms: keyed HMAC stand-ins for principals (and optionally resources).

reachwatch reads who-accessed-what about every employee. With pseudonymisation on, an
event's principal (and, with ``resources=True``, its resource) is replaced by
``p_`` / ``r_`` + 20 base32 characters of HMAC-SHA256(key, kind + id) *before* any state,
model or alert sees it, so windows, model artifacts and alerts hold only pseudonyms. Peer
groups are kept: they are what a principal is compared with, not who it is.

The same key always gives the same pseudonym, so baselines survive restarts and a model
trained on pseudonymised history scores pseudonymised events. 100 bits of HMAC make a
collision between two ids of one organisation negligible (birthday bound ~2**50 ids).
Without the key nobody can map a pseudonym back, not even by hashing a directory
export; with it, ``ingest.reveal`` recomputes pseudonyms over a list of candidate ids and
logs that it did (who, when, which pseudonym, found or not; never the identity itself).

The key lives in a file outside the repository (``reachwatch pseudonymize-key new FILE``
writes one with mode 0600). A text key file loses its trailing newline; a key shorter than
32 bytes is refused, as is a pseudonym whose key fingerprint does not match the model's.

>>> names = Pseudonymizer(b"k" * 32)
>>> names.principal("ana"), names.principal("ana") == names.principal("ana")
('p_ewkvbe2z6b7sfoog7rv7', True)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from reachwatch.models.errors import ConfigError
from reachwatch.models.records import AccessEvent

MIN_KEY_BYTES = 32
NEW_KEY_BYTES = 32
PSEUDONYM_CHARS = 20  # base32 characters: 100 bits of the HMAC
PRINCIPAL_PREFIX = "p_"
RESOURCE_PREFIX = "r_"
PSEUDONYM_PATTERN = re.compile(rf"^(p|r)_[a-z2-7]{{{PSEUDONYM_CHARS}}}$")
# What a pseudonymised model records about its key: enough to refuse the wrong key,
# nothing that helps recover it.
METADATA_KEY = "pseudonymization"
# What a key replaces: principals only, or principals and resources.
PSEUDONYMIZE_MODES = ("principals", "resources")


def load_key(path: Path) -> bytes:
    """The key in ``path``; ``ConfigError`` (one line) when unreadable or too short."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read pseudonym key {path}: {exc.strerror or exc}") from None
    text = raw.rstrip(b"\r\n")
    # A text key (the hex `new` writes, a secret pasted into a file) ends with a newline
    # that is not key material; a binary key is used byte for byte.
    key = text if text.isascii() and text.decode("ascii").isprintable() else raw
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"pseudonym key {path} is {len(key)} bytes, at least {MIN_KEY_BYTES} needed "
            "(make one with `reachwatch pseudonymize-key new FILE`)"
        )
    return key


def new_key(path: Path) -> str:
    """Write a fresh random key (64 hex digits) to a new file, mode 0600; its fingerprint.

    Refuses to overwrite: replacing a key silently changes every pseudonym.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(NEW_KEY_BYTES).encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists; refusing to replace a pseudonym key") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # whatever the umask
        handle.write(key + b"\n")
    return Pseudonymizer(key).fingerprint


class Pseudonymizer:
    """Replaces principals (always) and resources (optionally) by keyed pseudonyms."""

    def __init__(self, key: bytes, *, resources: bool = False) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"pseudonym key is {len(key)} bytes, at least {MIN_KEY_BYTES} needed")
        self._key = key
        self.resources = resources
        self.fingerprint = hmac.new(key, b"reachwatch key fingerprint", "sha256").hexdigest()[:16]
        # Ids repeat millions of times in a log; the cache is bounded like the vocabulary.
        self._cache: dict[tuple[str, str], str] = {}

    @classmethod
    def from_key_file(cls, path: Path, *, resources: bool = False) -> Pseudonymizer:
        return cls(load_key(path), resources=resources)

    def _pseudonym(self, prefix: str, identity: str) -> str:
        cached = self._cache.get((prefix, identity))
        if cached is not None:
            return cached
        # The prefix is part of the message: the same string as principal and as resource
        # gets unrelated pseudonyms.
        digest = hmac.new(self._key, f"{prefix}{identity}".encode(), hashlib.sha256).digest()
        pseudonym = prefix + base64.b32encode(digest).decode("ascii")[:PSEUDONYM_CHARS].lower()
        if len(self._cache) >= 1_000_000:
            self._cache.clear()
        self._cache[(prefix, identity)] = pseudonym
        return pseudonym

    def principal(self, identity: str) -> str:
        return self._pseudonym(PRINCIPAL_PREFIX, identity)

    def resource(self, identity: str) -> str:
        return self._pseudonym(RESOURCE_PREFIX, identity)

    def apply(self, event: AccessEvent) -> AccessEvent:
        """The event with its identities replaced (groups, times and counts kept)."""
        resource = self.resource(event.resource) if self.resources else event.resource
        return replace(event, principal=self.principal(event.principal), resource=resource)

    def describe(self) -> dict[str, Any]:
        """What a model trained through this pseudonymizer stores in its metadata."""
        return {"principals": True, "resources": self.resources, "key_id": self.fingerprint}


def check_model(metadata: dict[str, Any], pseudonymizer: Pseudonymizer | None) -> None:
    """``ConfigError`` when events would not be pseudonymised the way the model was trained.

    A pseudonymised model needs the same key and mode (or its states and peer profiles
    match nothing, and raw names would reach its alerts). A model trained on raw names
    accepts principal pseudonyms, as features never look at a principal's name, but not
    resource pseudonyms, which its peer profiles would not know.
    """
    trained = metadata.get(METADATA_KEY)
    version = metadata.get("version", "?")
    if trained is None:
        if pseudonymizer is not None and pseudonymizer.resources:
            raise ConfigError(
                f"model {version} was trained on raw resource names; "
                "retrain with --pseudonymize resources to pseudonymise resources"
            )
        return
    if pseudonymizer is None:
        raise ConfigError(
            f"model {version} was trained on pseudonyms (key {trained.get('key_id')}); "
            "pass --pseudonym-key-file with that key"
        )
    if trained.get("key_id") != pseudonymizer.fingerprint:
        raise ConfigError(
            f"model {version} was trained with pseudonym key {trained.get('key_id')}, "
            f"this key is {pseudonymizer.fingerprint}"
        )
    if bool(trained.get("resources")) != pseudonymizer.resources:
        mode = "principals and resources" if trained.get("resources") else "principals only"
        raise ConfigError(f"model {version} was trained pseudonymising {mode}; use the same mode")
