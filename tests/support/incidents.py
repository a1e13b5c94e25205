"""An exposure with its cause, on the tiny organisation, for exposure and lifecycle tests.

``exposure_with_grant`` is the story the exposure report must tell: at 12:55 hr-0 opens
``hr/ds3`` (restricted) to the whole company with a company-wide link; from 13:00 most of
the company reads it. Among the readers are hr people (the owning team: never listed) and
one outside reader who has read it for weeks (an established reader: never listed); some
outside readers download it.
"""

from __future__ import annotations

from dataclasses import dataclass

from reachwatch.models.records import AccessEvent
from support.tinyorg import START, TEAMS, people

TEST_DAY = 14
RESOURCE = "hr/ds3"
ESTABLISHED = "finance-0"  # reads hr/ds3 every weekday of the history


@dataclass(frozen=True)
class Exposure:
    grant: AccessEvent
    reads: list[AccessEvent]
    outside: set[str]  # exactly who the record must list
    downloaders: set[str]

    @property
    def events(self) -> list[AccessEvent]:
        return sorted([self.grant, *self.reads], key=lambda e: e.ts)


def established_history() -> list[AccessEvent]:
    """``ESTABLISHED`` reading the resource once a weekday for two weeks."""
    return [
        AccessEvent(
            ts=START + day * 86400 + 11 * 3600,
            principal=ESTABLISHED,
            resource=RESOURCE,
            principal_group="finance",
            resource_group="hr",
            sensitivity="restricted",
        )
        for day in range(TEST_DAY)
        if day % 7 < 5
    ]


def exposure_with_grant(
    history: list[AccessEvent], day: int = TEST_DAY, resource: str = RESOURCE
) -> Exposure:
    """The incident after ``history`` (whose readers of ``resource`` are established)."""
    established = {e.principal for e in history if e.resource == resource} | {ESTABLISHED}
    t0 = START + day * 86400 + 13 * 3600
    grant = AccessEvent(
        ts=t0 - 300,
        principal="hr-0",
        resource=resource,
        principal_group="hr",
        resource_group="hr",
        sensitivity="restricted",
        action="share-organization",
        source="10.0.0.7",
    )
    readers = [p for team in TEAMS for p in people(team)]
    reads: list[AccessEvent] = []
    outside: set[str] = set()
    downloaders: set[str] = set()
    for i, principal in enumerate(readers):
        team = principal.split("-")[0]
        action = "download" if i % 7 == 3 else "read"
        for repeat in range(1 + (i % 3 == 0)):
            reads.append(
                AccessEvent(
                    ts=t0 + i * 40 + repeat * 600,
                    principal=principal,
                    resource=resource,
                    principal_group=team,
                    resource_group="hr",
                    sensitivity="restricted",
                    action=action,
                    records=10 + i,
                    bytes=1000 * (i + 1),
                    source=f"10.1.0.{i}",
                )
            )
        if team != "hr" and principal not in established:
            outside.add(principal)
            if action == "download":
                downloaders.add(principal)
    return Exposure(grant, sorted(reads, key=lambda e: e.ts), outside, downloaders)
