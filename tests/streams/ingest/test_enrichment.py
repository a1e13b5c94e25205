"""Enrichment: longest-match rules that fill gaps, overrides, and precise config errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from support import FIXTURES

from reachwatch.models.errors import ConfigError
from reachwatch.models.records import AccessEvent
from reachwatch.streams.ingest.enrichment import Enrichment, PrincipalRule, ResourceRule

MAPPING = FIXTURES / "enrichment.yaml"
ETL = "arn:aws:iam::123456789123:role/etl-loader"


@pytest.fixture(scope="module")
def enrichment() -> Enrichment:
    return Enrichment.from_file(MAPPING)


def read(resource: str, principal: str = "bo@contoso.com", **fields: Any) -> AccessEvent:
    return AccessEvent(ts=1_700_000_000.0, principal=principal, resource=resource, **fields)


def test_prefix_rule_fills_group_and_sensitivity(enrichment: Enrichment) -> None:
    event = enrichment.apply(read("s3://hr-private/2024/salaries.csv"))
    assert (event.resource_group, event.sensitivity) == ("hr", "restricted")


def test_bucket_listing_matches_the_bucket_prefix(enrichment: Enrichment) -> None:
    # The CloudTrail adapter names a bucket "s3://bucket/" so "s3://bucket/*" covers it.
    assert enrichment.apply(read("s3://hr-private/")).sensitivity == "restricted"


def test_longest_prefix_wins_and_rules_do_not_merge(enrichment: Enrichment) -> None:
    event = enrichment.apply(read("s3://hr-private/public/handbook-summary.pdf"))
    assert (event.sensitivity, event.resource_group) == ("public", None)


def test_exact_match_beats_prefixes(enrichment: Enrichment) -> None:
    event = enrichment.apply(read("s3://hr-private/handbook.pdf"))
    assert (event.resource_group, event.sensitivity) == ("hr-docs", "internal")


def test_catch_all_applies_when_nothing_else_matches(enrichment: Enrichment) -> None:
    event = enrichment.apply(read("s3://marketing/banner.png"))
    assert (event.resource_group, event.sensitivity) == ("unmapped", "internal")


def test_fields_the_event_carries_are_kept(enrichment: Enrichment) -> None:
    event = enrichment.apply(
        read("s3://hr-private/a.csv", resource_group="payroll", sensitivity="confidential")
    )
    assert (event.resource_group, event.sensitivity) == ("payroll", "confidential")


def test_override_replaces_what_the_event_carries(enrichment: Enrichment) -> None:
    event = enrichment.apply(
        read("s3://hr-private/handbook.pdf", resource_group="x", sensitivity="restricted")
    )
    assert (event.resource_group, event.sensitivity) == ("hr-docs", "internal")


def test_principal_rules_fill_group_and_type(enrichment: Enrichment) -> None:
    event = enrichment.apply(read("s3://marketing/a", principal=ETL))
    assert (event.principal_group, event.principal_type) == ("data-platform", "service")
    ana = enrichment.apply(read("s3://marketing/a", principal="ana@contoso.com"))
    assert (ana.principal_group, ana.principal_type) == ("hr-analysts", "human")


def test_event_without_any_match_is_returned_unchanged() -> None:
    enrichment = Enrichment([ResourceRule("s3://hr/*", group="hr")])
    event = read("s3://other/a")
    assert enrichment.apply(event) is event


def test_json_mapping_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    path.write_bytes(
        orjson.dumps({"principals": [{"match": "svc-*", "type": "service", "group": "robots"}]})
    )
    enrichment = Enrichment.from_file(path)
    assert enrichment.principals == (PrincipalRule("svc-*", group="robots", type="service"),)
    assert enrichment.apply(read("r", principal="svc-backup")).principal_type == "service"


def test_many_prefixes_of_many_lengths_pick_the_longest() -> None:
    rules = [ResourceRule("s3://data/" + "x" * n + "*", group=f"g{n}") for n in range(50)]
    enrichment = Enrichment(rules)
    assert enrichment.apply(read("s3://data/" + "x" * 30 + "/file")).resource_group == "g30"
    assert enrichment.apply(read("s3://data/" + "x" * 80)).resource_group == "g49"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("resources: [", "not valid YAML at line"),
        ("- just a list", "expected a mapping"),
        ("resource: []", "unknown top-level key(s) resource"),
        ("resources: {match: x}", "resources must be a list"),
        ("resources: [{group: hr}]", "resources[0]: 'match' is required"),
        ("resources: [{match: 'a*b', group: hr}]", "'*' is only allowed at the end"),
        ("resources: [{match: a, group: hr}, {match: a, group: x}]", "resources[1]: duplicate"),
        ("resources: [{match: a, sensitivity: secret}]", "sensitivity must be one of"),
        ("resources: [{match: a, sensitvity: restricted}]", "unknown key(s) sensitvity"),
        ("resources: [{match: a}]", "needs 'group' or 'sensitivity'"),
        ("principals: [{match: a, type: robot}]", "principals[0]: type must be one of"),
        ("principals: [{match: a, group: 7}]", "group must be a string, got int"),
        ("principals: [{match: a, group: g, override: 'yes'}]", "override must be true or false"),
        ("", "expected a mapping"),
    ],
)
def test_invalid_mapping_is_a_one_line_config_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        Enrichment.from_file(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_unreadable_mapping_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read mapping file"):
        Enrichment.from_file(tmp_path / "missing.yaml")
