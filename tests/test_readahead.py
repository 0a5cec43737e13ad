"""The consumer's read-ahead: one budget for the process, divided among the partitions assigned."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import given
from hypothesis import strategies as st

from connector.config import KafkaSettings
from connector.kafka import Consumer, Partition
from connector.readahead import MAX_PARTITION_FETCH_BYTES, MIN_PARTITION_FETCH_BYTES, partition_fetch_bytes
from tests.conftest import TopicFactory

MIB = 1_048_576


def test_few_partitions_fetch_as_before_and_many_share_the_budget() -> None:
    """1–8 partitions under a 16 MiB budget keep 2 MiB each; 12 get a twelfth; 50 stop at the 1 MiB floor."""
    assert partition_fetch_bytes(16 * MIB, 1, 8 * MIB) == 2 * MIB
    assert partition_fetch_bytes(16 * MIB, 8, 8 * MIB) == 2 * MIB
    assert partition_fetch_bytes(16 * MIB, 12, 8 * MIB) == 16 * MIB // 12
    assert partition_fetch_bytes(16 * MIB, 50, 8 * MIB) == MIN_PARTITION_FETCH_BYTES
    assert partition_fetch_bytes(16 * MIB, 0, 8 * MIB) == 2 * MIB  # nothing assigned yet


def test_a_request_smaller_than_two_mib_caps_each_partition() -> None:
    """CONNECTOR_FETCH_MAX_BYTES=1 MiB: no partition asks for more than the whole request may carry."""
    assert partition_fetch_bytes(16 * MIB, 1, MIB) == MIB


@given(
    budget=st.integers(MIB, 1 << 34),
    partitions=st.integers(0, 100_000),
    fetch_max=st.integers(MIB, 1 << 30),
)
def test_the_share_stays_between_floor_and_ceiling_and_within_the_budget(
    budget: int, partitions: int, fetch_max: int
) -> None:
    """Each partition may always hold a whole default-size batch; above the floor, all of them fit the budget."""
    size = partition_fetch_bytes(budget, partitions, fetch_max)
    ceiling = min(fetch_max, MAX_PARTITION_FETCH_BYTES)
    assert min(MIN_PARTITION_FETCH_BYTES, ceiling) <= size <= ceiling
    if size > MIN_PARTITION_FETCH_BYTES:
        assert size * max(1, partitions) <= budget
    assert partition_fetch_bytes(budget, partitions + 1, fetch_max) <= size  # more partitions, never more each


async def test_the_consumer_divides_its_budget_among_the_partitions_it_is_assigned(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory
) -> None:
    """A member assigned 12 partitions fetches each with a twelfth of CONNECTOR_FETCH_BUDGET_BYTES, not 2 MiB."""
    topic = await topic_factory(12)
    consumer = Consumer(
        kafka_settings, f"test-{uuid.uuid4().hex[:8]}", fetch_max_bytes=8 * MIB, fetch_budget_bytes=16 * MIB
    )
    assert consumer.partition_fetch_bytes == 2 * MIB  # before any assignment
    assigned = asyncio.Event()

    async def on_assigned(partitions: list[Partition]) -> None:
        if partitions:
            assigned.set()

    async def on_revoked(_partitions: list[Partition]) -> None:
        return None

    await consumer.start([topic], on_revoked, on_assigned)
    try:
        fetching = asyncio.create_task(consumer.fetch(100))  # the group is joined inside the poll
        await asyncio.wait_for(assigned.wait(), 60)
        await fetching
        assert len(consumer.assignment()) == 12
        assert consumer.partition_fetch_bytes == 16 * MIB // 12
    finally:
        await consumer.stop()
