"""Batched produce: events of one moment share one send, each still gets its own answer."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from connector.errors import BrokerUnavailableError, RecordTooLargeError
from connector.metrics import Metrics
from connector.webhook.dedup import RecentIds
from connector.webhook.delivery import EventDelivery, Outcome
from connector.webhook.normalize import NormalizedEvent
from tests.webhook.webhook_support import FakeProducer, until


def event(event_id: str, size: int = 10) -> NormalizedEvent:
    """A normalized event whose value is ``size`` bytes."""
    return NormalizedEvent(event_id, {}, b"v" * size, event_id.encode(), (("id", event_id.encode()),), "email", "sent")


def delivery(producer: FakeProducer, produce_timeout: float = 30.0) -> EventDelivery:
    """An EventDelivery over ``producer`` on a fresh registry."""
    return EventDelivery(
        producer,
        "webhooks",
        produce_timeout=produce_timeout,
        recent=RecentIds(3600, 1000),
        metrics=Metrics(CollectorRegistry()),
        clock=lambda: 1000.0,
    )


async def outcome(pending: asyncio.Future[Outcome]) -> str:
    """The answer a request would give: the outcome, or 503 for BrokerUnavailableError."""
    try:
        return await pending
    except BrokerUnavailableError:
        return "503"


async def test_events_arriving_while_a_batch_is_in_flight_share_the_next_send() -> None:
    """Many concurrent webhooks cost two sends, not one each, and every one is acknowledged."""
    producer = FakeProducer()
    producer.gate = asyncio.Event()
    events = delivery(producer)
    first = asyncio.ensure_future(events.deliver(event("e0")))
    await until(lambda: producer.calls == 1)  # e0 is in flight, alone
    rest = [asyncio.ensure_future(events.deliver(event(f"e{i}"))) for i in range(1, 50)]
    await until(lambda: events.pending == 50)
    assert producer.batches == [1]  # the others wait for e0's ack instead of each being sent
    producer.gate.set()
    assert await asyncio.gather(first, *rest) == ["accepted"] * 50
    assert producer.batches == [1, 49]
    assert sorted(key or b"" for _, key, _, _ in producer.records) == sorted(f"e{i}".encode() for i in range(50))
    assert events.pending == 0


async def test_a_retry_of_an_id_pending_in_a_batch_is_not_produced_twice() -> None:
    """A retry after its batch's deadline joins that batch (with a deadline of its own) instead of re-producing."""
    producer = FakeProducer()
    producer.gate = asyncio.Event()
    events = delivery(producer, produce_timeout=2.0)
    assert await outcome(asyncio.ensure_future(events.deliver(event("a")))) == "503"  # deadline, still in flight
    batch_mates = [asyncio.ensure_future(events.deliver(event(f"b{i}"))) for i in range(3)]
    retry = asyncio.ensure_future(events.deliver(event("a")))
    await until(lambda: events.pending == 4)
    producer.gate.set()
    assert await retry == "duplicate"
    assert await asyncio.gather(*batch_mates) == ["accepted"] * 3
    assert await events.deliver(event("a")) == "duplicate"
    assert [key for _, key, _, _ in producer.records] == [b"a", b"b0", b"b1", b"b2"]
    assert producer.batches == [1, 3]


async def test_one_event_too_large_does_not_fail_its_batch_mates() -> None:
    """The too-large event alone gets 503 (as before batching); the others of its batch are accepted."""
    producer = FakeProducer()
    producer.gate = asyncio.Event()
    producer.too_large_above = 100
    events = delivery(producer)
    first = asyncio.ensure_future(events.deliver(event("first")))
    await until(lambda: producer.calls == 1)
    small = [asyncio.ensure_future(events.deliver(event(f"s{i}"))) for i in range(5)]
    large = asyncio.ensure_future(events.deliver(event("large", size=1000)))
    await until(lambda: events.pending == 7)
    producer.gate.set()
    assert await asyncio.gather(first, *small) == ["accepted"] * 6
    with pytest.raises(RecordTooLargeError):
        await large
    assert producer.batches == [1, 6]
    assert b"large" not in {key for _, key, _, _ in producer.records}


async def test_kafka_never_answering_gives_every_request_of_a_batch_503_in_time() -> None:
    """A batch Kafka does not acknowledge: each of its requests is answered within produce_timeout."""
    producer = FakeProducer()
    producer.gate = asyncio.Event()  # never set: the broker never answers
    events = delivery(producer, produce_timeout=0.2)
    async with asyncio.timeout(30):  # generous: a deadline that never fires must fail, not hang
        first = await asyncio.gather(
            *(outcome(asyncio.ensure_future(events.deliver(event(f"a{i}")))) for i in range(20))
        )
        second = await asyncio.gather(
            *(outcome(asyncio.ensure_future(events.deliver(event(f"b{i}")))) for i in range(20))
        )
    assert first + second == ["503"] * 40
    assert events.pending == 40  # still pending: a retry joins its batch instead of producing it again
    assert await events.settle(0.01) == 40


