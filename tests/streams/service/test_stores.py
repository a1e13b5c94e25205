"""Table stores: the RocksDB store files writes made outside a stream event by key."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import faust
import pytest
from faust.types import TP

from reachwatch.models.errors import ConfigError
from reachwatch.streams.service.settings import Settings
from reachwatch.streams.service.stores import KeyPartitionedRocksDB, faust_store_url
from reachwatch.streams.service.topics import partition_of

pytest.importorskip("rocksdict")  # the [rocksdb] extra; installed by `make test`

KEYS = [b"ana", b"bob", b"s3://hr-private/pay.csv", b"svc-backup", b"carla"]


def _table(datadir: Path, partitions: int = 4) -> object:
    app = faust.App(
        "test-stores",
        broker="kafka://127.0.0.1:9",  # never contacted: no worker starts
        store=faust_store_url("rocksdb://"),
        datadir=str(datadir),
        autodiscover=False,
    )
    table = app.Table(
        "states", partitions=partitions, use_partitioner=True, key_type=bytes,
        value_type=bytes, default=None,
    )
    table.key_serializer = table.value_serializer = "raw"
    return table


def test_a_write_outside_any_stream_event_goes_to_its_keys_partition(tmp_path):
    table = _table(tmp_path)
    store = table.data  # type: ignore[attr-defined]
    assert isinstance(store, KeyPartitionedRocksDB)
    # Faust's own RocksDB store asserts a current stream event here; reachwatch writes
    # states after a micro-batch and at checkpoints, outside any.
    for key in KEYS:
        store[key] = b"state of " + key
    # The partition its changelog entry goes to (use_partitioner), so recovery of that
    # partition reads it back into the same database.
    assert {key: store._key_index[key] for key in KEYS} == {
        key: partition_of(key, 4) for key in KEYS
    }
    for key in KEYS:
        db = store._dbs[partition_of(key, 4)]
        assert db.get(key) == b"state of " + key
    assert store[b"ana"] == b"state of ana"
    del store[b"bob"]
    assert store.get(b"bob") is None


def test_states_written_are_on_disk_for_the_next_start(tmp_path):
    first = _table(tmp_path).data  # type: ignore[attr-defined]
    for key in KEYS:
        first[key] = b"v1 " + key
    for db in first._dbs.values():
        db.close()
    second = _table(tmp_path).data  # type: ignore[attr-defined]
    for partition in range(4):  # what an assignment of every partition opens
        second._db_for_partition(partition)
    assert {key: second.get(key) for key in KEYS} == {key: b"v1 " + key for key in KEYS}


def test_the_store_setting_is_checked_when_settings_are_made(monkeypatch):
    assert Settings(store="rocksdb://").store == "rocksdb://"
    with pytest.raises(ConfigError, match="store must be one of memory://|rocksdb://"):
        Settings(store="redis://")
    real = importlib.util.find_spec

    def without_rocksdict(name: str, *args: object) -> object:
        return None if name == "rocksdict" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_rocksdict)
    with pytest.raises(ConfigError, match=r"pip install 'reachwatch\[rocksdb\]'"):
        Settings(store="rocksdb://")


def test_the_key_count_follows_the_writes_without_iterating_the_keys(tmp_path, monkeypatch):
    table = _table(tmp_path)
    store = table.data  # type: ignore[attr-defined]
    topic = table.changelog_topic_name  # type: ignore[attr-defined]
    monkeypatch.setattr(store.app.assignor, "assigned_actives",
                        lambda: {TP(topic=topic, partition=p) for p in range(4)})
    for partition in range(4):  # what an assignment of every partition opens
        store._db_for_partition(partition)
    for key in KEYS[:3]:
        store[key] = b"v"
    scans: list[object] = []
    real = store._size1
    monkeypatch.setattr(store, "_size1", lambda db: scans.append(db) or real(db))
    assert len(store) == 3
    assert len(scans) == 4  # each partition's database counted once
    store[KEYS[0]] = b"again"  # not a new key
    for key in KEYS[3:]:
        store[key] = b"v"
    del store[KEYS[1]]
    assert len(store) == len(KEYS) - 1 == sum(1 for _ in store.keys())
    assert len(scans) == 4  # and not iterated again
    # Recovery writes bypass the count: the partitions it wrote are counted anew.
    event = SimpleNamespace(message=SimpleNamespace(
        tp=TP(topic=topic, partition=partition_of(b"dora", 4)), offset=0,
        partition=partition_of(b"dora", 4), key=b"dora", value=b"v"))
    store.apply_changelog_batch([event], None, None)
    assert len(store) == len(KEYS)
