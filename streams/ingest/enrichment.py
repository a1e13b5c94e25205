"""Enrichment: filling groups, sensitivity and principal type from a mapping file.

Logs rarely say how sensitive a resource is or which team a principal belongs to; a small
YAML (or JSON) file does::

    resources:            # exact id, or a prefix ending in '*'; the longest match wins
      - {match: "s3://hr-private/*", group: hr, sensitivity: restricted}
    principals:
      - {match: "arn:aws:iam::123:role/etl*", group: data-platform, type: service}

A rule fills only what the event lacks: ``principal_group`` / ``resource_group`` when they
are None, and ``sensitivity`` / ``principal_type`` when they hold the schema default
(``internal`` / ``human``), because the native format cannot tell an explicit default from
an absent field and adapters never know sensitivity. ``override: true`` on a rule makes it
replace whatever the event carries. An exact match beats any prefix; among prefixes the
longest wins; ``"*"`` alone is a catch-all.

Enrichment changes features (sensitivity, peer groups), so a model records the mapping it
was trained with as a fingerprint of its rules (``describe``), and ``check_model`` refuses
to score with another mapping, or with one where the model had none (or the reverse).
The fingerprint hashes the parsed rules, so the same mapping in YAML or JSON, in any rule
order, has one fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import yaml

from reachwatch.models.errors import ConfigError
from reachwatch.models.records import (
    MAX_FIELD_LENGTH,
    MAX_ID_LENGTH,
    PRINCIPAL_TYPES,
    SENSITIVITIES,
    AccessEvent,
)

DEFAULT_SENSITIVITY = "internal"
DEFAULT_PRINCIPAL_TYPE = "human"
# Where a model's metadata records the mapping it was trained with.
METADATA_KEY = "enrichment"


@dataclass(frozen=True, slots=True)
class ResourceRule:
    match: str
    group: str | None = None
    sensitivity: str | None = None
    override: bool = False


@dataclass(frozen=True, slots=True)
class PrincipalRule:
    match: str
    group: str | None = None
    type: str | None = None
    override: bool = False


Rule = TypeVar("Rule", ResourceRule, PrincipalRule)


class _RuleIndex(Generic[Rule]):
    """Exact ids in one dict; prefixes in one dict per length, longest length first.

    A lookup costs one dict probe per distinct prefix length, not one test per rule.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._exact: dict[str, Rule] = {}
        by_length: dict[int, dict[str, Rule]] = {}
        for rule in rules:
            if rule.match.endswith("*"):
                prefix = rule.match[:-1]
                by_length.setdefault(len(prefix), {})[prefix] = rule
            else:
                self._exact[rule.match] = rule
        self._prefixes = sorted(by_length.items(), reverse=True)

    def find(self, key: str) -> Rule | None:
        rule = self._exact.get(key)
        if rule is not None:
            return rule
        for length, prefixes in self._prefixes:
            if length <= len(key):
                rule = prefixes.get(key[:length])
                if rule is not None:
                    return rule
        return None