async def test_a_cancelled_request_does_not_fail_the_others_of_its_batch() -> None:
    """Requests share their batch's future; cancelling one (client gone, shutdown) leaves the others waiting."""
    producer = FakeProducer()
    producer.gate = asyncio.Event()
    events = delivery(producer)
    first = asyncio.ensure_future(events.deliver(event("first")))
    await until(lambda: producer.calls == 1)
    mates = [asyncio.ensure_future(events.deliver(event(f"m{i}"))) for i in range(3)]
    await until(lambda: events.pending == 4)
    mates[0].cancel()
    first.cancel()
    await asyncio.gather(mates[0], first, return_exceptions=True)
    assert mates[0].cancelled()
    assert first.cancelled()
    producer.gate.set()
    assert await asyncio.gather(*mates[1:]) == ["accepted", "accepted"]
    assert len(producer.records) == 4  # the cancelled requests' events were produced too (a retry: duplicate)
    assert await events.deliver(event("m0")) == "duplicate"


async def test_an_event_joining_a_batch_past_its_deadline_still_gets_its_own_wait() -> None:
    """Behind a batch Kafka is slow to acknowledge, the next batch collects past its deadline; an event
    joining it then is not answered 503 at once: it waits produce_timeout like any other."""
    producer = FakeProducer()
    producer.gate = asyncio.Event()
    events = delivery(producer, produce_timeout=0.3)
    slow = asyncio.ensure_future(events.deliver(event("slow")))
    await until(lambda: producer.calls == 1)
    assert await outcome(asyncio.ensure_future(events.deliver(event("early")))) == "503"  # its deadline passed
    late = asyncio.ensure_future(events.deliver(event("late")))  # joins the same, still collecting, batch
    await until(lambda: events.pending == 3)
    await asyncio.sleep(0)  # one loop turn: an instant 503 would be ready now
    assert not late.done()
    producer.gate.set()
    assert await late == "accepted"
    assert await outcome(slow) == "503"  # its deadline came before early's
    assert [key for _, key, _, _ in producer.records] == [b"slow", b"early", b"late"]  # each once, all stored


async def test_a_batch_stuck_in_flight_holds_the_next_one_back_at_most_one_timeout() -> None:
    """A batch Kafka does not acknowledge (a partition leader moving) must not keep every later webhook out
    of the producer until aiokafka gives up on it: once the next batch has waited produce_timeout, the next
    webhook sends it, and those records are acknowledged even though the stuck batch never is."""
    producer = FakeProducer()
    stuck = asyncio.Event()  # the first send never returns
    producer.gate = stuck
    events = delivery(producer, produce_timeout=0.3)
    first = asyncio.ensure_future(events.deliver(event("stuck")))
    await until(lambda: producer.calls == 1)
    producer.gate = None  # later sends are acknowledged at once
    assert await outcome(asyncio.ensure_future(events.deliver(event("early")))) == "503"  # held behind "stuck"
    assert producer.batches == [1]
    assert await events.deliver(event("late")) == "accepted"  # sends "early" and "late" without "stuck"
    assert producer.batches == [1, 2]
    assert await events.deliver(event("early")) == "duplicate"  # Customer.io's retry finds it produced
    assert [key for _, key, _, _ in producer.records] == [b"early", b"late"]
    assert await outcome(first) == "503"
    assert await events.settle(0.01) == 1


async def test_the_next_batch_is_queued_before_the_acknowledged_webhooks_are_answered() -> None:
    """When a batch is acknowledged, the batch collected behind it is already in the producer by the time the
    first of the acknowledged webhooks is answered: the broker is not kept waiting for the answers (and the
    loop turns they take) before it gets the next produce request."""
    producer = FakeProducer()
    producer.gate = asyncio.Event()
    events = delivery(producer)

    async def answered(e: NormalizedEvent) -> list[int]:
        """What the producer had been handed when this webhook's answer was ready."""
        await events.deliver(e)
        return list(producer.batches)

    first = asyncio.ensure_future(answered(event("e0")))
    await until(lambda: producer.calls == 1)
    rest = [asyncio.ensure_future(events.deliver(event(f"e{i}"))) for i in range(1, 4)]
    await until(lambda: events.pending == 4)
    producer.gate.set()
    assert await first == [1, 3]
    assert await asyncio.gather(*rest) == ["accepted"] * 3
