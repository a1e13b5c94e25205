"""Grant events: the permission changes that widen who can read a resource.

Logs record them next to the reads (an M365 ``CompanyLinkCreated``, a CloudTrail
``PutBucketPolicy``, an OCSF policy attachment, a native ``action: grant``). The adapters
keep them as access events whose ``action`` is one of ``GRANT_ACTIONS``; they are not
reads, so they are never scored and never enter a window. What they are good for is the
*cause* of an exposure: the last grant on the resource, or on a scope containing it (its
bucket, prefix, site or folder), before its audience widened.

A scope is a resource id cut at ``/`` boundaries after the scheme, trailing ``/`` removed:
a grant on ``s3://hr-private/`` covers ``s3://hr-private/pay/2026.csv``.

>>> scopes_of("s3://hr-private/pay/2026.csv")
['s3://hr-private/pay/2026.csv', 's3://hr-private/pay', 's3://hr-private']
>>> log = GrantLog()
>>> log.add(Grant(ts=100.0, principal="j.doe", resource="s3://hr-private/",
...               action="share-organization"))
's3://hr-private'
>>> log.cause_for("s3://hr-private/pay/2026.csv", before=150.0)["by"]
'j.doe'
>>> log.cause_for("s3://hr-private/pay/2026.csv", before=50.0) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reachwatch.models.records import AccessEvent

# What each normalised grant action did, in the words an alert uses ("... via <phrase>").
GRANT_PHRASES: dict[str, str] = {
    "grant": "a permission grant",
    "share": "sharing with people or groups",
    "share-organization": "a company-wide link",
    "share-anonymous": "an anonymous (anyone) link",
    "group-add": "a member added to a group with access",
    "inheritance-broken": "permissions no longer inherited from the parent",
    "policy-change": "a resource policy change",
    "acl-change": "an access-control list change",
    "public-access-unblocked": "public access block removed",
}
GRANT_ACTIONS = frozenset(GRANT_PHRASES)
GRANTS_PER_SCOPE = 8  # the last few grants of a scope are enough to name a cause


def is_grant(event: AccessEvent) -> bool:
    """True for a permission change (kept for the cause, never scored as a read)."""
    return event.action in GRANT_ACTIONS


def split_grants(events: Sequence[AccessEvent]) -> tuple[list[AccessEvent], list[AccessEvent]]:
    """(reads, grants) of ``events``, each in the given order."""
    reads: list[AccessEvent] = []
    grants: list[AccessEvent] = []
    for event in events:
        (grants if event.action in GRANT_ACTIONS else reads).append(event)
    return reads, grants


def scope_key(resource: str) -> str:
    """The scope a grant on ``resource`` covers (its id without a trailing ``/``)."""
    stripped = resource.rstrip("/")
    return stripped or resource


def scopes_of(resource: str) -> list[str]:
    """``resource`` and every enclosing scope, narrowest first."""
    scheme, sep, rest = resource.partition("://")
    if not sep:
        scheme, rest = "", resource
    head = f"{scheme}://" if sep else ""
    parts = rest.split("/")
    out: list[str] = []
    for end in range(len(parts), 0, -1):
        path = "/".join(parts[:end]).rstrip("/")
        if path and (not out or out[-1] != head + path):
            out.append(head + path)
    return out


@dataclass(frozen=True, slots=True)
class Grant:
    """One permission change: who widened access to what, when, and how."""

    ts: float
    principal: str
    resource: str
    action: str
    source: str | None = None

    @classmethod
    def of(cls, event: AccessEvent) -> Grant:
        return cls(event.ts, event.principal, event.resource, event.action, event.source)

    def to_obj(self) -> list[Any]:
        return [self.ts, self.principal, self.resource, self.action, self.source]

    @classmethod
    def from_obj(cls, obj: Sequence[Any]) -> Grant:
        return cls(float(obj[0]), obj[1], obj[2], obj[3], obj[4])

    def cause(self) -> dict[str, Any]:
        """The grant as an exposure's ``cause`` (JSON)."""
        when = datetime.fromtimestamp(self.ts, UTC)
        phrase = GRANT_PHRASES.get(self.action, self.action)
        return {
            "ts": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "by": self.principal,
            "action": self.action,
            "scope": self.resource,
            "source": self.source,
            "text": f"opened by {self.principal} at {when:%Y-%m-%d %H:%M} UTC via {phrase} "
            f"on {self.resource}",
        }


class GrantLog:
    """The last grants per scope (a dict offline; the stream keeps the same lists in a table)."""

    def __init__(self, scopes: dict[str, list[list[Any]]] | None = None) -> None:
        self.scopes: dict[str, list[list[Any]]] = scopes if scopes is not None else {}

    def add(self, grant: Grant) -> str:
        """Remember ``grant``; returns the scope key it was filed under."""
        key = scope_key(grant.resource)
        kept = list(self.scopes.get(key, ()))
        obj = grant.to_obj()
        if obj in kept:  # filed already (a batch seen again after a restart, or twice)
            return key
        kept.append(obj)
        kept.sort(key=lambda g: g[0])
        self.scopes[key] = kept[-GRANTS_PER_SCOPE:]  # assigned: a table needs the write
        return key

    def add_events(self, events: Iterable[AccessEvent]) -> set[str]:
        # A refused change (outcome denied) widened nothing.
        return {
            self.add(Grant.of(e))
            for e in events
            if e.action in GRANT_ACTIONS and e.outcome == "allowed"
        }

    def latest_before(self, resource: str, before: float) -> Grant | None:
        """The last grant on ``resource`` or an enclosing scope at or before ``before``."""
        best: Grant | None = None
        for key in scopes_of(resource):
            for obj in self.scopes.get(key, ()):
                if obj[0] <= before and (best is None or obj[0] > best.ts):
                    best = Grant.from_obj(obj)
        return best

    def cause_for(self, resource: str, before: float) -> dict[str, Any] | None:
        grant = self.latest_before(resource, before)
        return grant.cause() if grant is not None else None
