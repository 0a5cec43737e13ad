"""The dead-letter writer without a broker: a record is resolved only once Kafka acknowledged its copy.

The producer is ``memory_sink.GatedProducer``: the test lets each write through and decides whether it
fails with BrokerUnavailableError, so every retry is observed rather than timed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from connector.kafka import Headers, Partition, Record
from connector.metrics import Metrics
from connector.sink.dlq import DeadLetterWriter
from connector.sink.retry import RetryPolicy
from connector.sink.tickets import DeadLetterReason, Ticket
from tests.sink.memory_sink import GatedProducer, Resolved, wait_for

DLQ_TOPIC = "events-dlq"
TINY = RetryPolicy(initial_seconds=0.001, max_seconds=0.005, retry_after_cap_seconds=0.0)
REJECTED = DeadLetterReason("rejected", "Customer.io rejected the operation: name: too long", "acme", 400)


def dead_ticket(resolved: Resolved, reason: DeadLetterReason = REJECTED, headers: Headers = ()) -> Ticket:
    """A resolved record of events-3 at offset 41 whose ticket carries ``reason``."""
    record = Record("events", 3, 41, 1_700_000_000_123, b"user-7", b'{"type":"track"}', headers)
    ticket = Ticket(record, Partition("events", 3), 1, resolved)
    ticket.reject(reason)
    return ticket


def at_gate(producer: GatedProducer, attempt: int) -> Callable[[], bool]:
    """Whether write attempt number ``attempt`` is waiting at the producer's gate."""
    return lambda: producer.attempts == attempt and producer.waiting == 1


@contextlib.asynccontextmanager
async def writing(producer: GatedProducer, resolved: Resolved) -> AsyncIterator[tuple[DeadLetterWriter, Metrics]]:
    """A running writer on ``producer`` whose written tickets go to ``resolved``."""
    metrics = Metrics()
    writer = DeadLetterWriter(producer, DLQ_TOPIC, metrics, TINY, resolved)
    task = asyncio.create_task(writer.run())
    try:
        yield writer, metrics
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_write_is_retried_until_acknowledged_and_only_then_resolved() -> None:
    """Three BrokerUnavailableErrors, then the ack: the ticket resolves after the ack, one copy is written."""
    producer, resolved = GatedProducer(failures=3, gated=True), Resolved()
    async with writing(producer, resolved) as (writer, metrics):
        ticket = dead_ticket(resolved)
        writer.submit(ticket)
        for attempt in range(1, 4):
            await wait_for(at_gate(producer, attempt), f"attempt {attempt}")
            assert resolved.tickets == []  # not before Kafka's ack
            assert writer.pending == 1
            producer.allow()  # this attempt fails
        await wait_for(at_gate(producer, 4), "the fourth attempt")
        assert resolved.tickets == []
        producer.allow()  # acknowledged
        await wait_for(lambda: resolved.tickets == [ticket], "the ticket resolved")
        await wait_for(lambda: writer.pending == 0, "the write finished")
        assert len(producer.sent) == 1
        assert producer.sent[0][0] == DLQ_TOPIC
        labels = {"workspace": "acme", "reason": "rejected"}
        assert metrics.registry.get_sample_value("connector_dead_letters_total", labels) == 1


@pytest.mark.parametrize(
    ("reason", "status", "workspace"),
    [
        (REJECTED, "400", "acme"),
        (DeadLetterReason("not_json", "value is not JSON"), "", ""),  # rejected by the connector itself
    ],
)
async def test_the_copy_keeps_the_record_and_names_why_and_where_from(
    reason: DeadLetterReason, status: str, workspace: str
) -> None:
    """Key, value and own headers kept (an earlier pass's cio-dlq-* dropped), then every cio-dlq-* header."""
    producer, resolved = GatedProducer(), Resolved()
    own = (("trace-id", b"abc"), ("cio-dlq-reason", b"from an earlier pass"))
    before = datetime.now(UTC)
    async with writing(producer, resolved) as (writer, _metrics):
        writer.submit(dead_ticket(resolved, reason, own))
        await wait_for(lambda: len(resolved.tickets) == 1, "the ticket resolved")
    after = datetime.now(UTC)
    ((topic, key, value, headers),) = producer.sent
    assert (topic, key, value) == (DLQ_TOPIC, b"user-7", b'{"type":"track"}')
    assert headers[0] == ("trace-id", b"abc")
    added = dict(headers[1:])
    assert len(headers) == 1 + len(added)  # no header twice, the earlier pass's reason dropped
    written_at = added.pop("cio-dlq-time").decode()
    assert added == {
        "cio-dlq-reason": reason.reason.encode(),
        "cio-dlq-message": reason.message.encode(),
        "cio-dlq-status": status.encode(),
        "cio-dlq-workspace": workspace.encode(),
        "cio-dlq-source-topic": b"events",
        "cio-dlq-source-partition": b"3",
        "cio-dlq-source-offset": b"41",
        "cio-dlq-source-timestamp": b"1700000000123",
    }
    assert written_at.endswith("Z")
    moment = datetime.fromisoformat(written_at)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= moment <= after
