"""Grant events from every adapter: permission changes kept (not reads), refused ones not.

Fixtures ``grants_*.json`` are built from the public schemas (see tests/fixtures/README.md);
the real OTRF CloudTrail captures hold no permission change, and none of their records
may become one.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support import FIXTURES

from reachwatch.models.grants import GRANT_ACTIONS, GrantLog, is_grant
from reachwatch.models.records import parse_timestamp
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.messages import read_message

DATASETS = Path("/work/shared/datasets")
EXFILTRATION = (
    DATASETS
    / "otrf_aws_ec2_proxy_s3_exfiltration"
    / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
)
HONEYBUCKET = DATASETS / "otrf_aws_s3_honeybucket" / "AWS_S3_HoneyBucketLogs.csv"


def mapped(adapter_name: str, fixture: str) -> list:
    adapter = get_adapter(adapter_name)
    document = json.loads((FIXTURES / fixture).read_text())
    return [adapter.event(record) for record in adapter.records(document)]


def test_cloudtrail_bucket_and_object_permission_changes_are_grants():
    events = mapped("cloudtrail", "grants_cloudtrail.json")
    kept = [(e.principal, e.resource, e.action) for e in events if e is not None]
    assert kept == [
        ("arn:aws:iam::111122223333:user/j.doe", "s3://hr-private/", "policy-change"),
        ("arn:aws:iam::111122223333:user/j.doe", "s3://hr-private/", "acl-change"),
        (
            "arn:aws:iam::111122223333:role/ci-deploy",
            "s3://hr-private/reviews/2024.csv",
            "acl-change",
        ),
        ("arn:aws:iam::111122223333:user/j.doe", "s3://hr-private/", "public-access-unblocked"),
    ]
    # The refused PutBucketPolicy and the restricting PutBucketPublicAccessBlock: skipped.
    assert events[4] is None and events[5] is None


def test_m365_group_membership_and_broken_inheritance_are_grants():
    events = {
        e.action: e for e in mapped("m365", "grants_m365.json") if e and e.outcome == "allowed"
    }
    assert set(events) == {"share-organization", "group-add", "inheritance-broken"}
    assert events["group-add"].resource == "https://contoso.sharepoint.com/sites/HR"
    assert events["inheritance-broken"].resource.endswith("/Shared Documents/Reviews")
    assert events["share-organization"].principal == "j.doe@contoso.com"


def test_m365_refused_link_is_not_filed_as_a_cause():
    events = mapped("m365", "grants_m365.json")
    failed = events[3]
    log = GrantLog()
    log.add_events([e for e in events if e is not None])
    assert failed is not None and failed.outcome == "denied"
    assert log.cause_for(failed.resource, before=failed.ts + 1) is None


def test_ocsf_iam_permission_changes_are_grants():
    events = mapped("ocsf", "grants_ocsf.json")
    kept = [(e.principal, e.resource, e.action) if e else None for e in events]
    assert kept == [
        ("j.doe@example.com", "s3://hr-private/", "grant"),
        ("admin-7", "grp-hr-readers", "group-add"),
        (
            "arn:aws:iam::111122223333:user/j.doe",
            "arn:aws:iam::111122223333:policy/HRReadAll",
            "policy-change",
        ),
        ("j.doe@example.com", "docs://hr/performance-tracking", "acl-change"),
        None,  # an entity update that is not about access
        None,  # refused
    ]
    assert events[0].principal_group == "hr"


def test_native_grant_and_share_actions_are_grants():
    chain = Chain(get_adapter("native"))
    for action in ("grant", "share"):
        intake = read_message(
            json.dumps(
                {"ts": 1726329480, "principal": "j.doe", "resource": "hr/x", "action": action}
            ).encode(),
            chain,
        )
        assert intake.events and is_grant(intake.events[0])


def test_a_bucket_grant_is_the_cause_for_its_objects():
    log = GrantLog()
    log.add_events([e for e in mapped("cloudtrail", "grants_cloudtrail.json") if e is not None])
    widened = parse_timestamp("2024-09-14T16:10:00Z")
    cause = log.cause_for("s3://hr-private/pay/2024.csv", before=widened)
    assert (cause["by"], cause["action"]) == (
        "arn:aws:iam::111122223333:user/j.doe",
        "public-access-unblocked",
    )
    assert log.cause_for("s3://hr-private/reviews/2024.csv", before=widened)["action"] == (
        "public-access-unblocked"
    )  # the later bucket change, not the earlier object ACL


@pytest.mark.skipif(not EXFILTRATION.exists(), reason="OTRF dataset not present")
def test_the_real_exfiltration_capture_holds_no_grant():
    adapter = get_adapter("cloudtrail")
    records = [json.loads(line) for line in EXFILTRATION.read_text().splitlines() if line.strip()]
    events = [e for r in records if (e := adapter.event(r)) is not None]
    assert events and not [e for e in events if e.action in GRANT_ACTIONS]


@pytest.mark.skipif(not HONEYBUCKET.exists(), reason="OTRF dataset not present")
def test_the_real_honeybucket_log_holds_no_grant():
    with HONEYBUCKET.open(newline="") as handle:
        names = {row["Event Name"] for row in csv.DictReader(handle)}
    assert names.isdisjoint(
        {"PutBucketPolicy", "PutBucketAcl", "PutObjectAcl", "DeletePublicAccessBlock"}
    )
