"""The webhook producer's partitioner and batched sends: the same partition as aiokafka's default for every
key, and an answer per record."""

from __future__ import annotations

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from connector.errors import BrokerUnavailableError, RecordTooLargeError
from connector.kafka import CachingPartitioner, Producer, _fail, group_by_partition

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


records_strategy = st.lists(
    st.tuples(st.binary(min_size=1, max_size=32), st.binary(max_size=300)).map(
        lambda kv: (kv[0], kv[1], [("id", kv[0])])
    ),
    max_size=40,
)


@given(records=records_strategy, partitions=partition_lists, limit=st.integers(min_value=50, max_value=400))
def test_a_batch_is_split_by_partition_as_send_would(
    records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]], partitions: list[int], limit: int
) -> None:
    """Batched sends put every key on the default partitioner's partition, keep each partition's records in
    order, and set aside exactly the records too large to send alone (the size bound ``send`` checks)."""
    groups, too_large = group_by_partition(records, CachingPartitioner(max_keys=8), partitions, partitions, limit)
    sizes = [Producer.record_size(key, value, tuple(headers)) for key, value, headers in records]
    assert too_large == [i for i, size in enumerate(sizes) if size > limit]
    for partition, indexes in groups.items():
        assert indexes == sorted(indexes)
        assert all(DEFAULT(records[i][0], partitions, partitions) == partition for i in indexes)
    assert sorted([i for indexes in groups.values() for i in indexes] + too_large) == list(range(len(records)))


def test_a_refused_partition_batch_answers_each_of_its_records_by_the_kind_of_refusal() -> None:
    """A size refusal is RecordTooLargeError (not worth resending unchanged), anything else a plain outage
    (503, Customer.io retries); records of other batches keep their own answers."""
    outcomes: list[BrokerUnavailableError | None] = [None] * 4
    _fail(outcomes, [0, 2], MessageSizeTooLargeError())
    _fail(outcomes, [3], KafkaTimeoutError())
    assert [type(o).__name__ for o in outcomes] == [
        "RecordTooLargeError",
        "NoneType",
        "RecordTooLargeError",
        "BrokerUnavailableError",
    ]
    assert not isinstance(outcomes[3], RecordTooLargeError)
