"""Microsoft 365 unified audit log records (SharePoint / OneDrive) as access events.

Input is the Office 365 Management Activity API shape (one record, or the JSON array a
content blob holds); field names follow Microsoft's "Office 365 Management Activity API
schema" (common schema + SharePoint file operations / sharing schemas).

* Only workloads SharePoint and OneDrive are read; other workloads are skipped.
* Reads: FileAccessed, FileAccessedExtended (and the deprecated FileViewed / FileFetched)
  are ``read``; FileDownloaded ``download``; FilePreviewed ``preview``;
  FileSyncDownloadedFull/Partial ``sync``; use of a sharing link (AnonymousLinkUsed,
  CompanyLinkUsed, SecureLinkUsed) is a ``read`` by whoever used it.
* Sharing widens a file's audience, so it is kept as an event rather than skipped:
  AnonymousLinkCreated/Updated -> ``share-anonymous``; CompanyLinkCreated/Updated ->
  ``share-organization``; SharingSet, SharingInvitationCreated, AddedToSecureLink,
  SecureLinkCreated, SharedLinkCreated, AccessInvitationCreated -> ``share``;
  AddedToGroup -> ``group-add`` and SharingInheritanceBroken -> ``inheritance-broken`` (on
  the item, else the site). These are *grant events* (``models.grants``): never scored as
  reads, kept as the cause an exposure record names. The person sharing is the principal;
  a failed one widened nothing and is skipped. Revocations and every write are skipped.
* ``CreationTime`` has no zone in this API; the docs define it as UTC, so it is read as UTC.
* UserType System/Application/ServicePrincipal/policies, and the ``app@sharepoint`` /
  ``SHAREPOINT\\system`` accounts, are ``service``; everyone else is ``human``.
* ``ResultStatus`` Failed means the operation was refused: ``outcome=denied``.
* Resource is ``ObjectId`` (the file's full URL), else SiteUrl + SourceRelativeUrl +
  SourceFileName; ``resource_group`` is the site URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import DEFAULT_LIMITS, AccessEvent, Limits
from reachwatch.streams.formats.fields import native_event, require_object, text_at

_WORKLOADS = frozenset({"sharepoint", "onedrive"})

_ACTIONS = {
    "FileAccessed": "read",
    "FileAccessedExtended": "read",
    "FileViewed": "read",
    "FileFetched": "read",
    "AnonymousLinkUsed": "read",
    "CompanyLinkUsed": "read",
    "SecureLinkUsed": "read",
    "FileDownloaded": "download",
    "FilePreviewed": "preview",
    "FileSyncDownloadedFull": "sync",
    "FileSyncDownloadedPartial": "sync",
    "AnonymousLinkCreated": "share-anonymous",
    "AnonymousLinkUpdated": "share-anonymous",
    "CompanyLinkCreated": "share-organization",
    "CompanyLinkUpdated": "share-organization",
    "SharingSet": "share",
    "SharingInvitationCreated": "share",
    "AddedToSecureLink": "share",
    "SecureLinkCreated": "share",
    "SharedLinkCreated": "share",
    "AccessInvitationCreated": "share",
}

# UserType enum of the common schema: 0 Regular, 1 Reserved, 2 Admin, 3 DcAdmin are people.
_SERVICE_USER_TYPES = frozenset({4, 5, 6, 7, 8})
_SERVICE_USER_TYPE_NAMES = frozenset(
    {"system", "application", "serviceprincipal", "custompolicy", "systempolicy"}
)
_SERVICE_ACCOUNTS = frozenset({"app@sharepoint", "sharepoint\\system", "nt authority\\system"})


class M365Adapter:
    name = "m365"

    def records(self, document: Any) -> Iterable[Any]:
        if isinstance(document, list):
            return document
        return (document,)

    def event(self, record: Any, limits: Limits = DEFAULT_LIMITS) -> AccessEvent | None:
        record = require_object(record, "an M365 audit record")
        operation = text_at(record, "Operation")
        if operation is None:
            raise SchemaError("missing_field", "Operation is required")
        workload = text_at(record, "Workload")
        if workload is not None and workload.lower() not in _WORKLOADS:
            return None
        action = _ACTIONS.get(operation) or _GRANTS.get(operation)
        if action is None:
            return None

        principal = text_at(record, "UserId")
        if principal is None:
            raise SchemaError("missing_field", "UserId is required")
        status = (text_at(record, "ResultStatus") or "").lower()
        if operation in _GRANTS:
            return grant_event(record, principal, action, status)
        resource, resource_origin = _resource(record)
        return native_event(
            {
                "ts": _creation_time(record),
                "principal": principal,
                "principal_type": _principal_type(record, principal),
                "resource": resource,
                "resource_group": _site(record),
                "action": action,
                "outcome": "denied" if status in ("failed", "false") else "allowed",
                "source": text_at(record, "ClientIP"),
            },
            {
                "principal": "UserId",
                "resource": resource_origin,
                "resource_group": "SiteUrl",
                "source": "ClientIP",
            },
            limits,
        )


# Permission changes beyond sharing links: kept as grant events (``models.grants``).
_GRANTS = {
    "AddedToGroup": "group-add",
    "SharingInheritanceBroken": "inheritance-broken",
}


def grant_event(
    record: dict[str, Any], principal: str, action: str, status: str
) -> AccessEvent | None:
    """A group membership or broken inheritance as a grant on its item, else its site."""
    if status in ("failed", "false"):
        return None  # refused: nothing widened
    object_id = text_at(record, "ObjectId")
    site = _site(record)
    resource = object_id or site
    if resource is None:
        raise SchemaError("missing_field", "ObjectId or SiteUrl is required")
    return native_event(
        {
            "ts": _creation_time(record),
            "principal": principal,
            "principal_type": _principal_type(record, principal),
            "resource": resource,
            "resource_group": site,
            "action": action,
            "source": text_at(record, "ClientIP"),
        },
        {
            "principal": "UserId",
            "resource": "ObjectId" if object_id else "SiteUrl",
            "resource_group": "SiteUrl",
            "source": "ClientIP",
        },
    )


def _creation_time(record: dict[str, Any]) -> float:
    text = text_at(record, "CreationTime")
    if text is None:
        raise SchemaError("missing_field", "CreationTime is required")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SchemaError(
            "bad_timestamp", f"CreationTime {text[:40]!r} is not an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the API documents CreationTime as UTC
    return moment.timestamp()


def _principal_type(record: dict[str, Any], principal: str) -> str:
    if principal.lower() in _SERVICE_ACCOUNTS:
        return "service"
    user_type = record.get("UserType")
    if isinstance(user_type, bool):
        return "human"
    if isinstance(user_type, int) and user_type in _SERVICE_USER_TYPES:
        return "service"
    if isinstance(user_type, str) and (
        user_type.strip().lower() in _SERVICE_USER_TYPE_NAMES
        or (user_type.strip().isdigit() and int(user_type) in _SERVICE_USER_TYPES)
    ):
        return "service"
    return "human"


def _site(record: dict[str, Any]) -> str | None:
    site = text_at(record, "SiteUrl")
    return site.rstrip("/") if site else None


def _resource(record: dict[str, Any]) -> tuple[str, str]:
    object_id = text_at(record, "ObjectId")
    if object_id is not None:
        return object_id, "ObjectId"
    site = _site(record)
    name = text_at(record, "SourceFileName")
    if site is None or name is None:
        raise SchemaError("missing_field", "ObjectId (or SiteUrl and SourceFileName) is required")
    folder = (text_at(record, "SourceRelativeUrl") or "").strip("/")
    parts = [site, folder, name] if folder else [site, name]
    return "/".join(parts), "SiteUrl+SourceRelativeUrl+SourceFileName"
