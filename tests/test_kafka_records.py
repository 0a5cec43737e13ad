"""The connector's consumers get ``Record``s built by aiokafka's fetcher, equal to what converting its
``ConsumerRecord``s gives; a consumer with deserializers keeps aiokafka's records.

These read aiokafka's internals (``PartitionRecords._consumer_record``, ``FetchResult._partition_records``,
``Fetcher._records``) on purpose: should they change, the shortcut in ``connector/kafka.py`` stops applying
(silently, records then come the slow way) and these tests fail to say so.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, FetchResult, PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from connector.config import KafkaSettings
from connector.kafka import Consumer, Headers, Partition, Producer, Record, _RecordResults, build_records_directly

TopicFactory = Callable[..., Awaitable[str]]
TP = TopicPartition("orders", 3)

_bytes = st.none() | st.binary(max_size=40)
_headers = st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=8)), max_size=3)
_records = st.lists(st.tuples(_bytes, _bytes, _headers, st.integers(0, 2**41)), min_size=1, max_size=20)


def _partition_records(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int]],
    deserializer: Callable[[bytes | None], Any] | None = None,
) -> PartitionRecords:
    """aiokafka's records of one fetched batch (offsets from 0), as its fetcher builds them."""
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    for index, (key, value, headers, timestamp) in enumerate(records):
        builder.append(index, timestamp, key, value, headers)
    batch = MemoryRecords(bytes(builder.build()))
    return PartitionRecords(TP, batch, [], 0, deserializer, deserializer, True, READ_UNCOMMITTED)


def _stored(results: _RecordResults, records: PartitionRecords) -> list[Any]:
    """What the fetcher hands out for ``records`` once stored in ``results`` (as ``Fetcher`` stores them)."""
    results[TP] = FetchResult(TP, assignment=None, partition_records=records, backoff=0)
    return list(records)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()


@given(_records)
def test_fetched_records_come_out_as_records_equal_to_converted_ones(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int]],
) -> None:
    """Each raw record becomes the ``Record`` that converting aiokafka's ``ConsumerRecord`` gives."""
    expected = [
        Record(m.topic, m.partition, m.offset, m.timestamp, m.key, m.value, tuple(m.headers))
        for m in _partition_records(records)
    ]

    built = _stored(_RecordResults(), _partition_records(records))

    assert [type(r) for r in built] == [Record] * len(records)
    assert built == expected
    assert [r.headers for r in built] == [tuple(h) for _, _, h, _ in records]


def test_a_consumer_with_deserializers_keeps_aiokafkas_records() -> None:
    """Deserialized keys and values are not what ``Record`` holds: such a consumer is left alone."""
    built = _stored(_RecordResults(), _partition_records([(b"k", b"v", [], 1)], deserializer=_text))

    assert type(built[0]) is not Record
    assert (built[0].key, built[0].value) == ("k", "v")


@pytest.mark.integration
async def test_a_started_consumer_fetches_records_built_by_the_fetcher(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory
) -> None:
    """A started consumer's fetcher is switched over, and ``fetch`` gives every field of what was produced."""
    topic = await topic_factory(partitions=2)
    sent = [(f"k{i}".encode(), None if i == 3 else f"v{i}".encode(), (("n", str(i).encode()),)) for i in range(8)]
    consumer = await _consumer_after_producing(kafka_settings, topic, sent)
    try:
        # Installed at start (True again: already in place); False would mean aiokafka's fetcher changed.
        assert build_records_directly(consumer._consumer) is True
        records: list[Record] = []
        async with asyncio.timeout(60):
            while len(records) < len(sent):
                records += await consumer.fetch(timeout_ms=500)
    finally:
        await consumer.stop()

    assert all(type(r) is Record for r in records)
    assert sorted((r.key, r.value, r.headers) for r in records if r.key) == sorted(sent, key=lambda s: s[0] or b"")
    assert all(r.topic == topic and r.timestamp_ms > 0 for r in records)
    by_partition: dict[int, list[int]] = {}
    for r in records:
        by_partition.setdefault(r.partition, []).append(r.offset)
    assert all(offsets == list(range(len(offsets))) for offsets in by_partition.values())


async def test_a_fetched_batch_dropped_for_a_paused_partition_is_freed_without_a_collection(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory
) -> None:
    """The sink pauses partitions for flow control: aiokafka then drops their unread fetched batch, which its
    own reference cycle (records ↔ their generator) kept alive until a full collection. It goes at once now."""
    topic = await topic_factory(partitions=1)
    consumer = await _consumer_after_producing(kafka_settings, topic, [(None, f"v{i}".encode(), ()) for i in range(50)])
    fetched_results = consumer._consumer._fetcher._records
    tp = TopicPartition(topic, 0)
    try:
        first: list[Record] = []
        async with asyncio.timeout(60):
            while not first:
                first = await consumer.fetch(timeout_ms=500, max_records=1)
        unread = fetched_results[tp]._partition_records  # the other 49 records, read no further
        gone = weakref.ref(unread)
        del unread
        gc.disable()  # only reference counting may free it
        try:
            consumer.pause([Partition(topic, 0)])
            assert await consumer.fetch(timeout_ms=100) == []  # drops the paused partition's fetched batch
            assert tp not in fetched_results
            assert gone() is None
        finally:
            gc.enable()
    finally:
        await consumer.stop()
    assert first[0].value == b"v0"


async def _consumer_after_producing(
    kafka_settings: KafkaSettings, topic: str, rows: Sequence[tuple[bytes | None, bytes | None, Headers]]
) -> Consumer:
    """A started consumer of ``topic`` in a new group, after ``rows`` were produced to it."""
    producer = Producer(kafka_settings)
    await producer.start()
    try:
        await producer.send_many(topic, rows)
    finally:
        await producer.stop()

    async def ignore(_partitions: list[Partition]) -> None:
        return None

    consumer = Consumer(kafka_settings, f"group-{uuid.uuid4().hex[:8]}")
    await consumer.start([topic], ignore, ignore)
    return consumer
