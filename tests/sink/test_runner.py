"""The runner (``Sink``) without a broker: backpressure thresholds, commits across offset gaps, revocation.

Kafka is the in-memory consumer and producer of ``memory_sink``; Customer.io is the project's fake over
real sockets. Every wait is on a condition (``wait_for``), never a sleep.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest

from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import Partition
from connector.sink import runner
from connector.sink.runner import Sink
from tests.sink.memory_sink import (
    EVENTS,
    FAKE,
    GatedProducer,
    MemoryConsumer,
    MemoryProducer,
    record,
    started_sink,
    wait_for,
)

P0 = Partition(EVENTS, 0)
P1 = Partition(EVENTS, 1)
NOT_JSON = b"not json"


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE]) as fake:
        yield fake


def track(n: int) -> bytes:
    """A track event (one operation)."""
    return orjson.dumps({"type": "track", "userId": f"u{n}", "event": "Visited", "messageId": f"m{n}"})


def _sink_at_a_bound_of(
    bound: int, fake: FakeCustomerIO, consumer: MemoryConsumer, producer: GatedProducer
) -> contextlib.AbstractAsyncContextManager[Sink]:
    """The sink with CONNECTOR_MAX_BUFFERED_OPERATIONS=``bound``, fetching 10 records at a time."""
    return started_sink(
        fake, consumer, producer, CONNECTOR_MAX_BUFFERED_OPERATIONS=str(bound), CONNECTOR_MAX_POLL_RECORDS="10"
    )


async def test_intake_pauses_at_the_bound_and_resumes_below_half_of_it(
    fake: FakeCustomerIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records waiting for the dead-letter writer count against the bound: every partition pauses when
    they reach CONNECTOR_MAX_BUFFERED_OPERATIONS (a stop that lasts: here at once), and stays paused until
    they are below half of it."""
    monkeypatch.setattr(runner, "HOLD_WITHOUT_PAUSE_SECONDS", 0.0)
    records = [record(i, NOT_JSON, partition=i % 2) for i in range(150)]
    consumer, producer = MemoryConsumer(records), GatedProducer(gated=True)
    bound = 100
    async with _sink_at_a_bound_of(bound, fake, consumer, producer):
        await wait_for(lambda: consumer.paused == {P0, P1}, "every partition paused")
        assert consumer.handed_out == bound  # not one fetch more: the check runs before each fetch

        producer.allow(bound // 2)  # 50 dead letters written, 50 still waiting: not below half
        await wait_for(lambda: len(producer.sent) == bound // 2, "50 dead letters written")
        fetches = consumer.fetches
        await wait_for(lambda: consumer.fetches >= fetches + 2, "two more backpressure passes")
        assert consumer.paused == {P0, P1}
        assert consumer.handed_out == bound

        producer.allow(1)  # 49 waiting: below half
        await wait_for(lambda: not consumer.paused, "intake resumed")
        producer.allow(len(records))
        await wait_for(consumer.all_committed.is_set, "every record committed")
    assert len(producer.sent) == len(records)


async def test_a_brief_stop_at_the_bound_fetches_nothing_and_pauses_nothing(
    fake: FakeCustomerIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the bound the sink stops fetching without pausing (a pause makes aiokafka drop what it has
    prefetched, to fetch it again after the resume), as long as the stop is brief; below half of the
    bound it fetches again, and every record is delivered."""
    monkeypatch.setattr(runner, "HOLD_WITHOUT_PAUSE_SECONDS", 3600.0)  # never long enough to pause here
    records = [record(i, NOT_JSON, partition=i % 2) for i in range(150)]
    consumer, producer = MemoryConsumer(records), GatedProducer(gated=True)
    bound = 100
    async with _sink_at_a_bound_of(bound, fake, consumer, producer):
        await wait_for(lambda: consumer.handed_out == bound, "the bound reached")
        fetches = consumer.fetches
        producer.allow(bound // 2)  # 50 dead letters written, 50 still waiting: not below half
        await wait_for(lambda: len(producer.sent) == bound // 2, "50 dead letters written")
        assert consumer.paused == set()
        assert consumer.fetches == fetches  # intake held: not even an empty poll
        assert consumer.handed_out == bound

        producer.allow(1)  # 49 waiting: below half
        await wait_for(lambda: consumer.handed_out > bound, "intake resumed")
        assert consumer.paused == set()
        producer.allow(len(records))
        await wait_for(consumer.all_committed.is_set, "every record committed")
    assert len(producer.sent) == len(records)


async def test_offsets_with_gaps_are_committed_to_the_last_one_plus_one(fake: FakeCustomerIO) -> None:
    """Offsets 0, 1, 5, 9 (transaction markers take the others): the commit reaches 10, never waiting for
    2-4 or 6-8, and never passes offset 1 while its dead letter is unwritten."""
    records = [record(0, track(0)), record(1, NOT_JSON), record(5, track(5)), record(9, track(9))]
    consumer, producer = MemoryConsumer(records), GatedProducer(gated=True)
    async with started_sink(fake, consumer, producer):
        await wait_for(lambda: consumer.committed_offsets.get(P0) == 1, "offset 0 committed")
        await wait_for(lambda: len(fake.state.operations_for(FAKE.name)) == 3, "0, 5 and 9 delivered")
        assert producer.waiting == 1  # offset 1's dead letter is still unwritten
        producer.allow()
        await wait_for(lambda: consumer.committed_offsets.get(P0) == 10, "the last offset + 1 committed")
    assert [c[P0] for c in consumer.commits if P0 in c] == [1, 10]


async def test_a_revoked_partition_is_never_committed_after_its_revocation(
    fake: FakeCustomerIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work in flight past the grace period is abandoned: its late completions commit nothing, while the
    partition still owned commits as usual."""
    monkeypatch.setattr(runner, "REVOKE_GRACE_SECONDS", 0.05)
    fake.state.revoke(FAKE.name)  # the workspace stops: every record stays in flight
    records = [record(i, track(i), partition=p) for i in range(5) for p in (0, 1)]
    consumer = MemoryConsumer(records)
    async with started_sink(fake, consumer, MemoryProducer()) as sink:
        (delivery,) = sink.deliveries.values()
        await wait_for(lambda: consumer.handed_out == len(records) and not delivery.ready, "all held")
        consumer.revoke_at_next_fetch([P0])
        await wait_for(consumer.revoked.is_set, "P0 revoked")
        commits_at_revocation = len(consumer.commits)

        fake.state.restore(FAKE.name)  # the held batches complete now, after the revocation
        await wait_for(lambda: consumer.committed_offsets.get(P1) == 5, "P1 committed")
        await wait_for(lambda: delivery.buffered == 0, "every operation resolved or abandoned")
    assert P0 not in consumer.committed_offsets
    assert all(P0 not in c for c in consumer.commits[commits_at_revocation:])


async def test_work_finishing_within_the_grace_period_is_committed_at_revocation(fake: FakeCustomerIO) -> None:
    """Records of a revoked partition that resolve during the grace period are committed before it goes."""
    fake.state.revoke(FAKE.name)
    records = [record(i, track(i)) for i in range(5)]
    consumer = MemoryConsumer(records)
    async with started_sink(fake, consumer, MemoryProducer()) as sink:
        (delivery,) = sink.deliveries.values()
        await wait_for(lambda: consumer.handed_out == len(records) and not delivery.ready, "all held")
        consumer.revoke_at_next_fetch([P0])
        await wait_for(consumer.revoking.is_set, "the revocation waiting for work in flight")
        assert not consumer.revoked.is_set()
        fake.state.restore(FAKE.name)  # within the (default, 10 s) grace period
        await wait_for(consumer.revoked.is_set, "P0 revoked")
    assert consumer.committed_offsets == {P0: 5}
