"""The webhook producer's partitioner: the same partition as aiokafka's default for every key."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from connector.kafka import CachingPartitioner

DEFAULT = DefaultPartitioner()

partition_lists = st.integers(min_value=1, max_value=64).map(lambda n: list(range(n)))


@given(keys=st.lists(st.binary(max_size=64), min_size=1, max_size=40), partitions=partition_lists)
def test_every_key_gets_the_default_partitioners_partition(keys: list[bytes], partitions: list[int]) -> None:
    """A person's events stay where aiokafka (and the Java client) would put them, cached or not."""
    partitioner = CachingPartitioner(max_keys=8)  # small: the table is emptied several times
    for key in keys + keys:  # the second pass hits the cache (or a refilled one)
        assert partitioner(key, partitions, partitions) == DEFAULT(key, partitions, partitions)


@given(key=st.binary(max_size=32), few=partition_lists, many=partition_lists)
def test_a_cached_key_follows_a_change_in_the_partition_count(key: bytes, few: list[int], many: list[int]) -> None:
    """The hash is cached, not the partition: after partitions are added the key maps as the default does."""
    partitioner = CachingPartitioner()
    assert partitioner(key, few, few) == DEFAULT(key, few, few)
    assert partitioner(key, many, many) == DEFAULT(key, many, many)


def test_the_cache_never_holds_more_than_its_bound() -> None:
    """Many distinct keys never grow the table beyond ``max_keys``."""
    partitioner = CachingPartitioner(max_keys=100)
    for i in range(1_000):
        partitioner(f"user-{i}".encode(), [0, 1, 2], [0, 1, 2])
        assert len(partitioner._hashes) <= 100


def test_no_key_picks_an_available_partition() -> None:
    """Records without a key go to an available partition, as with the default partitioner."""
    partitioner = CachingPartitioner()
    assert {partitioner(None, [0, 1, 2], [1]) for _ in range(20)} == {1}
