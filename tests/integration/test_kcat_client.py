"""kcat, the command-line client operators reach for, against a running worker.

Lines go in with ``kcat -P``, alerts and dead letters come out with ``kcat -C -J`` and the
topics are checked with ``kcat -L -J``: nothing here goes through Faust, aiokafka,
kafka-python or the confluent-kafka bindings, only the kcat binary and its librdkafka.

Debian bookworm's kcat 1.7.1 is linked against librdkafka 2.0.2, which cannot read the
ApiVersions v3 response of the embedded tansu 0.6.0: tansu writes the response's tagged
fields even at their default values, and 2.0.2 skips each tagged field one byte short
(``kcat -d protocol`` reports a read underflow at the FinalizedFeaturesEpoch value). No
kcat flag avoids it: librdkafka always asks ApiVersions v3, and ``api.version.request=false``
only stops asking with ``broker.version.fallback`` below 0.10, whose Produce v2 / ListOffsets
v0 requests tansu does not serve. So when the kcat on PATH cannot fetch metadata, the same
binary runs against the librdkafka that ships inside the confluent-kafka wheel (a project
dependency, ABI-compatible), through ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from reachwatch.models.alerts import ALERT_SCHEMA_VERSION
from reachwatch.models.records import parse_timestamp
from reachwatch.streams.local.broker import BrokerProcess
from reachwatch.streams.service.deadletter import DEAD_LETTER_SCHEMA_VERSION
from reachwatch.streams.service.topics import partition_of

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kcat") is None,
                       reason="kcat is not on PATH (Debian package kcat)"),
]

# Each kcat run talks to a broker on loopback: seconds at most; the timeout kills a hang.
KCAT_TIMEOUT_S = 20.0
# Not the default 4 (also tansu's auto-create default), so the metadata shows the worker's.
WORKER_PARTITIONS = 3
# One reason per malformed line; kcat -P splits stdin on newlines, so none may contain one.
MALFORMED_LINES = {
    "not_json": b'{"ts": "2026-03-23T10:00:00Z", "principal": "ana", "resource": ',
    "missing_field": b'{"ts": "2026-03-23T10:00:00Z", "resource": "hr.salaries"}',
    "not_utf8": b"\xff\xfe reachwatch kcat probe",
}


@dataclass(frozen=True)
class Kcat:
    """The kcat binary pointed at one broker, with the environment it needs to talk to it."""

    binary: str
    bootstrap: str
    env: dict[str, str] | None = None  # None: inherit ours, the system librdkafka

    def run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.binary, "-b", self.bootstrap, *args],
            input=stdin,
            capture_output=True,
            timeout=KCAT_TIMEOUT_S,
            env=self.env,
            check=False,
        )

    def librdkafka(self) -> str:
        banner = self.run("-V").stdout.decode(errors="replace")
        found = re.search(r"librdkafka ([0-9.]+)", banner)
        return found.group(1) if found else "unknown"

    def metadata(self, topic: str | None = None) -> dict[str, Any]:
        # Asking about one topic makes tansu auto-create it: only ask once it exists.
        scope = ("-t", topic) if topic else ()
        done = self.run("-L", "-J", "-m", "2", *scope)
        assert done.returncode == 0, f"kcat -L failed: {done.stderr.decode(errors='replace')}"
        return orjson.loads(done.stdout)

    def produce(self, topic: str, lines: list[bytes]) -> None:
        assert not any(b"\n" in line for line in lines), "kcat -P splits on newlines"
        # -z none: the broker stores batches as sent, and uncompressed is what every client
        # reads; -T would echo the lines, -q keeps stderr for real errors.
        done = self.run("-P", "-t", topic, "-z", "none", "-q", stdin=b"\n".join(lines) + b"\n")
        assert done.returncode == 0, f"kcat -P failed: {done.stderr.decode(errors='replace')}"

    def consume_json(self, topic: str) -> list[dict[str, Any]]:
        """Every message on ``topic`` so far, as kcat's JSON envelope (empty if no topic yet)."""
        done = self.run("-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q")
        if done.returncode != 0:  # typically "Unknown topic": nothing published yet
            return []
        return [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def consume_raw(self, topic: str) -> list[tuple[int, int, bytes]]:
        """(partition, offset, value) of every message on ``topic``; values may be any bytes.

        Not -J: kcat writes non-UTF-8 payloads into its JSON unescaped.
        """
        done = self.run("-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%p %o %s\n")
        assert done.returncode == 0, f"kcat -C failed: {done.stderr.decode(errors='replace')}"
        out = []
        for line in done.stdout.splitlines():
            partition, offset, value = line.split(b" ", 2)
            out.append((int(partition), int(offset), value))
        return out

    def consume_until(self, topic: str, until: Callable[[list[dict[str, Any]]], bool],
                      timeout: float) -> list[dict[str, Any]]:
        """Read ``topic`` again until ``until`` holds; the caller asserts on what came back.

        kcat -e stops at the end offsets of the moment, and the worker may still be writing.
        """
        deadline = time.monotonic() + timeout
        while True:
            envelopes = self.consume_json(topic)
            if until(envelopes) or time.monotonic() >= deadline:
                return envelopes
            time.sleep(0.5)


def bundled_librdkafka() -> Path:
    """The librdkafka inside the confluent-kafka wheel (auditwheel renames it)."""
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so*"))
    assert found, f"no bundled librdkafka under {libs}; kcat cannot reach tansu without it"
    return found[0]


def reaches_broker(kcat: Kcat) -> bool:
    return kcat.run("-L", "-J", "-m", "2").returncode == 0


@pytest.fixture(scope="module")
def kcat(broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kcat]:
    binary = shutil.which("kcat")
    assert binary is not None  # the module is skipped otherwise
    plain = Kcat(binary, broker.bootstrap)
    if reaches_broker(plain):
        yield plain
        return
    # kcat asks the dynamic loader for librdkafka.so.1: give it a directory holding only that.
    libdir = tmp_path_factory.mktemp("kcat-librdkafka")
    (libdir / "librdkafka.so.1").symlink_to(bundled_librdkafka())
    search = [str(libdir), *filter(None, [os.environ.get("LD_LIBRARY_PATH")])]
    shimmed = Kcat(binary, broker.bootstrap, {**os.environ, "LD_LIBRARY_PATH": ":".join(search)})
    assert reaches_broker(shimmed), (
        f"kcat cannot fetch metadata with librdkafka {plain.librdkafka()} nor "
        f"{shimmed.librdkafka()}: {shimmed.run('-L', '-m', '2').stderr.decode(errors='replace')}"
    )
    yield shimmed


def test_kcat_metadata_shows_input_topic_with_the_workers_partitions(service, start_worker,
                                                                     kcat):
    worker = start_worker(REACHWATCH_PARTITIONS=str(WORKER_PARTITIONS))
    status = worker.wait_assigned()

    (topic,) = kcat.metadata(service.input_topic)["topics"]

    partitions = sorted(p["partition"] for p in topic["partitions"])
    assert topic["topic"] == service.input_topic
    assert partitions == list(range(WORKER_PARTITIONS))
    assert all(p["leader"] >= 0 for p in topic["partitions"]), topic
    # The worker alone in its group consumes every one of them.
    prefix = f"{service.input_topic}:"
    assigned = sorted(int(tp[len(prefix):]) for tp in status["assigned"] if tp.startswith(prefix))
    assert assigned == partitions


def test_lines_produced_with_kcat_come_back_as_an_alert_and_dead_letters(
    company, service, start_worker, kcat
):
    worker = start_worker()
    worker.wait_assigned()
    good = company.lines_between(company.incident_start - 1800, company.incident_end)
    bad = list(MALFORMED_LINES.values())
    half = len(good) // 2
    kcat.produce(service.input_topic, bad[:1] + good[:half] + bad[1:] + good[half:])
    entity = company.incident["entity"]

    def caught(envelopes: list[dict[str, Any]]) -> bool:
        return any(orjson.loads(e["payload"])["entity"] == entity for e in envelopes)

    alert_envelopes = kcat.consume_until(service.alerts_topic, caught, timeout=90)
    letter_envelopes = kcat.consume_until(
        service.dlq_topic, lambda found: len(found) >= len(bad), timeout=30
    )
    placed = {value: (partition, offset)
              for partition, offset, value in kcat.consume_raw(service.input_topic)}

    # -- the alert, as a SIEM reading the topic with kcat would see it
    mine = [e for e in alert_envelopes
            if orjson.loads(e["payload"])["entity"] == entity
            and orjson.loads(e["payload"])["kind"] == "broad_audience"]
    assert mine, (
        f"no broad_audience alert for {entity} in {len(alert_envelopes)} messages; "
        f"status {worker.status()}\n{worker.log_tail(30)}"
    )
    envelope = min(mine, key=lambda e: (e["partition"], e["offset"]))
    alert = orjson.loads(envelope["payload"])
    assert alert["schema_version"] == ALERT_SCHEMA_VERSION
    assert re.fullmatch(r"[0-9a-f]{32}", alert["alert_id"])
    assert alert["entity_type"] == "resource"
    assert alert["model_version"] == company.version
    assert alert["severity"] in ("high", "critical")  # restricted data: high at least
    assert company.incident_start <= parse_timestamp(alert["ts"]) <= company.incident_end
    assert alert["evidence"] and all("feature" in item and "value" in item
                                     for item in alert["evidence"])
    assert alert["sample"] and all("principal" in read for read in alert["sample"])
    assert alert["summary"]
    # Keyed by entity with the Java client's partitioner, so any consumer can find it.
    (alerts_topic,) = kcat.metadata(service.alerts_topic)["topics"]
    assert envelope["key"] == entity
    assert envelope["partition"] == partition_of(entity.encode(), len(alerts_topic["partitions"]))

    # -- every malformed line dead-lettered verbatim, with its reason and where it was
    letters = [orjson.loads(e["payload"]) for e in letter_envelopes]
    by_reason = {letter["reason"]: letter for letter in letters}
    assert sorted(by_reason) == sorted(MALFORMED_LINES), [lt["reason"] for lt in letters]
    for reason, line in MALFORMED_LINES.items():
        letter = by_reason[reason]
        assert letter["schema_version"] == DEAD_LETTER_SCHEMA_VERSION
        assert base64.b64decode(letter["value"]) == line
        assert letter["detail"]
        source = letter["source"]
        assert source["topic"] == service.input_topic
        assert (source["partition"], source["offset"]) == placed.get(line), (
            f"{reason}: kcat saw the line at {placed.get(line)}, the dead letter says {source}"
        )
