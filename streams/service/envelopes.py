"""Envelopes: many validated events in one message on the internal repartition topics.

Faust spends tens of microseconds of CPU per Kafka message (message and event objects,
sensors, ack tracking) whatever the agent does with it; the ingest agent therefore groups
the validated events of one input batch by destination partition and sends one envelope
per partition instead of one message per event. An envelope only ever travels between
reachwatch's own agents, so events go in a compact positional form and are rebuilt without
re-validation (they were validated on the way in).

Wire form (JSON): ``{"v": 1, "topics": [...], "r": [...], "t": [...], "e": [[...], ...],
"w": {...}}``: per event its receive time ``r``, its input topic as an index ``t`` into
``topics`` (keeps the envelope small) and its fields ``e`` in ``AccessEvent`` slot order;
``w`` maps each input source (``topic:partition``) the sender reads to the event time up to
which it has sent that source's events (``streams.service.alignment``) and ``n`` is how many
input sources there are in all (0: unknown). An envelope may hold
no events and only ``w``: the sender's frontier moved on (for instance a partition went idle).

Every event also carries its input position: partition ``p`` and offset ``o``. ``c`` maps each
source the sender reads to its *claim* ``[epoch, offset, frontier]``: the sender (one reading
of that source, named by ``epoch``) has sent every event of the source at or before
``offset`` whose event time is at or before ``frontier``. A worker that reads a source again
from its committed offset (after a crash, or a rebalance) forwards such events a second
time under a new epoch; a scorer that saw the earlier epoch's claim knows them for repeats
(``streams.service.alignment.UpstreamFrontiers.repeated``). Offset -1: nothing claimed yet.
An event read back also carries the frontier ``w`` reported for its own source (its sender
had sent every event of that source it had read before it, up to that frontier: what the
entity states record as applied builds on it, ``models.progress``) and the epoch that sent
it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import AccessEvent

ENVELOPE_VERSION = 1
# Events per envelope at most: keeps a message far below the producer's request limit
# (~350 bytes per event) even when one input message carried thousands of records.
MAX_ENVELOPE_EVENTS = 1000
_FIELDS = AccessEvent.__slots__


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A validated event on an internal topic, with where and when it entered the service."""

    event: AccessEvent
    topic: str
    received: float
    partition: int = -1  # input position (-1: unknown)
    offset: int = -1
    # The frontier its envelope's sender reported for its source (-inf: unknown): the
    # sender had sent every event of the source it read before this one and no later
    # than that (``models.progress``).
    frontier: float = -math.inf
    # The reading (epoch) of its source that sent it ("": unknown).
    epoch: str = ""

    @property
    def source(self) -> str:
        return f"{self.topic}:{self.partition}"


@dataclass(frozen=True, slots=True)
class Claim:
    """What one reading (``epoch``) of a source has sent: every event at or before
    ``offset`` whose event time is at or before ``frontier``."""

    epoch: str
    offset: int = -1
    frontier: float = -1.0

    def covers(self, offset: int, ts: float) -> bool:
        return 0 <= offset <= self.offset and ts <= self.frontier


@dataclass(frozen=True, slots=True)
class Envelope:
    """The events of one envelope and the frontiers its sender reported."""

    items: list[Forwarded]
    frontiers: dict[str, float]
    sources: int = 0
    claims: dict[str, Claim] = field(default_factory=dict)


def encode_envelope(
    items: Sequence[Forwarded],
    frontiers: Mapping[str, float] | None = None,
    sources: int = 0,
    claims: Mapping[str, Claim] | None = None,
) -> bytes:
    """One envelope holding ``items`` (in order), the sender's ``frontiers`` and ``claims``.

    >>> e = AccessEvent(ts=1767600000.0, principal="ana", resource="s3://hr/pay.csv")
    >>> decode_envelope(encode_envelope([Forwarded(e, "in", 1.5)]))[0].event == e
    True
    >>> read_envelope(encode_envelope([], {"in:0": 1767600000.0})).frontiers
    {'in:0': 1767600000.0}
    >>> read_envelope(encode_envelope([], claims={"in:0": Claim("a1", 41, 17.0)})).claims
    {'in:0': Claim(epoch='a1', offset=41, frontier=17.0)}
    """
    topics: dict[str, int] = {}
    indices = [topics.setdefault(item.topic, len(topics)) for item in items]
    return orjson.dumps(
        {
            "v": ENVELOPE_VERSION,
            "topics": list(topics),
            "r": [item.received for item in items],
            "t": indices,
            "e": [[getattr(item.event, name) for name in _FIELDS] for item in items],
            "p": [item.partition for item in items],
            "o": [item.offset for item in items],
            "w": dict(frontiers or {}),
            "n": sources,
            "c": {s: [c.epoch, c.offset, c.frontier] for s, c in (claims or {}).items()},
        }
    )


def decode_envelope(raw: bytes | None) -> list[Forwarded]:
    """The events of one envelope; ``SchemaError`` if it is not one this version wrote."""
    return read_envelope(raw).items


def read_envelope(raw: bytes | None) -> Envelope:
    """Events and frontiers of one envelope; ``SchemaError`` if this version did not write it."""
    try:
        obj = orjson.loads(raw or b"")
        if obj.get("v") != ENVELOPE_VERSION:
            raise SchemaError("bad_value", f"envelope version {obj.get('v')!r}")
        topics = obj["topics"]
        count = len(obj["e"])
        partitions = obj.get("p") or [-1] * count
        offsets = obj.get("o") or [-1] * count
        frontiers = {str(k): float(v) for k, v in (obj.get("w") or {}).items()}
        claims = {
            str(k): Claim(str(epoch), int(offset), float(frontier))
            for k, (epoch, offset, frontier) in (obj.get("c") or {}).items()
        }
        unknown = -math.inf
        items = []
        for fields, index, received, p, o in zip(
            obj["e"], obj["t"], obj["r"], partitions, offsets, strict=True
        ):
            topic, partition = topics[index], int(p)
            reported, epoch = unknown, ""
            if partition >= 0:
                source = f"{topic}:{partition}"
                reported = frontiers.get(source, unknown)
                claim = claims.get(source)
                epoch = claim.epoch if claim is not None else ""
            items.append(Forwarded(
                AccessEvent(*fields), topic, received, partition, int(o), reported, epoch
            ))
        return Envelope(items, frontiers, int(obj.get("n") or 0), claims)
    except SchemaError:
        raise
    except (
        orjson.JSONDecodeError,
        AttributeError,
        KeyError,
        TypeError,
        ValueError,
        IndexError,
    ) as exc:
        raise SchemaError("not_json", f"not an envelope: {type(exc).__name__}") from None
