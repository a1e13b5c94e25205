"""Where the worker's tables keep their state: in memory, or on disk in RocksDB.

``REACHWATCH_STORE=memory://`` (the default) holds every table in memory and rebuilds it
from its changelog topic whenever a worker starts. ``rocksdb://`` keeps each table
partition in a RocksDB database under the worker's data dir (Faust's RocksDB store,
through the ``rocksdict`` bindings: ``pip install 'reachwatch[rocksdb]'``): a restarted
worker reads only the changelog written since its last flush, and entity states live on
disk rather than in the heap.

Faust's RocksDB store takes the partition of every write from the stream event being
processed (``faust/stores/rocksdb.py``, ``Store._set``: ``assert event is not None``).
reachwatch writes its states after a micro-batch, and at checkpoints, outside any event
(``streams.service.statecache``), and its tables write their changelog with the key
partitioner (``use_partitioner``, ``streams.service.topics``). So this store files a write
in the partition its key hashes to, the same partition its changelog entry goes to, which
is the partition recovery reads it back into.
"""

from __future__ import annotations

from typing import Any

from faust.stores import STORES
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from reachwatch.streams.service.settings import MEMORY, ROCKSDB
from reachwatch.streams.service.topics import partition_of

# The Faust store URL of each choice (``Settings.store``): RocksDB through the subclass below.
_FAUST_URLS = {MEMORY: "memory://", ROCKSDB: "reachwatch-rocksdb://"}
STORES.aliases["reachwatch-rocksdb"] = "reachwatch.streams.service.stores:KeyPartitionedRocksDB"


def faust_store_url(store: str) -> str:
    """The URL Faust opens tables with for the setting ``store`` (checked by ``Settings``)."""
    return _FAUST_URLS[store]


class KeyPartitionedRocksDB(RocksDBStore):
    """Faust's RocksDB store, filing a write outside a stream event by its key's partition,
    and counting its keys as it writes.

    Faust's store answers ``len(table)`` by iterating every key of every partition; the
    worker asks it for its entity counts (``/status``, the entity gauge, the entity cap)
    and the alert log after every alert, so on a table of 300k states it spent most of a
    fill iterating keys (py-spy, ``bench/restart.py``). Here each partition's count is
    taken once by iterating (when its database is opened anew or recovery wrote to it) and
    kept up to date by the writes: one ``get`` per write tells a new key from an old one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per partition: (the database counted, its number of keys).
        self._counts: dict[int, tuple[Any, int]] = {}

    def _set(self, key: bytes, value: bytes | None) -> None:
        if not self.table.use_partitioner:
            self._counts.clear()  # by the current event's partition: counted again
            super()._set(key, value)
            return
        partition = partition_of(key, self.table.partitions)
        db = self._db_for_partition(partition)
        counted = self._counts.get(partition)
        if counted is not None and counted[0] is db and db.get(key) is None:
            self._counts[partition] = (db, counted[1] + 1)
        self._key_index[key] = partition
        db.put(key, value)

    def _del(self, key: bytes) -> None:
        if not self.table.use_partitioner:
            self._counts.clear()
        else:
            partition = partition_of(key, self.table.partitions)
            counted = self._counts.get(partition)
            db = self._dbs.get(partition)
            if counted is not None and counted[0] is db and db.get(key) is not None:
                self._counts[partition] = (db, counted[1] - 1)
        super()._del(key)

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        events = list(batch)
        super().apply_changelog_batch(events, to_key, to_value)
        for partition in {event.message.partition for event in events}:
            self._counts.pop(partition, None)

    def _size(self) -> int:
        actives = self.app.assignor.assigned_actives()
        topic = self.table.changelog_topic_name
        total = 0
        for partition, db in list(self._dbs.items()):
            if TP(topic=topic, partition=partition) in actives or self.table.is_global:
                counted = self._counts.get(partition)
                if counted is None or counted[0] is not db:
                    counted = self._counts[partition] = (db, self._size1(db))
                total += counted[1]
        return total
