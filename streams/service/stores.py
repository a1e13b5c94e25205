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

from faust.stores import STORES
from faust.stores.rocksdb import Store as RocksDBStore

from reachwatch.streams.service.settings import MEMORY, ROCKSDB
from reachwatch.streams.service.topics import partition_of

# The Faust store URL of each choice (``Settings.store``): RocksDB through the subclass below.
_FAUST_URLS = {MEMORY: "memory://", ROCKSDB: "reachwatch-rocksdb://"}
STORES.aliases["reachwatch-rocksdb"] = "reachwatch.streams.service.stores:KeyPartitionedRocksDB"


def faust_store_url(store: str) -> str:
    """The URL Faust opens tables with for the setting ``store`` (checked by ``Settings``)."""
    return _FAUST_URLS[store]


class KeyPartitionedRocksDB(RocksDBStore):
    """Faust's RocksDB store, filing a write outside a stream event by its key's partition."""

    def _set(self, key: bytes, value: bytes | None) -> None:
        if not self.table.use_partitioner:
            super()._set(key, value)
            return
        partition = partition_of(key, self.table.partitions)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)
