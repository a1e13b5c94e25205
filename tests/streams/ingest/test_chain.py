"""The ingest chain: one path from a record to a scored event, for files and messages alike."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from reachwatch.models.errors import ConfigError
from reachwatch.models.records import Limits
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain, build_chain
from reachwatch.streams.ingest.enrichment import Enrichment, ResourceRule
from reachwatch.streams.ingest.files import read_files
from reachwatch.streams.ingest.messages import read_message
from reachwatch.streams.ingest.pseudonyms import Pseudonymizer

KEY = b"0123456789abcdef0123456789abcdef"
RECORD = {"ts": 1_772_409_600, "principal": "ana", "resource": "hr/x"}
MAPPING = (
    "resources:\n  - match: hr/*\n    group: hr\n    sensitivity: restricted\n"
    "principals:\n  - match: ana\n    group: finance\n"
)


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(MAPPING)
    return path


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "pseudonym.key"
    path.write_bytes(KEY)
    return path


def test_enrichment_sees_raw_names_before_they_are_replaced(mapping: Path, key: Path) -> None:
    chain = build_chain(enrich=mapping, pseudonym_key_file=key, pseudonymize="resources")
    event = chain.event(RECORD)
    names = Pseudonymizer(KEY, resources=True)
    assert event is not None
    assert (event.principal, event.resource) == (names.principal("ana"), names.resource("hr/x"))
    assert (event.principal_group, event.sensitivity) == ("finance", "restricted")


def test_a_file_line_and_a_kafka_message_give_the_same_event(
    mapping: Path, key: Path, tmp_path: Path
) -> None:
    chain = build_chain("native", enrich=mapping, pseudonym_key_file=key)
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(RECORD) + b"\n")
    [from_file] = [o.event for o in read_files([path], chain)]
    [from_message] = read_message(orjson.dumps(RECORD), chain).events
    assert from_file == from_message
    assert from_file is not None and from_file.principal.startswith("p_")


def test_field_limits_reach_the_adapter_and_keep_their_one_line_reason(tmp_path: Path) -> None:
    chain = Chain(get_adapter("native"), limits=Limits(max_id_length=3))
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(RECORD) + b"\n")
    [outcome] = list(read_files([path], chain))
    rejected = read_message(orjson.dumps(RECORD), chain).rejected
    assert outcome.error is not None and rejected is not None
    reason = ("too_large", "resource is 4 characters, limit 3")
    assert (outcome.error.code, outcome.error.detail) == reason
    assert (rejected.code, rejected.detail) == (outcome.error.code, outcome.error.detail)


def test_pseudonymize_without_a_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs a pseudonym key"):
        build_chain(pseudonymize="principals")


def test_the_model_records_the_chain_without_the_key(mapping: Path, key: Path) -> None:
    chain = build_chain(enrich=mapping, pseudonym_key_file=key)
    described = orjson.dumps(chain.describe())
    assert KEY not in described
    assert chain.describe()["pseudonymization"]["key_id"] == Pseudonymizer(KEY).fingerprint
    fingerprint = Enrichment.from_file(mapping).fingerprint
    assert chain.describe()["enrichment"]["fingerprint"] == fingerprint


def test_a_model_refuses_a_chain_it_was_not_trained_through(mapping: Path, key: Path,
                                                          tmp_path: Path) -> None:
    trained = build_chain(enrich=mapping, pseudonym_key_file=key)
    metadata = {"version": "v1", **trained.describe()}
    trained.check_model(metadata)
    build_chain(enrich=mapping, pseudonym_key_file=key).check_model(metadata)  # same files
    other_mapping = tmp_path / "other.yaml"
    other_mapping.write_text(MAPPING.replace("finance", "sales"))
    for chain, reason in (
        (build_chain(pseudonym_key_file=key), "trained with enrichment"),
        (build_chain(enrich=mapping), "trained on pseudonyms"),
        (build_chain(enrich=other_mapping, pseudonym_key_file=key), "enrichment mapping"),
    ):
        with pytest.raises(ConfigError, match=reason):
            chain.check_model(metadata)
    with pytest.raises(ConfigError, match="trained without enrichment"):
        build_chain(enrich=mapping).check_model({"version": "raw"})


def test_the_mapping_fingerprint_ignores_file_format_and_rule_order(tmp_path: Path) -> None:
    rules = [{"match": "hr/*", "group": "hr"}, {"match": "fin/*", "sensitivity": "restricted"}]
    as_json = tmp_path / "map.json"
    as_json.write_bytes(orjson.dumps({"resources": rules[::-1]}))
    as_yaml = tmp_path / "map.yaml"
    as_yaml.write_text(
        "resources:\n  - {match: 'hr/*', group: hr}\n"
        "  - {match: 'fin/*', sensitivity: restricted}\n"
    )
    assert Enrichment.from_file(as_json).fingerprint == Enrichment.from_file(as_yaml).fingerprint
    changed = Enrichment([ResourceRule("hr/*", group="hr", sensitivity="restricted")])
    assert changed.fingerprint != Enrichment.from_file(as_yaml).fingerprint
