"""AWS CloudTrail records as access events.

Reads are data events of S3 (objects and listings), DynamoDB, the RDS Data API and
Athena; every other call (EC2 ``Describe*``, IAM, STS, S3 writes...) is skipped. A record
comes alone, inside a ``{"Records": [...]}`` envelope (the files CloudTrail writes to S3),
or as a Logstash/NDJSON export line whose time is ``@timestamp`` instead of ``eventTime``.

Decisions, so that the same actor always gets the same principal:

* **Resources.** ``s3://bucket/key`` for objects; ``s3://bucket/`` (trailing slash) for a
  bucket listing or probe, so an enrichment rule ``s3://bucket/*`` covers both;
  ``s3://*`` for ``ListBuckets``, which is kept (action ``list``) because enumerating the
  account's buckets is the usual first step of an exfiltration. DynamoDB tables, RDS
  clusters and Athena databases use their ARN or ``athena:catalog/database``.
* **Assumed roles.** ``arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`` collapses to the role
  ``arn:aws:iam::ACCT:role/ROLE`` (the issuer's ARN, with its path, when the record has
  it), principal type ``service``: sessions of machines (EC2 instance profiles, Lambda,
  CI) are many short-lived names for one actor. A session is kept whole and typed
  ``human`` when it looks like a person: an IAM Identity Center role
  (``AWSReservedSSO_*``) or a session name containing ``@`` (SAML federation uses the
  e-mail), because collapsing those would merge every person using the role.
* **Other identities.** IAMUser: its ARN, human. Root: ``arn:aws:iam::ACCT:root``, human.
  FederatedUser: its ARN, human. AWSService: ``aws-service:<invokedBy>``, service.
  AWSAccount (another account): ``aws-account:ACCT`` or ``aws-account:ACCT:PRINCIPALID``;
  ``ANONYMOUS_PRINCIPAL`` (unauthenticated reads of a public bucket) is ``aws:anonymous``
  with the caller's IP as ``source``.
* **Grants.** ``PutBucketPolicy`` (``policy-change``), ``PutBucketAcl`` / ``PutObjectAcl``
  (``acl-change``) and ``DeletePublicAccessBlock`` (``public-access-unblocked``) are kept as
  grant events on ``s3://bucket/`` (or the object): not reads, never scored, the cause an
  exposure record names. A refused one (any error code) changed nothing and is skipped.
* **Errors.** Access errors (``AccessDenied``, ``*Unauthorized*``, ``AllAccessDisabled``...)
  give ``outcome=denied``; any other error code (``NoSuchKey``, throttling) means no read
  happened and nothing was refused, so the record is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import DEFAULT_LIMITS, AccessEvent, Limits
from reachwatch.streams.formats.fields import dig, first_text, native_event, require_object, text_at

_S3_OBJECT_READS = {
    "GetObject": "read",
    "GetObjectVersion": "read",
    "SelectObjectContent": "read",
    "GetObjectTorrent": "read",
    "HeadObject": "metadata",
    "GetObjectAcl": "metadata",
    "GetObjectVersionAcl": "metadata",
    "GetObjectAttributes": "metadata",
    "GetObjectTagging": "metadata",
    "GetObjectVersionTagging": "metadata",
    "GetObjectLegalHold": "metadata",
    "GetObjectRetention": "metadata",
}
_S3_BUCKET_READS = {
    "ListObjects": "list",
    "ListObjectsV2": "list",
    "ListObjectVersions": "list",
    "ListBucket": "list",  # the IAM action name; some exporters log it instead
    "HeadBucket": "metadata",
}
_DYNAMODB_READS = {"GetItem": "read", "BatchGetItem": "read", "Query": "query", "Scan": "query"}
_SQL_READ_PREFIXES = ("select", "with", "show", "describe", "explain")

_ACCESS_ERROR_MARKERS = ("accessdenied", "unauthorized", "forbidden", "allaccessdisabled")


class CloudTrailAdapter:
    name = "cloudtrail"

    def records(self, document: Any) -> Iterable[Any]:
        if isinstance(document, list):
            return document
        if isinstance(document, dict) and "Records" in document:
            records = document["Records"]
            if not isinstance(records, list):
                raise SchemaError(
                    "adapter_error", f"Records must be a list, got {type(records).__name__}"
                )
            return records
        return (document,)

    def event(self, record: Any, limits: Limits = DEFAULT_LIMITS) -> AccessEvent | None:
        record = require_object(record, "a CloudTrail record")
        source = text_at(record, "eventSource")
        name = text_at(record, "eventName")
        if source is None or name is None:
            missing = "eventSource" if source is None else "eventName"
            raise SchemaError("missing_field", f"{missing} is required")
        read = _READS.get(source)
        target = read(record, name) if read is not None else None
        if target is None:
            target = grant_target(source, record, name)
        if target is None:
            return None
        resource, resource_origin, action = target

        outcome = "allowed"
        error_code = text_at(record, "errorCode")
        if error_code is not None:
            if action in _GRANT_NAMES.values():
                return None  # a refused permission change widened nothing
            if not any(marker in error_code.lower() for marker in _ACCESS_ERROR_MARKERS):
                return None
            outcome = "denied"

        principal, principal_type, principal_origin = _principal(record)
        ts, ts_origin = _timestamp(record)
        return native_event(
            {
                "ts": ts,
                "principal": principal,
                "principal_type": principal_type,
                "resource": resource,
                "action": action,
                "outcome": outcome,
                "bytes": _bytes_out(record),
                "source": text_at(record, "sourceIPAddress"),
            },
            {
                "ts": ts_origin,
                "principal": principal_origin,
                "resource": resource_origin,
                "bytes": "additionalEventData.bytesTransferredOut",
                "source": "sourceIPAddress",
            },
            limits,
        )


def _timestamp(record: dict[str, Any]) -> tuple[Any, str]:
    for field in ("eventTime", "@timestamp"):
        if record.get(field) is not None:
            return record[field], field
    raise SchemaError("missing_field", "eventTime (or @timestamp) is required")


_Target = tuple[str, str, str]  # resource, where it came from, action


def _s3(record: dict[str, Any], name: str) -> _Target | None:
    if name == "ListBuckets":
        return "s3://*", "eventName", "list"
    action = _S3_OBJECT_READS.get(name)
    if action is not None:
        bucket, key = _s3_location(record, name)
        if key is None:
            raise SchemaError("adapter_error", f"S3 {name} without requestParameters.key")
        return f"s3://{bucket}/{key}", "requestParameters.key", action
    action = _S3_BUCKET_READS.get(name)
    if action is not None:
        bucket, _ = _s3_location(record, name)
        return f"s3://{bucket}/", "requestParameters.bucketName", action
    return None


def _s3_location(record: dict[str, Any], name: str) -> tuple[str, str | None]:
    bucket = text_at(record, "requestParameters", "bucketName")
    key = text_at(record, "requestParameters", "key")
    if bucket is None:
        # Some exports drop requestParameters but keep the resources[] ARNs.
        for index, resource in enumerate(_resources(record)):
            arn = text_at(resource, "ARN", at=f"resources[{index}]")
            if arn is None or not arn.startswith("arn:aws:s3:::"):
                continue
            path = arn.removeprefix("arn:aws:s3:::")
            bucket, _, object_key = path.partition("/")
            key = key or object_key or None
            break
    if not bucket:
        raise SchemaError("adapter_error", f"S3 {name} without requestParameters.bucketName")
    return bucket, key


# Permission changes that can widen who reads a bucket or object: kept as grant events
# (``models.grants``), never scored; the exposure record names the last one as cause.
_GRANT_NAMES = {
    "PutBucketPolicy": "policy-change",
    "PutBucketAcl": "acl-change",
    "PutObjectAcl": "acl-change",
    "DeletePublicAccessBlock": "public-access-unblocked",
    "DeleteBucketPublicAccessBlock": "public-access-unblocked",  # the IAM action's name
}


def grant_target(source: str, record: dict[str, Any], name: str) -> _Target | None:
    """An S3 permission change as a grant on its bucket (``s3://bucket/``) or object."""
    action = _GRANT_NAMES.get(name)
    if action is None or source != "s3.amazonaws.com":
        return None
    bucket, key = _s3_location(record, name)
    if name == "PutObjectAcl" and key is not None:
        return f"s3://{bucket}/{key}", "requestParameters.key", action
    return f"s3://{bucket}/", "requestParameters.bucketName", action


def _dynamodb(record: dict[str, Any], name: str) -> _Target | None:
    action = _DYNAMODB_READS.get(name)
    if action is None and name == "ExecuteStatement":
        statement = text_at(record, "requestParameters", "statement")
        action = "query" if _is_sql_read(statement) else None
    if action is None:
        return None
    table = _resource_arn(record, "AWS::DynamoDB::Table")
    if table is not None:
        return table, "resources[].ARN", action
    table = text_at(record, "requestParameters", "tableName")
    if table is None:
        raise SchemaError("adapter_error", f"DynamoDB {name} without a table")
    return f"dynamodb:table/{table}", "requestParameters.tableName", action


def _rds_data(record: dict[str, Any], name: str) -> _Target | None:
    if name != "ExecuteStatement" and name != "BatchExecuteStatement":
        return None
    if not _is_sql_read(text_at(record, "requestParameters", "sql")):
        return None
    arn = text_at(record, "requestParameters", "resourceArn")
    if arn is None:
        raise SchemaError("adapter_error", f"RDS Data {name} without requestParameters.resourceArn")
    database = text_at(record, "requestParameters", "database")
    resource = f"{arn}/{database}" if database else arn
    return resource, "requestParameters.resourceArn", "query"


def _athena(record: dict[str, Any], name: str) -> _Target | None:
    if name != "StartQueryExecution":
        return None
    if not _is_sql_read(text_at(record, "requestParameters", "queryString")):
        return None
    context = ("requestParameters", "queryExecutionContext")
    database = text_at(record, *context, "database")
    if database is None:
        raise SchemaError(
            "adapter_error", "Athena StartQueryExecution without queryExecutionContext.database"
        )
    catalog = text_at(record, *context, "catalog") or "AwsDataCatalog"
    return f"athena:{catalog}/{database}", "queryExecutionContext.database", "query"


_READS: dict[str, Callable[[dict[str, Any], str], _Target | None]] = {
    "s3.amazonaws.com": _s3,
    "dynamodb.amazonaws.com": _dynamodb,
    "rds-data.amazonaws.com": _rds_data,
    "athena.amazonaws.com": _athena,
}


def _is_sql_read(statement: str | None) -> bool:
    # A missing or redacted statement is not counted: we cannot tell a read from a write.
    return statement is not None and statement.lstrip("( \n\t").lower().startswith(
        _SQL_READ_PREFIXES
    )


def _resources(record: dict[str, Any]) -> list[Any]:
    resources = record.get("resources")
    return resources if isinstance(resources, list) else []


def _resource_arn(record: dict[str, Any], kind: str) -> str | None:
    for index, resource in enumerate(_resources(record)):
        if isinstance(resource, dict) and resource.get("type") == kind:
            arn = text_at(resource, "ARN", at=f"resources[{index}]")
            if arn is not None:
                return arn
    return None


def _bytes_out(record: dict[str, Any]) -> Any:
    # CloudTrail writes byte counts as floats (500.0); parse_event accepts whole floats.
    return dig(record, "additionalEventData", "bytesTransferredOut")


_IDENTITY = "userIdentity"


def _principal(record: dict[str, Any]) -> tuple[str, str, str]:
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        raise SchemaError("missing_field", "userIdentity is required")
    kind = text_at(identity, "type", at=_IDENTITY) or ""
    if kind == "AssumedRole":
        return _assumed_role(identity)
    if kind == "AWSService":
        service = text_at(identity, "invokedBy", at=_IDENTITY) or text_at(record, "sourceIPAddress")
        if service is None:
            raise SchemaError("missing_field", "userIdentity.invokedBy is required for AWSService")
        return f"aws-service:{service}", "service", "userIdentity.invokedBy"
    if kind == "AWSAccount":
        account = text_at(identity, "accountId", at=_IDENTITY)
        if account is None:
            raise SchemaError("missing_field", "userIdentity.accountId is required for AWSAccount")
        if account == "ANONYMOUS_PRINCIPAL":
            return "aws:anonymous", "human", "userIdentity.accountId"
        caller = text_at(identity, "principalId", at=_IDENTITY)
        principal = f"aws-account:{account}"
        if caller is not None and caller != account:
            principal = f"{principal}:{caller}"
        return principal, "human", "userIdentity.principalId"
    if kind == "Root":
        arn = text_at(identity, "arn", at=_IDENTITY)
        account = text_at(identity, "accountId", at=_IDENTITY)
        if arn is None and account is None:
            raise SchemaError("missing_field", "userIdentity.arn is required for Root")
        return arn or f"arn:aws:iam::{account}:root", "human", "userIdentity.arn"
    # IAMUser, FederatedUser, IdentityCenterUser and anything new: the most specific id.
    principal, origin = first_text(
        identity, ("arn",), ("userName",), ("principalId",), ("accountId",), at=_IDENTITY
    )
    if principal is None or origin is None:
        raise SchemaError("missing_field", "userIdentity.arn (or userName) is required")
    return principal, "human", origin


def _assumed_role(identity: dict[str, Any]) -> tuple[str, str, str]:
    arn = text_at(identity, "arn", at=_IDENTITY)
    if arn is None:
        raise SchemaError("missing_field", "userIdentity.arn is required for AssumedRole")
    # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    head, _, path = arn.partition(":assumed-role/")
    role, _, session = path.partition("/")
    if not role or not head.startswith("arn:") or ":sts:" not in head:
        raise SchemaError("adapter_error", f"userIdentity.arn {arn[:80]!r} is not an assumed role")
    if role.startswith("AWSReservedSSO_") or "@" in session:
        return arn, "human", "userIdentity.arn"
    issuer = dig(identity, "sessionContext", "sessionIssuer")
    if isinstance(issuer, dict) and issuer.get("type") == "Role":
        issuer_arn = text_at(issuer, "arn", at=f"{_IDENTITY}.sessionContext.sessionIssuer")
        if issuer_arn is not None:
            return issuer_arn, "service", "userIdentity.sessionContext.sessionIssuer.arn"
    iam = head.replace(":sts:", ":iam:", 1)
    return f"{iam}:role/{role}", "service", "userIdentity.arn"
