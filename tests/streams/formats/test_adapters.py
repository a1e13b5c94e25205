"""Adapters: native, OCSF, CloudTrail (incl. the real OTRF captures) and Microsoft 365."""

from __future__ import annotations

import ast
import copy
import csv
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import FIXTURES

from reachwatch.models.errors import ConfigError, SchemaError
from reachwatch.models.records import AccessEvent
from reachwatch.streams.formats.adapters import ADAPTER_NAMES, NativeAdapter, get_adapter

DATASETS = Path("/work/shared/datasets")
EXFILTRATION = (
    DATASETS
    / "otrf_aws_ec2_proxy_s3_exfiltration"
    / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
)
HONEYBUCKET = DATASETS / "otrf_aws_s3_honeybucket" / "AWS_S3_HoneyBucketLogs.csv"

ROLE = "arn:aws:iam::123456789123:role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0"
BUCKET = "s3://mordors3stack-s3bucket-llp2yingx64a/"


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def rejects(adapter_name: str, record: Any) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        get_adapter(adapter_name).event(record)
    return caught.value


# --- registry ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ADAPTER_NAMES)
def test_get_adapter_returns_the_named_adapter(name: str) -> None:
    assert get_adapter(name).name == name
    assert get_adapter(f" {name.upper()} ").name == name


def test_unknown_adapter_is_a_config_error_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        get_adapter("syslog")
    assert "syslog" in str(caught.value)
    assert all(name in str(caught.value) for name in ADAPTER_NAMES)


# --- native --------------------------------------------------------------------------


def test_native_record_is_the_document_and_parses_as_native() -> None:
    adapter = NativeAdapter()
    doc = {"ts": 1_700_000_000, "principal": "ana", "resource": "hr.salaries"}
    assert list(adapter.records(doc)) == [doc]
    event = adapter.event(doc)
    assert event is not None and event.principal == "ana" and event.ts == 1_700_000_000.0


def test_native_bad_record_keeps_the_records_reason() -> None:
    assert rejects("native", {"ts": 1_700_000_000, "principal": "ana"}).code == "missing_field"


# --- CloudTrail: the real OTRF "cloud breach S3" capture -----------------------------


def cloudtrail_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_exfiltration_excerpt_reads_collapse_to_the_stolen_role() -> None:
    adapter = get_adapter("cloudtrail")
    mapped = {
        r["eventName"]: adapter.event(r)
        for r in cloudtrail_lines(FIXTURES / "cloudtrail_s3_exfiltration_excerpt.jsonl")
    }
    for management in ("DescribeInstances", "DescribeVolumes", "AssumeRole"):
        assert mapped[management] is None
    get_object = mapped["GetObject"]
    assert get_object == AccessEvent(
        ts=epoch("2020-09-14T01:02:34"),
        principal=ROLE,
        resource=BUCKET + "ring.txt",
        principal_type="service",
        action="read",
        bytes=89,
        source="1.2.3.4",
    )
    listing = mapped["ListObjects"]
    assert listing is not None
    assert (listing.principal, listing.resource, listing.action) == (ROLE, BUCKET, "list")
    buckets = mapped["ListBuckets"]
    assert buckets is not None
    assert (buckets.resource, buckets.action, buckets.bytes) == ("s3://*", "list", None)


@pytest.mark.skipif(not EXFILTRATION.exists(), reason="OTRF dataset not present")
def test_full_exfiltration_capture_has_only_role_reads_and_skips() -> None:
    adapter = get_adapter("cloudtrail")
    records = cloudtrail_lines(EXFILTRATION)
    reads = {"GetObject", "ListObjects", "ListBuckets"}
    expected = Counter(
        r["eventName"]
        for r in records
        if r["eventSource"] == "s3.amazonaws.com" and r["eventName"] in reads
    )
    events = [e for r in records if (e := adapter.event(r)) is not None]
    assert len(events) == sum(expected.values())
    assert {e.principal for e in events} == {ROLE}
    assert {e.principal_type for e in events} == {"service"}
    assert Counter(e.action for e in events) == {
        "read": expected["GetObject"],
        "list": expected["ListObjects"] + expected["ListBuckets"],
    }
    # The IAM user pedro's console browsing (EC2 Describe*) is all management: skipped.
    assert not any("pedro" in e.principal for e in events)


