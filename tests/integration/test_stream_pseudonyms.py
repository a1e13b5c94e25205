"""A pseudonymised model served by a pseudonymising worker: raw names in, none out.

The incident is produced raw to Kafka, as a log shipper would; the worker's ingest chain
replaces principals before any state, envelope or alert holds them. No raw principal may
reach the alerts topic, the state changelogs, the internal topics, the dead letters (of
lines rejected on purpose) or the worker's log.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from reachwatch.models.registry import Registry
from reachwatch.models.training import TrainingParams, fit
from reachwatch.streams.formats.adapters import get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.pseudonyms import PSEUDONYM_PATTERN, Pseudonymizer, new_key

pytestmark = pytest.mark.integration


@pytest.fixture
def pseudonymised(company, tmp_path: Path) -> tuple[Path, Path, Pseudonymizer]:
    """(key file, registry, pseudonymizer): the company's history trained through a chain
    that pseudonymises principals."""
    key = tmp_path / "secret" / "pseudonym.key"
    new_key(key)
    names = Pseudonymizer.from_key_file(key)
    chain = Chain(get_adapter("native"), pseudonymizer=names)
    history = [
        chain.event(orjson.loads(line))
        for line in (company.data / "history.jsonl").read_bytes().splitlines() if line.strip()
    ]
    fitted = fit(sorted(history, key=lambda e: e.ts),
                 params=TrainingParams(n_estimators=50, seed=0))
    fitted.metadata.update(chain.describe())
    registry = Registry(tmp_path / "registry")
    registry.promote(registry.write(fitted.detectors, fitted.profiles, fitted.metadata))
    return key, registry.root, names


def _raw_principals(company) -> set[str]:
    principals = set()
    for name in ("history.jsonl", "test.jsonl"):
        for line in (company.data / name).read_bytes().splitlines():
            if line.strip():
                principals.add(orjson.loads(line)["principal"])
    return principals


def _leaks(principals: set[str], blobs: dict[str, bytes]) -> list[tuple[str, str]]:
    return sorted((p, where) for where, blob in blobs.items() for p in principals
                  if p.encode() in blob)


def test_a_pseudonymising_worker_alerts_without_a_raw_principal_anywhere(
    company, service, start_worker, clients, pseudonymised
) -> None:
    key, registry, names = pseudonymised
    worker = start_worker(REACHWATCH_REGISTRY_DIR=str(registry),
                          REACHWATCH_PSEUDONYM_KEY_FILE=str(key))
    worker.wait_assigned()
    lines = company.lines_between(company.day_start, company.incident_end)
    # Rejected lines naming real people, keyed by one: their dead letters name no one.
    bad = [orjson.dumps({**orjson.loads(line), "ts": "yesterday"}) for line in lines[:3]]
    clients.produce_confluent(service.input_topic, lines)
    clients.produce_confluent(service.input_topic, bad,
                              key=orjson.loads(lines[0])["principal"].encode())
    lines = lines + bad
    entity = company.incident["entity"]

    def caught(alerts):
        return any(a["kind"] == "broad_audience" and a["entity"] == entity for a in alerts)

    alerts = clients.read_topic(service.alerts_topic, caught, timeout=180)
    assert caught(alerts), (
        f"no broad_audience alert for {entity}; got {[(a['kind'], a['entity']) for a in alerts]}"
        f"\n{worker.log_tail(40)}"
    )
    # Everything the test day sent has been through the worker before the state is read.
    worker.wait_until(lambda s: s["messages_in"] >= len(lines), 120, "every message")
    sampled = [s["principal"] for a in alerts for s in a.get("sample") or () if "principal" in s]
    assert sampled and all(PSEUDONYM_PATTERN.match(p) for p in sampled)
    readers = [a["entity"] for a in alerts if a["kind"] == "broad_reader"]
    assert all(PSEUDONYM_PATTERN.match(p) for p in readers)

    worker.stop()  # flushes the changelogs and the log
    blobs: dict[str, bytes] = {}
    internal = {
        "alerts": service.alerts_topic,
        "principal state": f"{service.app_id}-principal-state-changelog",
        "resource state": f"{service.app_id}-resource-state-changelog",
        "events by principal": f"{service.app_id}-events-by-principal",
        "events by resource": f"{service.app_id}-events-by-resource",
        "dead letters": service.dlq_topic,
    }
    for what, topic in internal.items():
        # All of it: polled until the timeout, as nothing new is written any more.
        messages = clients.read_messages(topic, lambda got: False, timeout=5)
        assert messages, f"nothing on {topic}: the scan would prove nothing"
        blobs[what] = b"\n".join((m.key or b"") + b"\t" + (m.value or b"") for m in messages)
    blobs["worker log"] = worker.log_path.read_bytes()
    # The scan can see a principal: one who read today is in the state, as a pseudonym.
    reader = orjson.loads(lines[-1])["principal"]
    assert names.principal(reader).encode() in blobs["principal state"]
    assert _leaks(_raw_principals(company), blobs) == []