class Enrichment:
    """Resource and principal rules, applied to events by ``apply``."""

    def __init__(
        self,
        resources: Sequence[ResourceRule] = (),
        principals: Sequence[PrincipalRule] = (),
    ) -> None:
        self.resources = tuple(resources)
        self.principals = tuple(principals)
        self._resources = _RuleIndex(self.resources)
        self._principals = _RuleIndex(self.principals)

    @classmethod
    def from_file(cls, path: str | Path) -> Enrichment:
        """Load a YAML or JSON mapping file; any problem is a one-line ``ConfigError``."""
        path = Path(path)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read mapping file: {exc.strerror}") from None
        try:
            if path.suffix.lower() == ".json":
                document = orjson.loads(text)
            else:
                document = yaml.safe_load(text)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {str(exc).splitlines()[0]}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
        return cls.from_mapping(document, origin=str(path))

    @classmethod
    def from_mapping(cls, document: Any, origin: str = "mapping") -> Enrichment:
        if not isinstance(document, dict):
            raise ConfigError(
                f"{origin}: expected a mapping with 'resources' and/or 'principals', "
                f"got {type(document).__name__}"
            )
        unknown = set(document) - {"resources", "principals"}
        if unknown:
            raise ConfigError(
                f"{origin}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
                "expected 'resources' and/or 'principals'"
            )
        resources = [
            ResourceRule(**fields)
            for fields in _rules(document, "resources", "sensitivity", SENSITIVITIES, origin)
        ]
        principals = [
            PrincipalRule(**fields)
            for fields in _rules(document, "principals", "type", PRINCIPAL_TYPES, origin)
        ]
        return cls(resources, principals)

    @property
    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the rules, whatever the file's format or order."""
        rules = {
            "resources": sorted(dataclasses.astuple(rule) for rule in self.resources),
            "principals": sorted(dataclasses.astuple(rule) for rule in self.principals),
        }
        canonical = orjson.dumps(rules, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """What a model trained with this mapping stores in its metadata."""
        return {
            "fingerprint": self.fingerprint,
            "resource_rules": len(self.resources),
            "principal_rules": len(self.principals),
        }

    def apply(self, event: AccessEvent) -> AccessEvent:
        """The event with gaps filled from the longest matching rules (same object if none)."""
        changes: dict[str, str] = {}
        resource_rule = self._resources.find(event.resource)
        if resource_rule is not None:
            force = resource_rule.override
            if resource_rule.group is not None and (force or event.resource_group is None):
                changes["resource_group"] = resource_rule.group
            if resource_rule.sensitivity is not None and (
                force or event.sensitivity == DEFAULT_SENSITIVITY
            ):
                changes["sensitivity"] = resource_rule.sensitivity
        principal_rule = self._principals.find(event.principal)
        if principal_rule is not None:
            force = principal_rule.override
            if principal_rule.group is not None and (force or event.principal_group is None):
                changes["principal_group"] = principal_rule.group
            if principal_rule.type is not None and (
                force or event.principal_type == DEFAULT_PRINCIPAL_TYPE
            ):
                changes["principal_type"] = principal_rule.type
        if not changes:
            return event
        return dataclasses.replace(event, **changes)


def check_model(metadata: dict[str, Any], enrichment: Enrichment | None) -> None:
    """``ConfigError`` when events would not be enriched the way the model was trained."""
    trained = metadata.get(METADATA_KEY)
    version = metadata.get("version", "?")
    if trained is None and enrichment is None:
        return
    if trained is None:
        raise ConfigError(
            f"model {version} was trained without enrichment; drop --enrich or retrain with it"
        )
    if enrichment is None:
        raise ConfigError(
            f"model {version} was trained with enrichment (mapping {trained.get('fingerprint')}); "
            "pass --enrich with that mapping"
        )
    if trained.get("fingerprint") != enrichment.fingerprint:
        raise ConfigError(
            f"model {version} was trained with enrichment mapping {trained.get('fingerprint')}, "
            f"this mapping is {enrichment.fingerprint}"
        )


def _rules(
    document: Mapping[str, Any],
    section: str,
    choice_field: str,
    choices: tuple[str, ...],
    origin: str,
) -> list[dict[str, Any]]:
    entries = document.get(section)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(f"{origin}: {section} must be a list, got {type(entries).__name__}")
    allowed = {"match", "group", choice_field, "override"}
    seen: set[str] = set()
    rules = []
    for index, entry in enumerate(entries):
        where = f"{origin}: {section}[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(entry).__name__}")
        unknown = set(entry) - allowed
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        match = _text(entry, "match", where, MAX_ID_LENGTH)
        if match is None:
            raise ConfigError(f"{where}: 'match' is required")
        if "*" in match[:-1]:
            raise ConfigError(f"{where}: '*' is only allowed at the end of match {match!r}")
        if match in seen:
            raise ConfigError(f"{where}: duplicate match {match!r}")
        seen.add(match)
        group = _text(entry, "group", where, MAX_FIELD_LENGTH)
        choice = _text(entry, choice_field, where, MAX_FIELD_LENGTH)
        if choice is not None:
            choice = choice.lower()
            if choice not in choices:
                raise ConfigError(
                    f"{where}: {choice_field} must be one of {'|'.join(choices)}, got {choice!r}"
                )
        if group is None and choice is None:
            raise ConfigError(f"{where}: a rule needs 'group' or '{choice_field}'")
        override = entry.get("override", False)
        if not isinstance(override, bool):
            raise ConfigError(f"{where}: override must be true or false, got {override!r}")
        rules.append({"match": match, "group": group, choice_field: choice, "override": override})
    return rules


def _text(entry: Mapping[str, Any], field: str, where: str, limit: int) -> str | None:
    value = entry.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {field} must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise ConfigError(f"{where}: {field} is empty")
    if len(value) > limit:
        raise ConfigError(f"{where}: {field} is longer than {limit} characters")
    if not value.isprintable():
        raise ConfigError(f"{where}: {field} contains control characters")
    return value
