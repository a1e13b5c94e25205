"""Which input an entity state has applied, by opaque input position (source, offset).

The stream delivers at least once: after a crash, a worker reads its input again from the
last acknowledged position, and events whose effect was already written with some entity's
state come a second time. Applied again, a read within the allowed lateness of the entity's
latest read would count twice (its features differ from the replay's), one further behind
would be judged late. So each state carries, per input *source* (an opaque name: the
stream uses ``topic:partition``), a few *claims* ``[offset, frontier]``: every event of that
source at or before ``offset`` whose event time is at or before ``frontier`` has been
applied to this state. An event a claim covers is a repeat.

Each claim is true when it is made (``streams.service.scoring`` says why) and stays true, so
a state keeps the claims no other contains, a few per source: one in the common case, as
offsets and frontiers grow together; a second after a restart, until the new reading's
frontier passes the old one's. Forgetting one only forgets what counts as a repeat, never
marks an event as applied that was not.

The offline replay has no positions: its states carry no claims and nothing changes.

>>> applied = AppliedInput()
>>> applied.advance("in:0", offset=41, frontier=1000.0)
>>> applied.covers("in:0", 40, 990.0), applied.covers("in:0", 42, 990.0)
(True, False)
>>> applied.covers("in:0", 40, 1001.0), applied.covers("in:1", 40, 990.0)
(False, False)
>>> applied.advance("in:0", offset=45, frontier=1010.0); applied.claims["in:0"]
[[45, 1010.0]]
"""

from __future__ import annotations

from typing import Any

# Claims kept per source at most (the oldest goes first).
KEPT_CLAIMS = 4


class AppliedInput:
    """Per source, the claims ``[offset, frontier]`` of what this state has applied."""

    __slots__ = ("claims",)

    def __init__(self) -> None:
        self.claims: dict[str, list[list[Any]]] = {}

    def covers(self, source: str, offset: int, ts: float) -> bool:
        """Whether the event of ``source`` at ``offset`` (event time ``ts``) is applied."""
        claims = self.claims.get(source)
        if not claims or offset < 0:
            return False
        for claimed, frontier in claims:
            if offset <= claimed and ts <= frontier:
                return True
        return False

    def advance(self, source: str, offset: int, frontier: float) -> None:
        """Add the claim that every event of ``source`` at or before ``offset`` whose event
        time is at or before ``frontier`` is applied."""
        claims = self.claims.get(source)
        if claims is None:
            self.claims[source] = [[offset, frontier]]
            return
        if len(claims) == 1:  # the common case, without building lists
            only = claims[0]
            if offset >= only[0] and frontier >= only[1]:
                only[0], only[1] = offset, frontier
                return
            if offset <= only[0] and frontier <= only[1]:
                return
        elif any(offset <= o and frontier <= f for o, f in claims):
            return
        kept = [c for c in claims if c[0] > offset or c[1] > frontier]
        kept.append([offset, frontier])
        if len(kept) > KEPT_CLAIMS:
            del kept[: len(kept) - KEPT_CLAIMS]
        self.claims[source] = kept

    def __bool__(self) -> bool:
        return bool(self.claims)

    def to_obj(self) -> list[Any]:
        return [[source, claims] for source, claims in self.claims.items()]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> AppliedInput:
        applied = cls()
        applied.claims = {
            str(source): [[int(o), float(f)] for o, f in claims] for source, claims in obj
        }
        return applied
