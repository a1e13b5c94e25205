"""Grant events: kept apart from reads, filed by scope, the right one named as cause."""

from __future__ import annotations

from reachwatch.models.grants import (
    GRANTS_PER_SCOPE,
    Grant,
    GrantLog,
    is_grant,
    scopes_of,
    split_grants,
)
from reachwatch.models.records import AccessEvent

T = 1774368000.0


def grant(ts: float, resource: str, who: str = "j.doe", action: str = "share-organization"):
    return Grant(ts=ts, principal=who, resource=resource, action=action)


def test_scopes_cover_buckets_sites_and_plain_ids():
    assert scopes_of("https://contoso.sharepoint.com/sites/hr/Shared Documents/a.docx") == [
        "https://contoso.sharepoint.com/sites/hr/Shared Documents/a.docx",
        "https://contoso.sharepoint.com/sites/hr/Shared Documents",
        "https://contoso.sharepoint.com/sites/hr",
        "https://contoso.sharepoint.com/sites",
        "https://contoso.sharepoint.com",
    ]
    assert scopes_of("people/performance-tracking") == ["people/performance-tracking", "people"]
    assert scopes_of("hr.salaries") == ["hr.salaries"]


def test_the_latest_grant_before_the_widening_wins_across_scopes():
    log = GrantLog()
    log.add(grant(T - 900, "s3://hr-private/", who="old.admin", action="policy-change"))
    log.add(grant(T - 60, "s3://hr-private/pay/2026.csv", who="j.doe", action="acl-change"))
    log.add(grant(T + 60, "s3://hr-private/", who="too.late"))
    log.add(grant(T - 30, "s3://other-bucket/", who="unrelated"))
    cause = log.cause_for("s3://hr-private/pay/2026.csv", before=T)
    assert (cause["by"], cause["action"], cause["scope"]) == (
        "j.doe",
        "acl-change",
        "s3://hr-private/pay/2026.csv",
    )
    assert log.cause_for("s3://hr-private/pay/2025.csv", before=T)["by"] == "old.admin"
    assert log.cause_for("s3://hr-private-2/x", before=T) is None  # a prefix is not a scope


def test_a_scope_keeps_only_its_last_grants():
    log = GrantLog()
    for i in range(GRANTS_PER_SCOPE + 5):
        log.add(grant(T + i, "hr/x"))
    assert len(log.scopes["hr/x"]) == GRANTS_PER_SCOPE
    assert log.scopes["hr/x"][0][0] == T + 5


def test_grants_are_split_from_reads_in_order():
    events = [
        AccessEvent(ts=T, principal="a", resource="r"),
        AccessEvent(ts=T + 1, principal="b", resource="r", action="grant"),
        AccessEvent(ts=T + 2, principal="c", resource="r", action="download"),
    ]
    reads, grants = split_grants(events)
    assert [e.principal for e in reads] == ["a", "c"] and [e.principal for e in grants] == ["b"]
    assert is_grant(events[1]) and not is_grant(events[2])


def test_cause_text_names_who_when_and_how():
    text = grant(T, "hr/x").cause()["text"]
    assert text == "opened by j.doe at 2026-03-24 16:00 UTC via a company-wide link on hr/x"
