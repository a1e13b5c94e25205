"""What the generator says happened: labelled incidents and benign look-alikes.

An incident has a type (what happened), a kind (the alert kind that should report it), an
entity (the principal or resource that alert is about), its first and last event, and its
variant (how fast, how large, when, how sensitive). An exposure also records its first
out-of-audience read, the moment from which time to detect is measured. A look-alike is
benign activity that resembles an incident; an alert on it is a false positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from reachwatch.models.simulation.world import rfc3339


@dataclass(slots=True)
class Labels:
    incidents: list[dict[str, Any]] = field(default_factory=list)
    benign: list[dict[str, Any]] = field(default_factory=list)
    # Principals and resources already given a role, so incidents and look-alikes do not
    # land on the same entity.
    used: set[str] = field(default_factory=set)

    def incident(self, kind_type: str, kind: str, entity: str, times: list[float],
                 description: str, variant: dict[str, Any],
                 first_outside_read: float | None = None) -> None:
        entry: dict[str, Any] = {
            "id": f"INC-{len(self.incidents) + 1}",
            "type": kind_type,
            "kind": kind,
            "entity": entity,
            "start": rfc3339(math.floor(min(times))),
            "end": rfc3339(math.ceil(max(times))),
            "description": description,
            "variant": variant,
        }
        if first_outside_read is not None:
            entry["first_outside_read"] = rfc3339(math.floor(first_outside_read))
        self.incidents.append(entry)
        self.used.add(entity)

    def look_alike(self, kind_type: str, kind: str, entity: str, description: str,
                   times: list[float] | None = None) -> None:
        entry: dict[str, Any] = {
            "id": f"BEN-{len(self.benign) + 1}",
            "type": kind_type,
            "kind": kind,
            "entity": entity,
            "description": description,
        }
        if times:
            entry["start"] = rfc3339(math.floor(min(times)))
            entry["end"] = rfc3339(math.ceil(max(times)))
        self.benign.append(entry)
        self.used.add(entity)