# --- CloudTrail: the real OTRF honeybucket CSV export ---------------------------------


def honeybucket_records(path: Path) -> list[dict[str, Any]]:
    """The CSV export's rows back in CloudTrail JSON shape (its dicts are Python reprs)."""
    with path.open(newline="") as handle:
        return [
            {
                "eventVersion": "1.08",
                "eventSource": "s3.amazonaws.com",
                "eventType": row["Event Type"],
                "eventName": row["Event Name"],
                "eventTime": row["Event DateTime"],
                "eventID": row["Event ID"],
                "requestID": row["Request ID"],
                "userIdentity": ast.literal_eval(row["User ID"]),
                "requestParameters": ast.literal_eval(row["Request Parameters"]),
                "sourceIPAddress": row["Source IP"],
                "userAgent": row["Request User Agent"],
            }
            for row in csv.DictReader(handle)
        ]


def test_honeybucket_anonymous_listing_is_an_anonymous_read() -> None:
    adapter = get_adapter("cloudtrail")
    events = [
        adapter.event(r) for r in honeybucket_records(FIXTURES / "s3_honeybucket_excerpt.csv")
    ]
    listing, probe, cross_account, put, _ = events
    assert listing == AccessEvent(
        ts=epoch("2022-02-18T17:34:57"),
        principal="aws:anonymous",
        resource="s3://microsoft-devtest/",
        action="list",
        source="177.131.167.145",
    )
    assert probe is not None and (probe.principal, probe.action) == ("aws:anonymous", "metadata")
    assert cross_account is not None
    assert cross_account.principal == "aws-account:385485039111:AIDAIYBE736TYLBM3THMU"
    assert put is None  # a write, not a read


@pytest.mark.skipif(not HONEYBUCKET.exists(), reason="OTRF dataset not present")
def test_full_honeybucket_export_maps_every_row() -> None:
    adapter = get_adapter("cloudtrail")
    records = honeybucket_records(HONEYBUCKET)
    events = [adapter.event(r) for r in records]
    writes = sum(r["eventName"] == "PutObject" for r in records)
    assert sum(e is None for e in events) == writes
    anonymous = sum(r["userIdentity"].get("accountId") == "ANONYMOUS_PRINCIPAL" for r in records)
    assert sum(e is not None and e.principal == "aws:anonymous" for e in events) == anonymous
    assert {e.resource for e in events if e is not None} == {"s3://microsoft-devtest/"}


# --- CloudTrail: identities, outcomes, services, envelopes ----------------------------


def trail(name: str = "GetObject", source: str = "s3.amazonaws.com", **extra: Any) -> dict:
    record: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventTime": "2024-03-01T10:00:00Z",
        "eventSource": source,
        "eventName": name,
        "sourceIPAddress": "198.51.100.20",
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::111122223333:user/ana",
            "userName": "ana",
            "accountId": "111122223333",
        },
        "requestParameters": {"bucketName": "hr-private", "key": "2024/salaries.csv"},
    }
    record.update(extra)
    return record


def assumed(role: str, session: str, issuer: str | None = None) -> dict[str, Any]:
    identity: dict[str, Any] = {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::111122223333:assumed-role/{role}/{session}",
        "accountId": "111122223333",
    }
    if issuer is not None:
        identity["sessionContext"] = {"sessionIssuer": {"type": "Role", "arn": issuer}}
    return identity


def one(record: dict[str, Any]) -> AccessEvent:
    event = get_adapter("cloudtrail").event(record)
    assert event is not None
    return event


def test_iam_user_read_of_an_object() -> None:
    event = one(trail())
    assert (event.principal, event.principal_type) == (
        "arn:aws:iam::111122223333:user/ana",
        "human",
    )
    assert (event.resource, event.action, event.outcome) == (
        "s3://hr-private/2024/salaries.csv",
        "read",
        "allowed",
    )


