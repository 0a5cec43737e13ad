"""The dead-letter topic: rejected records with their reason, keeping the original key, value and headers.

Headers added (all UTF-8 strings):
    cio-dlq-reason            reason code (connector.sink.mapping.model.REASONS)
    cio-dlq-message           one-line explanation naming the field, or Customer.io's message
    cio-dlq-status            Customer.io's HTTP status, "" when the connector rejected the record itself
    cio-dlq-workspace         target workspace, "" when unknown
    cio-dlq-source-topic      where the record was consumed
    cio-dlq-source-partition
    cio-dlq-source-offset
    cio-dlq-source-timestamp  the source record's timestamp (ms), so replays keep their dedup ids
    cio-dlq-time              when it was dead-lettered (ISO-8601, UTC)

A record is marked resolved (and its offset committable) only after Kafka acknowledged its
dead-letter copy; while the broker refuses, writes are retried and nothing is committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from connector.errors import BrokerUnavailableError
from connector.kafka import Headers, ProducerLike
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.sink.retry import RetryPolicy
from connector.sink.tickets import DeadLetterReason, Ticket

log = get_logger("sink.dlq")

DLQ_PREFIX = "cio-dlq-"
MAX_BATCH = 500


def dead_letter_headers(ticket: Ticket, reason: DeadLetterReason, now: float) -> Headers:
    """The record's own headers followed by the dead-letter headers (pure)."""
    record = ticket.record
    added = (
        ("cio-dlq-reason", reason.reason),
        ("cio-dlq-message", reason.message),
        ("cio-dlq-status", "" if reason.status is None else str(reason.status)),
        ("cio-dlq-workspace", reason.workspace),
        ("cio-dlq-source-topic", record.topic),
        ("cio-dlq-source-partition", str(record.partition)),
        ("cio-dlq-source-offset", str(record.offset)),
        ("cio-dlq-source-timestamp", str(record.timestamp_ms)),
        ("cio-dlq-time", datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")),
    )
    kept = tuple((k, v) for k, v in record.headers if not k.startswith(DLQ_PREFIX))
    return kept + tuple((k, v.encode()) for k, v in added)


class DeadLetterWriter:
    """Writes tickets' records to the dead-letter topic in batches, then hands them back as resolved."""

    def __init__(
        self,
        producer: ProducerLike,
        topic: str,
        metrics: Metrics,
        policy: RetryPolicy,
        on_written: Callable[[Ticket], None],
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics
        self._policy = policy
        self._on_written = on_written
        self._queue: asyncio.Queue[Ticket] = asyncio.Queue()
        self._busy = 0

    def submit(self, ticket: Ticket) -> None:
        """Queue a ticket whose ``dead_letter`` is set."""
        self._queue.put_nowait(ticket)

    @property
    def pending(self) -> int:
        """Tickets queued or being written."""
        return self._queue.qsize() + self._busy

    async def run(self) -> None:
        """Write forever (cancel to stop); a failed write is retried, never dropped."""
        while True:
            tickets = [await self._queue.get()]
            while len(tickets) < MAX_BATCH and not self._queue.empty():
                tickets.append(self._queue.get_nowait())
            self._busy = len(tickets)
            await self._write(tickets)
            self._busy = 0
            for ticket in tickets:
                reason = ticket.dead_letter
                if reason is not None:
                    self._metrics.dead_letters.labels(reason.workspace or "none", reason.reason).inc()
                self._on_written(ticket)

    async def _write(self, tickets: list[Ticket]) -> None:
        attempt = 0
        while True:
            now = time.time()
            items = [
                (t.record.key, t.record.value, dead_letter_headers(t, t.dead_letter, now))
                for t in tickets
                if t.dead_letter is not None
            ]
            try:
                await self._producer.send_many(self._topic, items)
            except BrokerUnavailableError as exc:
                attempt += 1
                delay = self._policy.delay(attempt)
                log.error("Dead-letter write failed; retrying.", topic=self._topic, attempt=attempt, error=str(exc))
                await asyncio.sleep(delay)
                continue
            for t in tickets:
                if t.dead_letter is not None:
                    log.warning(
                        "Record dead-lettered.",
                        reason=t.dead_letter.reason,
                        workspace=t.dead_letter.workspace,
                        topic=t.record.topic,
                        partition=t.record.partition,
                        offset=t.record.offset,
                        detail=t.dead_letter.message,
                    )
            return
