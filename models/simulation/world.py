"""The company while its events are generated: clock, per-purpose randomness, event rows.

Time is UTC epoch seconds; people live in their office's local time, so a local hour and
a weekday are always asked of an office. Randomness comes from string-seeded
``random.Random`` streams, one per purpose, so changing one part of the generator leaves
the others' draws unchanged, and nothing iterates a set, so files are byte-identical.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import orjson

from reachwatch.models import records
from reachwatch.models.records import SCHEMA_VERSION
from reachwatch.models.simulation.family import CompanyParams, Office
from reachwatch.models.simulation.organisation import Dataset, Organisation

DAY = 86400.0
HOUR = 3600.0
MINUTE = 60.0
SOURCE = "simulation"

# An event before it is written: (ts, principal, principal_type, principal_group, resource,
# resource_group, sensitivity or "" when unlabelled, records, bytes, outcome, client address,
# action: "read" or a grant action of ``models.grants``).
Row = tuple[float, str, str, str, str, str, str, int, int, str, str, str]


def rfc3339(ts: float) -> str:
    """Epoch seconds to RFC 3339 UTC with whole seconds ('2026-03-23T10:00:00Z')."""
    return records.rfc3339(ts, "seconds")


class World:
    """One company's organisation, clock and the rows generated so far."""

    def __init__(self, params: CompanyParams, scale: float, history_days: int, test_days: int,
                 t0: float) -> None:
        self.params = params
        self.scale = scale
        self.history_days = history_days
        self.test_days = test_days
        self.days = history_days + test_days
        self.t0 = t0
        self.weekday0 = datetime.fromtimestamp(t0, UTC).weekday()
        self.rows: list[Row] = []
        self.org = Organisation(params, scale, self.rng("organisation"))

    def rng(self, purpose: str) -> random.Random:
        return random.Random(f"reachwatch-sim:{self.params.seed}:{purpose}")

    # --- clock ----------------------------------------------------------------------------

    def day_start(self, day: int) -> float:
        """UTC midnight starting simulation day ``day``."""
        return self.t0 + day * DAY

    def local_midnight(self, office: Office, day: int) -> float:
        """UTC time of the local midnight that starts ``day``'s date in ``office``."""
        return self.day_start(day) - office.utc_offset * HOUR

    def is_workday(self, office: Office, day: int) -> bool:
        return (self.weekday0 + day) % 7 not in office.weekend

    def at_local(self, office: Office, day: int, hour: float) -> float:
        return self.local_midnight(office, day) + hour * HOUR

    def local_hour(self, office: Office, ts: float) -> float:
        return ((ts + office.utc_offset * HOUR) % DAY) / HOUR

    @property
    def test_start(self) -> float:
        return self.day_start(self.history_days)

    @property
    def test_end(self) -> float:
        return self.day_start(self.days)

    # --- events ---------------------------------------------------------------------------

    def emit(
        self, rng: random.Random, ts: float, principal: str, principal_type: str, group: str,
        dataset: Dataset, address: str, *, outcome: str = "allowed", full: bool = False,
    ) -> None:
        if outcome == "denied":
            records = 0
        elif full:
            records = dataset.rows
        else:
            # Heavy-tailed: most reads touch a few hundred rows, a few scan the table.
            records = min(dataset.rows, max(1, int(rng.lognormvariate(4.5, 1.8))))
        size = int(records * dataset.row_bytes * rng.uniform(0.6, 1.4))
        self.rows.append((
            round(ts, 3), principal, principal_type, group, dataset.resource, dataset.owner,
            dataset.sensitivity if dataset.labelled else "", records, size, outcome, address,
            "read",
        ))

    def emit_grant(
        self, ts: float, principal: str, group: str, dataset: Dataset, action: str,
        address: str,
    ) -> bool:
        """A permission change on ``dataset``, if the company's logs record it (a share
        ``params.grants_logged`` of them: the rest happen where no log reaches, an
        identity provider's group or a ticket); True when it was written. Its own draw,
        seeded by the change, so whether one is logged moves no other draw."""
        seed = f"reachwatch-sim:{self.params.seed}:grant:{dataset.resource}:{ts!r}"
        if random.Random(seed).random() >= self.params.grants_logged:
            return False
        self.rows.append((
            round(ts, 3), principal, "human", group, dataset.resource, dataset.owner,
            dataset.sensitivity if dataset.labelled else "", 0, 0, "allowed", address, action,
        ))
        return True

    def write(self, history: Path, test: Path) -> tuple[int, int]:
        """Cut rows to the simulated period, sort them, write both files; (history, test) counts."""
        start, end, split = self.t0, self.test_end, self.test_start
        rows = sorted(row for row in self.rows if start <= row[0] < end)
        cut = next((i for i, row in enumerate(rows) if row[0] >= split), len(rows))
        _write_rows(history, rows[:cut])
        _write_rows(test, rows[cut:])
        return cut, len(rows) - cut


def _write_rows(path: Path, rows: list[Row]) -> None:
    # The native wire form (what ``parse_event`` reads), written without building an
    # AccessEvent per row. An unlabelled dataset's events have no sensitivity field; the
    # reader's address is the event's ``source`` (where the schema puts it).
    with path.open("wb") as out:
        for ts, principal, ptype, group, resource, rgroup, sensitivity, records, size, outcome, \
                address, action in rows:
            event = {
                "schema_version": SCHEMA_VERSION, "ts": ts, "principal": principal,
                "resource": resource, "principal_type": ptype, "principal_group": group,
                "resource_group": rgroup,
            }
            if sensitivity:
                event["sensitivity"] = sensitivity
            if action == "read":
                event.update(action=action, records=records, bytes=size, outcome=outcome,
                             source=address or SOURCE)
            else:  # a permission change: no records, the changer's address
                event.update(action=action, outcome=outcome, source=address or SOURCE)
            out.write(orjson.dumps(event))
            out.write(b"\n")