def test_machine_session_collapses_to_the_role() -> None:
    event = one(trail(userIdentity=assumed("etl-loader", "i-0abc123")))
    assert event.principal == "arn:aws:iam::111122223333:role/etl-loader"
    assert event.principal_type == "service"


def test_role_path_comes_from_the_session_issuer() -> None:
    issuer = "arn:aws:iam::111122223333:role/pipelines/etl-loader"
    event = one(trail(userIdentity=assumed("etl-loader", "job-77", issuer)))
    assert event.principal == issuer


@pytest.mark.parametrize(
    ("role", "session"),
    [("AWSReservedSSO_DataAnalyst_0123456789abcdef", "ana"), ("okta-analyst", "ana@example.com")],
)
def test_human_sessions_stay_whole(role: str, session: str) -> None:
    event = one(trail(userIdentity=assumed(role, session)))
    assert event.principal == f"arn:aws:sts::111122223333:assumed-role/{role}/{session}"
    assert event.principal_type == "human"


def test_root_and_aws_service_identities() -> None:
    root = one(trail(userIdentity={"type": "Root", "accountId": "111122223333"}))
    assert (root.principal, root.principal_type) == ("arn:aws:iam::111122223333:root", "human")
    service = one(trail(userIdentity={"type": "AWSService", "invokedBy": "athena.amazonaws.com"}))
    assert (service.principal, service.principal_type) == (
        "aws-service:athena.amazonaws.com",
        "service",
    )


@pytest.mark.parametrize(
    "code", ["AccessDenied", "AllAccessDisabled", "Client.UnauthorizedOperation"]
)
def test_access_errors_are_denied_reads(code: str) -> None:
    assert one(trail(errorCode=code, errorMessage="Access Denied")).outcome == "denied"


def test_other_errors_are_skipped() -> None:
    assert get_adapter("cloudtrail").event(trail(errorCode="NoSuchKey")) is None


def test_write_and_management_calls_are_skipped() -> None:
    adapter = get_adapter("cloudtrail")
    assert adapter.event(trail("PutObject")) is None
    assert adapter.event(trail("DeleteObject")) is None
    assert adapter.event(trail("DescribeInstances", "ec2.amazonaws.com")) is None


def test_event_time_wins_over_logstash_timestamp() -> None:
    event = one(trail(**{"@timestamp": "2030-01-01T00:00:00Z"}))
    assert event.ts == epoch("2024-03-01T10:00:00")


