"""The one partition function (outbox/partitions.py) against Kafka's own default partitioner."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from outbox.partitions import KeyPartitions, partition_of

KEYS = ["case-1", "support-42", "x" * 128, "é-unicode", ""] + [f"s-{i}" for i in range(200)]


def test_partition_of_is_the_default_partitioners_choice_for_every_partition_count() -> None:
    for count in (1, 2, 3, 7, 12):
        partitions = list(range(count))
        for key in KEYS:
            expected = DefaultPartitioner()(key.encode(), partitions, partitions)
            assert partition_of(key, count) == partition_of(key.encode(), count) == expected


def test_key_partitions_cache_follows_the_topics_partitions() -> None:
    choose = KeyPartitions()
    choose.update({0, 1, 2})
    assert [choose(k.encode()) for k in KEYS] == [partition_of(k, 3) for k in KEYS]
    choose.update({0, 1, 2, 3, 4, 5})
    assert [choose(k.encode()) for k in KEYS] == [partition_of(k, 6) for k in KEYS]
