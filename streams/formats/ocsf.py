"""OCSF 1.x events as access events.

Four classes carry data reads (field names from the public OCSF schema):

============================  ==========  =============================================
class                         class_uid   read-like activity_id -> action
============================  ==========  =============================================
Datastore Activity            6005        1 Read -> read, 4 Query -> query, 8 List -> list
API Activity                  6003        2 Read -> read
File Hosting Activity         6006        2 Download, 9 Preview, 14 Open -> read,
                                          15 Sync, 12 Share -> share
File System Activity          1001        2 Read -> read
============================  ==========  =============================================

Permission changes are kept as *grant events* (``models.grants``: never scored, the cause
an exposure record names): Account Change 3001 Attach Policy -> ``policy-change``; User
Access Management 3005 Assign Privileges -> ``grant``; Group Management 3006 Assign
Privileges -> ``grant``, Add User -> ``group-add``; Entity Management 3004 Update of an
access-related entity -> ``acl-change``; File Hosting 12 Share -> ``share``.

Every other activity (create, update, write, delete, rename, ...) and every other class
is skipped. ``class_uid`` may be derived from ``type_uid`` (class_uid * 100 + activity_id);
``activity_id`` 0/99 (Unknown/Other) falls back to ``activity_name``.

* ``time`` (epoch milliseconds) is the event time; ``time_dt`` (RFC 3339) if time is absent.
* Principal: ``actor.user.email_addr``, else ``uid``, else ``name`` (e-mail first so the
  same person matches across formats; uid before name because names are not unique);
  else ``actor.app_name`` as a service. Type: ``service`` when ``type_id`` is 3 System or
  4 Service, or ``type`` names a system/service account or a role; else ``human``.
  ``principal_group``: the first of ``actor.user.groups[].name``, else the org unit
  (``org.ou_name``), else ``org.name``.
* Resource: datastore ``database/table`` (or table, databucket[/file], database);
  API Activity the first ``resources[]`` with a uid or name (skipped when there is none:
  a read of nothing identifiable); file classes ``file.path``, else uid or name.
* ``status_id`` 2 (Failure), ``status`` "Failure" or ``disposition_id`` 2 (Blocked) is
  ``outcome=denied``. ``src_endpoint.ip`` is the source. Bytes: ``query_info.bytes_out``,
  or ``file.size`` for downloads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import DEFAULT_LIMITS, AccessEvent, Limits
from reachwatch.streams.formats.fields import dig, first_text, native_event, require_object, text_at

DATASTORE_ACTIVITY = 6005
API_ACTIVITY = 6003
FILE_HOSTING_ACTIVITY = 6006
FILE_SYSTEM_ACTIVITY = 1001

# activity_id -> action, per class; the captions (lower-cased) serve activity_name fallback.
_READ_ACTIVITIES: dict[int, dict[int, tuple[str, str]]] = {
    DATASTORE_ACTIVITY: {1: ("read", "read"), 4: ("query", "query"), 8: ("list", "list")},
    API_ACTIVITY: {2: ("read", "read")},
    FILE_HOSTING_ACTIVITY: {
        2: ("download", "download"),
        9: ("preview", "preview"),
        14: ("open", "read"),
        15: ("sync", "sync"),
        12: ("share", "share"),
    },
    FILE_SYSTEM_ACTIVITY: {2: ("read", "read")},
}
_UNKNOWN_ACTIVITIES = (0, 99)
_SERVICE_TYPE_IDS = (3, 4)
_SERVICE_TYPE_WORDS = ("system", "service", "role", "application", "app")


class OcsfAdapter:
    name = "ocsf"

    def records(self, document: Any) -> Iterable[Any]:
        if isinstance(document, list):
            return document
        return (document,)

    def event(self, record: Any, limits: Limits = DEFAULT_LIMITS) -> AccessEvent | None:
        record = require_object(record, "an OCSF event")
        class_uid = _class_uid(record)
        activities = _READ_ACTIVITIES.get(class_uid)
        if activities is None:
            return grant_event(record, class_uid)
        action = _action(record, activities)
        if action is None:
            return None
        if class_uid == DATASTORE_ACTIVITY:
            resource, resource_origin = _datastore_resource(record)
        elif class_uid == API_ACTIVITY:
            found = _api_resource(record)
            if found is None:
                return None
            resource, resource_origin = found
        else:
            resource, resource_origin = _file_resource(record)

        principal, principal_type, principal_origin = _principal(record)
        ts, ts_origin = _time(record)
        size = dig(record, "query_info", "bytes_out")
        if size is None and action == "download":
            size = dig(record, "file", "size")
        return native_event(
            {
                "ts": ts,
                "principal": principal,
                "principal_type": principal_type,
                "principal_group": _principal_group(record),
                "resource": resource,
                "action": action,
                "outcome": _outcome(record),
                "bytes": size,
                "source": text_at(record, "src_endpoint", "ip"),
            },
            {
                "ts": ts_origin,
                "principal": principal_origin,
                "principal_group": "actor.user.groups[].name or actor.user.org",
                "resource": resource_origin,
                "bytes": "query_info.bytes_out or file.size",
                "source": "src_endpoint.ip",
            },
            limits,
        )


ACCOUNT_CHANGE = 3001
ENTITY_MANAGEMENT = 3004
USER_ACCESS_MANAGEMENT = 3005
GROUP_MANAGEMENT = 3006
# IAM-category activities that widen access: class_uid -> {activity_id: grant action}.
_GRANT_ACTIVITIES: dict[int, dict[int, str]] = {
    ACCOUNT_CHANGE: {7: "policy-change"},  # Attach Policy
    ENTITY_MANAGEMENT: {3: "acl-change"},  # Update, when it is about access (below)
    USER_ACCESS_MANAGEMENT: {1: "grant"},  # Assign Privileges
    GROUP_MANAGEMENT: {1: "grant", 3: "group-add"},  # Assign Privileges, Add User
}
_ACCESS_WORDS = ("permission", "acl", "policy", "shar", "access", "privilege")


def grant_event(record: dict[str, Any], class_uid: int) -> AccessEvent | None:
    """An IAM-category permission change as a grant event (``models.grants``), else None.

    The resource is what was opened up: ``resources[]`` (uid or name), else the managed
    ``entity``, the ``group`` or the ``policy``. An Entity Management update counts only
    when its entity type or message is about access (permissions, ACL, policy, sharing).
    """
    activities = _GRANT_ACTIVITIES.get(class_uid)
    if activities is None:
        return None
    activity_id = _integer(record, "activity_id")
    if activity_id is None and record.get("type_uid") is not None:
        activity_id = (_integer(record, "type_uid") or 0) % 100
    action = activities.get(activity_id) if activity_id is not None else None
    if action is None or _outcome(record) == "denied":
        return None
    if class_uid == ENTITY_MANAGEMENT:
        about = " ".join(
            text or "" for text in (text_at(record, "entity", "type"), text_at(record, "message"))
        ).lower()
        if not any(word in about for word in _ACCESS_WORDS):
            return None
    found = _api_resource(record)
    if found is None:
        for path in (("entity",), ("group",), ("policy",)):
            value = _ident(record, *path)
            if value is not None:
                found = value, ".".join(path)
                break
    if found is None:
        raise SchemaError("missing_field", "resources[], entity, group or policy is required")
    resource, resource_origin = found
    principal, principal_type, principal_origin = _principal(record)
    ts, ts_origin = _time(record)
    return native_event(
        {
            "ts": ts,
            "principal": principal,
            "principal_type": principal_type,
            "principal_group": _principal_group(record),
            "resource": resource,
            "action": action,
            "source": text_at(record, "src_endpoint", "ip"),
        },
        {
            "ts": ts_origin,
            "principal": principal_origin,
            "principal_group": "actor.user.groups[].name or actor.user.org",
            "resource": resource_origin,
            "source": "src_endpoint.ip",
        },
    )


def _integer(record: dict[str, Any], field: str) -> int | None:
    value = record.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError("wrong_type", f"{field} must be an integer, got {type(value).__name__}")
    return value


def _class_uid(record: dict[str, Any]) -> int:
    class_uid = _integer(record, "class_uid")
    if class_uid is not None:
        return class_uid
    type_uid = _integer(record, "type_uid")
    if type_uid is None:
        raise SchemaError("missing_field", "class_uid (or type_uid) is required")
    return type_uid // 100


def _action(record: dict[str, Any], activities: dict[int, tuple[str, str]]) -> str | None:
    activity_id = _integer(record, "activity_id")
    if activity_id is None and record.get("type_uid") is not None:
        activity_id = (_integer(record, "type_uid") or 0) % 100
    if activity_id is not None and activity_id not in _UNKNOWN_ACTIVITIES:
        known = activities.get(activity_id)
        return known[1] if known else None
    name = text_at(record, "activity_name")
    if name is None:
        if activity_id is None:
            raise SchemaError("missing_field", "activity_id (or activity_name) is required")
        return None
    by_caption = {caption: action for caption, action in activities.values()}
    return by_caption.get(name.lower())


def _time(record: dict[str, Any]) -> tuple[Any, str]:
    for field in ("time", "time_dt"):
        if record.get(field) is not None:
            return record[field], field
    raise SchemaError("missing_field", "time (or time_dt) is required")


def _ident(record: dict[str, Any], *path: str, at: str = "") -> str | None:
    value, _ = first_text(record, (*path, "uid"), (*path, "name"), at=at)
    return value


def _datastore_resource(record: dict[str, Any]) -> tuple[str, str]:
    table = _ident(record, "table")
    database = _ident(record, "database")
    if table is not None:
        database_name = text_at(record, "database", "name")
        if text_at(record, "table", "uid") is None and database_name is not None:
            return f"{database_name}/{table}", "database.name/table.name"
        return table, "table"
    bucket = _ident(record, "databucket")
    if bucket is not None:
        file, _ = first_text(record, ("databucket", "file", "path"), ("databucket", "file", "name"))
        return (f"{bucket}/{file.lstrip('/')}" if file else bucket), "databucket"
    if database is not None:
        return database, "database"
    raise SchemaError("missing_field", "one of table, databucket or database is required")


def _api_resource(record: dict[str, Any]) -> tuple[str, str] | None:
    resources = record.get("resources")
    if not isinstance(resources, list):
        return None
    for index, resource in enumerate(resources):
        value = _ident(resource, at=f"resources[{index}]") if isinstance(resource, dict) else None
        if value is not None:
            return value, f"resources[{index}]"
    return None


def _file_resource(record: dict[str, Any]) -> tuple[str, str]:
    value, origin = first_text(record, ("file", "path"), ("file", "uid"), ("file", "name"))
    if value is None or origin is None:
        raise SchemaError("missing_field", "file.path (or file.uid / file.name) is required")
    return value, origin


def _principal(record: dict[str, Any]) -> tuple[str, str, str]:
    user = dig(record, "actor", "user")
    principal, origin = first_text(user, ("email_addr",), ("uid",), ("name",), at="actor.user")
    if principal is not None and origin is not None:
        return principal, _user_type(user), origin
    app = text_at(record, "actor", "app_name")
    if app is not None:
        return app, "service", "actor.app_name"
    raise SchemaError(
        "missing_field", "actor.user (email_addr, uid or name) or actor.app_name is required"
    )


def _user_type(user: dict[str, Any]) -> str:
    type_id = user.get("type_id")
    if isinstance(type_id, int) and not isinstance(type_id, bool) and type_id in _SERVICE_TYPE_IDS:
        return "service"
    kind = user.get("type")
    if isinstance(kind, str) and any(word in kind.lower().split() for word in _SERVICE_TYPE_WORDS):
        return "service"
    if isinstance(kind, str) and kind.lower().replace(" ", "") in ("assumedrole", "awsservice"):
        return "service"
    return "human"


def _principal_group(record: dict[str, Any]) -> str | None:
    groups = dig(record, "actor", "user", "groups")
    if isinstance(groups, list):
        for index, group in enumerate(groups):
            where = f"actor.user.groups[{index}]"
            name = text_at(group, "name", at=where) if isinstance(group, dict) else None
            if name is not None:
                return name
    value, _ = first_text(
        record, ("actor", "user", "org", "ou_name"), ("actor", "user", "org", "name")
    )
    return value


def _outcome(record: dict[str, Any]) -> str:
    status = (text_at(record, "status") or "").lower()
    if record.get("status_id") == 2 or status == "failure" or record.get("disposition_id") == 2:
        return "denied"
    return "allowed"