def test_bucket_and_key_from_resources_when_request_parameters_are_missing() -> None:
    resources = [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::hr-private/a/b.csv"}]
    event = one(trail(requestParameters=None, resources=resources))
    assert event.resource == "s3://hr-private/a/b.csv"


def test_dynamodb_athena_and_rds_data_reads() -> None:
    table = "arn:aws:dynamodb:eu-west-1:111122223333:table/customers"
    dynamo = one(
        trail(
            "Query",
            "dynamodb.amazonaws.com",
            requestParameters={"tableName": "customers"},
            resources=[{"type": "AWS::DynamoDB::Table", "ARN": table}],
        )
    )
    assert (dynamo.resource, dynamo.action) == (table, "query")
    athena = one(
        trail(
            "StartQueryExecution",
            "athena.amazonaws.com",
            requestParameters={
                "queryString": "SELECT * FROM payroll",
                "queryExecutionContext": {"database": "hr"},
            },
        )
    )
    assert (athena.resource, athena.action) == ("athena:AwsDataCatalog/hr", "query")
    cluster = "arn:aws:rds:eu-west-1:111122223333:cluster:finance"
    rds = one(
        trail(
            "ExecuteStatement",
            "rds-data.amazonaws.com",
            requestParameters={"resourceArn": cluster, "database": "ledger", "sql": "select 1"},
        )
    )
    assert rds.resource == f"{cluster}/ledger"


def test_sql_writes_are_skipped() -> None:
    record = trail(
        "StartQueryExecution",
        "athena.amazonaws.com",
        requestParameters={
            "queryString": "INSERT INTO t VALUES (1)",
            "queryExecutionContext": {"database": "hr"},
        },
    )
    assert get_adapter("cloudtrail").event(record) is None


def test_records_envelope_is_split() -> None:
    adapter = get_adapter("cloudtrail")
    assert list(adapter.records({"Records": [trail(), trail("PutObject")]})) == [
        trail(),
        trail("PutObject"),
    ]
    assert list(adapter.records(trail())) == [trail()]


@pytest.mark.parametrize(
    ("record", "code", "mentions"),
    [
        ({"Records": "oops"}, "adapter_error", "Records"),
        (trail(eventTime=None), "missing_field", "eventTime"),
        (trail(eventName=None), "missing_field", "eventName"),
        (trail(userIdentity=None), "missing_field", "userIdentity"),
        (trail(requestParameters={"bucketName": "hr-private"}), "adapter_error", "key"),
        (trail(eventTime="2024-03-01T10:00:00"), "bad_timestamp", "eventTime"),
        (trail(userIdentity={"type": "IAMUser", "arn": 7}), "wrong_type", "userIdentity.arn"),
        (trail(sourceIPAddress="1.2.3.4\x00"), "bad_value", "sourceIPAddress"),
        (
            trail(additionalEventData={"bytesTransferredOut": -5.0}),
            "negative_count",
            "bytesTransferredOut",
        ),
    ],
)
def test_malformed_cloudtrail_records_say_why(record: dict, code: str, mentions: str) -> None:
    adapter = get_adapter("cloudtrail")
    with pytest.raises(SchemaError) as caught:
        for item in adapter.records(record):
            adapter.event(item)
    assert caught.value.code == code
    assert mentions in caught.value.detail


# --- OCSF ----------------------------------------------------------------------------


def ocsf_case(uid: str) -> dict[str, Any]:
    events = json.loads((FIXTURES / "ocsf_events.json").read_text())
    return copy.deepcopy(next(e for e in events if e["metadata"]["uid"] == uid))


OCSF_T = 1_726_300_000.0


@pytest.mark.parametrize(
    ("uid", "expected"),
    [
        (
            "datastore-read-bucket-file",
            AccessEvent(
                ts=OCSF_T,
                principal="arn:aws:iam::111122223333:user/ana",
                resource="hr-private/2024/salaries.csv",
                principal_group="analysts",
                action="read",
                source="203.0.113.10",
            ),
        ),
        (
            "datastore-query-table",
            AccessEvent(
                ts=OCSF_T + 1,
                principal="etl-runner",
                resource="finance/ledger",
                principal_type="service",
                action="query",
                bytes=20480,
                source="203.0.113.10",
            ),
        ),
        (
            "api-read-secret",
            AccessEvent(
                ts=OCSF_T + 5,
                principal="ana@example.com",
                resource="arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-pass",
                action="read",
                source="203.0.113.10",
            ),
        ),
        (
            "file-hosting-download",
            AccessEvent(
                ts=OCSF_T + 8,
                principal="bo@example.com",
                resource="/sites/strategy/Shared Documents/plan.docx",
                principal_group="Strategy",
                action="download",
                bytes=48213,
                source="203.0.113.10",
            ),
        ),
        (
            "file-system-read",
            AccessEvent(
                ts=OCSF_T + 11,
                principal="SYSTEM",
                resource="/srv/exports/customers.parquet",
                principal_type="service",
                action="read",
                source="203.0.113.10",
            ),
        ),
    ],
)
def test_ocsf_reads_map_every_field(uid: str, expected: AccessEvent) -> None:
    assert get_adapter("ocsf").event(ocsf_case(uid)) == expected


def test_ocsf_failure_is_denied_and_bucket_uid_preferred() -> None:
    event = get_adapter("ocsf").event(ocsf_case("datastore-read-denied"))
    assert event is not None
    assert (event.outcome, event.resource) == ("denied", "arn:aws:s3:::payroll")


def test_ocsf_other_activity_falls_back_to_its_name() -> None:
    event = get_adapter("ocsf").event(ocsf_case("datastore-other-activity-named-list"))
    assert event is not None and (event.action, event.resource) == ("list", "db-7f3a")


def test_ocsf_share_is_kept_as_share() -> None:
    event = get_adapter("ocsf").event(ocsf_case("file-hosting-share"))
    assert event is not None and event.action == "share"


@pytest.mark.parametrize(
    "uid",
    [
        "datastore-write-skipped",
        "api-read-without-resources-skipped",
        "api-create-skipped",
        "file-hosting-upload-skipped",
        "file-system-delete-skipped",
        "authentication-skipped",
    ],
)
def test_ocsf_non_reads_are_skipped(uid: str) -> None:
    assert get_adapter("ocsf").event(ocsf_case(uid)) is None


def test_ocsf_class_and_activity_from_type_uid_alone() -> None:
    record = ocsf_case("datastore-query-table")
    del record["class_uid"], record["activity_id"], record["activity_name"]
    event = get_adapter("ocsf").event(record)
    assert event is not None and event.action == "query"


def test_ocsf_time_dt_when_time_is_absent() -> None:
    record = ocsf_case("datastore-read-bucket-file")
    del record["time"]
    record["time_dt"] = "2024-09-14T07:46:40Z"
    event = get_adapter("ocsf").event(record)
    assert event is not None and event.ts == OCSF_T


@pytest.mark.parametrize(
    ("change", "code", "mentions"),
    [
        ({"time": None}, "missing_field", "time"),
        ({"class_uid": None, "type_uid": None}, "missing_field", "class_uid"),
        ({"class_uid": "6005"}, "wrong_type", "class_uid"),
        ({"actor": {}}, "missing_field", "actor.user"),
        ({"actor": {"user": {"uid": 17}}}, "wrong_type", "actor.user.uid"),
        ({"databucket": None}, "missing_field", "databucket"),
        ({"time": 10}, "bad_timestamp", "time"),
        ({"query_info": {"bytes_out": -1}}, "negative_count", "query_info.bytes_out"),
    ],
)
def test_malformed_ocsf_events_say_why(change: dict[str, Any], code: str, mentions: str) -> None:
    record = ocsf_case("datastore-read-bucket-file")
    record.update(change)
    error = rejects("ocsf", record)
    assert error.code == code
    assert mentions in error.detail


# --- Microsoft 365 -------------------------------------------------------------------


def m365_case(record_id: str) -> dict[str, Any]:
    records = json.loads((FIXTURES / "m365_audit.json").read_text())
    return copy.deepcopy(next(r for r in records if r["Id"] == record_id))


HR_FILE = "https://contoso.sharepoint.com/sites/HR/Shared Documents/Salaries 2024.xlsx"
HR_SITE = "https://contoso.sharepoint.com/sites/HR"


def test_m365_file_accessed_maps_every_field() -> None:
    assert get_adapter("m365").event(m365_case("file-accessed")) == AccessEvent(
        ts=epoch("2024-09-14T08:00:00"),  # CreationTime has no zone: UTC by the API's docs
        principal="ana@contoso.com",
        resource=HR_FILE,
        resource_group=HR_SITE,
        action="read",
        source="198.51.100.7",
    )


@pytest.mark.parametrize(
    ("record_id", "action"),
    [
        ("file-downloaded-onedrive", "download"),
        ("file-previewed", "preview"),
        ("file-sync-downloaded", "sync"),
        ("anonymous-link-created", "share-anonymous"),
        ("sharing-set", "share"),
    ],
)
def test_m365_operations_map_to_actions(record_id: str, action: str) -> None:
    event = get_adapter("m365").event(m365_case(record_id))
    assert event is not None and event.action == action


@pytest.mark.parametrize("record_id", ["app-at-sharepoint", "service-principal"])
def test_m365_system_accounts_and_service_principals_are_services(record_id: str) -> None:
    event = get_adapter("m365").event(m365_case(record_id))
    assert event is not None and event.principal_type == "service"


def test_m365_failed_operation_is_denied() -> None:
    event = get_adapter("m365").event(m365_case("failed-download"))
    assert event is not None and event.outcome == "denied"


def test_m365_resource_built_from_site_folder_and_name_without_object_id() -> None:
    event = get_adapter("m365").event(m365_case("no-object-id"))
    assert event is not None and event.resource == HR_FILE


@pytest.mark.parametrize("record_id", ["file-modified-skipped", "exchange-skipped"])
def test_m365_writes_and_other_workloads_are_skipped(record_id: str) -> None:
    assert get_adapter("m365").event(m365_case(record_id)) is None


def test_m365_zoned_creation_time_is_respected() -> None:
    record = m365_case("file-accessed")
    record["CreationTime"] = "2024-09-14T10:00:00+02:00"
    event = get_adapter("m365").event(record)
    assert event is not None and event.ts == epoch("2024-09-14T08:00:00")


def test_m365_array_is_split_into_records() -> None:
    records = json.loads((FIXTURES / "m365_audit.json").read_text())
    assert list(get_adapter("m365").records(records)) == records


@pytest.mark.parametrize(
    ("change", "code", "mentions"),
    [
        ({"UserId": None}, "missing_field", "UserId"),
        ({"Operation": None}, "missing_field", "Operation"),
        ({"CreationTime": "14/09/2024"}, "bad_timestamp", "CreationTime"),
        ({"CreationTime": None}, "missing_field", "CreationTime"),
        ({"ObjectId": None, "SiteUrl": None}, "missing_field", "ObjectId"),
        ({"ClientIP": 12}, "wrong_type", "ClientIP"),
        ({"UserId": "x" * 2000}, "too_large", "UserId"),
    ],
)
def test_malformed_m365_records_say_why(change: dict[str, Any], code: str, mentions: str) -> None:
    record = m365_case("file-accessed")
    record.update(change)
    error = rejects("m365", record)
    assert error.code == code
    assert mentions in error.detail


# --- robustness: any JSON value gives an event, None or a SchemaError -----------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _seed_records() -> dict[str, list[dict[str, Any]]]:
    return {
        "cloudtrail": cloudtrail_lines(FIXTURES / "cloudtrail_s3_exfiltration_excerpt.jsonl"),
        "ocsf": json.loads((FIXTURES / "ocsf_events.json").read_text()),
        "m365": json.loads((FIXTURES / "m365_audit.json").read_text()),
        "native": [{"ts": 1_700_000_000, "principal": "ana", "resource": "r", "bytes": 5}],
    }


SEEDS = _seed_records()


def _mutate(record: Any, path: list[int], value: Any) -> Any:
    """Replace the value found by walking ``path`` (indices into keys) with ``value``."""
    if not path or not isinstance(record, dict) or not record:
        return value
    key = sorted(record)[path[0] % len(record)]
    mutated = dict(record)
    mutated[key] = _mutate(record[key], path[1:], value)
    return mutated


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(ADAPTER_NAMES),
    pick=st.integers(min_value=0),
    path=st.lists(st.integers(min_value=0), max_size=4),
    value=_json,
)
def test_mutated_records_never_raise_anything_but_schema_error(
    name: str, pick: int, path: list[int], value: Any
) -> None:
    seeds = SEEDS[name]
    record = _mutate(copy.deepcopy(seeds[pick % len(seeds)]), path, value)
    adapter = get_adapter(name)
    try:
        for item in adapter.records(record):
            result = adapter.event(item)
            assert result is None or isinstance(result, AccessEvent)
    except SchemaError as exc:
        assert exc.code in {
            "not_object",
            "too_large",
            "missing_field",
            "empty_field",
            "wrong_type",
            "bad_value",
            "bad_timestamp",
            "negative_count",
            "absurd_count",
            "adapter_error",
        }
