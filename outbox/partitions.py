"""The Kafka partition of a session key: the one function the relay (which picks partitions itself
to send per-partition record batches) and every reader looking for a session's records use.

Invariant: `partition_of` is exactly what Kafka's default partitioner (murmur2 of the key, sign bit
cleared, modulo the partition count) gives for a keyed record, so a session lands where a plain
producer `send()` would put it and where a reader that knows only the partition count looks for it.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

MAX_CACHED_KEYS = 100_000


def partition_of(key: str | bytes, partitions: int) -> int:
    """The partition (0..partitions-1) of a record keyed `key` (a session id)."""
    raw = key.encode() if isinstance(key, str) else key
    return (murmur2(raw) & 0x7FFFFFFF) % partitions


class KeyPartitions:
    """`partition_of` per key, cached for a topic's partitions: pure-Python murmur2 per record is costly."""

    def __init__(self) -> None:
        self._partitions: list[int] = []
        self._by_key: dict[bytes, int] = {}

    def update(self, partitions: set[int]) -> None:
        ordered = sorted(partitions)
        if ordered != self._partitions or len(self._by_key) > MAX_CACHED_KEYS:
            self._partitions, self._by_key = ordered, {}

    def __call__(self, key: bytes) -> int:
        partition = self._by_key.get(key)
        if partition is None:
            # As the default partitioner: an index into the topic's partitions, in order.
            partition = self._by_key[key] = self._partitions[partition_of(key, len(self._partitions))]
        return partition
