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
    cio-dlq-schema-id         only for a record in the Schema Registry wire format: its schema id

Added after them with CONNECTOR_DLQ_CONNECT_HEADERS=true (``connect_headers``), Kafka Connect's own
error-context headers (its ``DeadLetterQueueReporter``: same names, order and encoding, UTF-8 decimal
numbers), so DLQ tooling built for Kafka Connect reads our records:
    __connect.errors.topic / .partition / .offset   the source record
    __connect.errors.connector.name                 the sink's consumer group (CONNECTOR_GROUP_ID)
    __connect.errors.task.id                        "0"
    __connect.errors.stage                          VALUE_CONVERTER (decoding), TASK_PUT (Customer.io rejected
                                                    it) or TRANSFORMATION (everything else: routing, mapping)
    __connect.errors.class.name                     the connector module of that stage (ours, not a Java class)
    __connect.errors.exception.class.name           "connector.<reason code>" (ours: there is no exception)
    __connect.errors.exception.message              the cio-dlq-message text
    __connect.errors.exception.stacktrace           "" (there is no stack trace to give)

Added only when the copy had to be reduced to fit the topic (see ``fit_dead_letter``):
    cio-dlq-value-truncated   the original value's size: the value kept is its first bytes (maybe none)
    cio-dlq-headers-dropped   how many of the record's own headers were left out
    cio-dlq-key-dropped       the original key's size: the key was left out

A record is marked resolved (and its offset committable) only after Kafka acknowledged its dead-letter
copy; while the broker is unavailable, that write is retried and nothing past it is committed.

Every copy fits: it is sized against the producer's limit (the dead-letter topic's max.message.bytes)
before sending, and reduced when larger. A copy that Kafka still refuses as too large is sent again in the
smallest form (dead-letter headers only); if even that is refused, the record is resolved without a copy,
with an error log naming its source topic, partition and offset and ``connector_dead_letters_unwritable_total``
(stalling the partition forever instead would stop the sink for every later record; the original stays
in its source topic until retention).

Each dead letter is logged, except in bursts: the first ``LOG_BURST`` per reason in each
``LOG_WINDOW_SECONDS`` are logged one by one, the rest are counted in one summary line per window
(``log_sampling.py``); ``connector_dead_letters_total`` counts every one.

Each dead letter is written independently (up to ``MAX_CONCURRENT_WRITES`` at once), so one whose write
is retried never holds back the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.errors import BrokerUnavailableError, RecordTooLargeError
from connector.kafka import Headers, Producer, ProducerLike, Record
from connector.log_sampling import LogSampler, Summary
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.sink.mapping.model import DECODE_REASONS
from connector.sink.retry import RetryPolicy, with_retries
from connector.sink.tickets import DeadLetterReason, Ticket

log = get_logger("sink.dlq")

DLQ_PREFIX = "cio-dlq-"
CONNECT_PREFIX = "__connect.errors."
VALUE_TRUNCATED = "cio-dlq-value-truncated"
HEADERS_DROPPED = "cio-dlq-headers-dropped"
KEY_DROPPED = "cio-dlq-key-dropped"
MAX_CONCURRENT_WRITES = 500
LOG_BURST = 5  # dead letters logged one by one per reason and window; the rest only in the summary
LOG_WINDOW_SECONDS = 60.0
# Varint length prefixes (the value's and the record's) grow by at most 4 bytes each from an empty value.
_VARINT_SLACK = 8


# Kafka Connect's Stage names (org.apache.kafka.connect.runtime.errors.Stage) for our reason codes.
DELIVERY_REASONS = frozenset({"rejected"})
STAGE_MODULES = {
    "VALUE_CONVERTER": "connector.sink.mapping.decode",
    "TRANSFORMATION": "connector.sink.mapping",
    "TASK_PUT": "connector.sink.delivery",
}


def connect_stage(reason: str) -> str:
    """The Kafka Connect stage in which a record with dead-letter ``reason`` failed (pure)."""
    if reason in DECODE_REASONS:
        return "VALUE_CONVERTER"
    if reason in DELIVERY_REASONS:
        return "TASK_PUT"
    return "TRANSFORMATION"


def connect_headers(record: Record, reason: DeadLetterReason, connector_name: str) -> Headers:
    """Kafka Connect's ``__connect.errors.*`` headers for ``record``, as its DeadLetterQueueReporter writes them (pure)."""
    stage = connect_stage(reason.reason)
    added = (
        ("topic", record.topic),
        ("partition", str(record.partition)),
        ("offset", str(record.offset)),
        ("connector.name", connector_name),
        ("task.id", "0"),
        ("stage", stage),
        ("class.name", STAGE_MODULES[stage]),
        ("exception.class.name", f"connector.{reason.reason}"),
        ("exception.message", reason.message),
        ("exception.stacktrace", ""),
    )
    return tuple((CONNECT_PREFIX + k, v.encode()) for k, v in added)


def is_dead_letter_header(key: str) -> bool:
    """Whether a header describes a dead-lettering (ours, or Kafka Connect's), not the record itself."""
    return key.startswith(DLQ_PREFIX) or key.startswith(CONNECT_PREFIX)


def added_headers(
    ticket: Ticket, reason: DeadLetterReason, now: float, *, connector_name: str | None = None
) -> Headers:
    """The dead-letter headers describing why and where from, plus Kafka Connect's with a ``connector_name`` (pure)."""
    record = ticket.record
    added: tuple[tuple[str, str], ...] = (
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
    if reason.schema_id is not None:
        added += (("cio-dlq-schema-id", str(reason.schema_id)),)
    ours = tuple((k, v.encode()) for k, v in added)
    return ours if connector_name is None else ours + connect_headers(record, reason, connector_name)


def own_headers(record: Record) -> Headers:
    """The record's headers, without dead-letter headers (ours or Kafka Connect's) from an earlier pass."""
    return tuple((k, v) for k, v in record.headers if not is_dead_letter_header(k))


def dead_letter_headers(ticket: Ticket, reason: DeadLetterReason, now: float) -> Headers:
    """The record's own headers followed by the dead-letter headers (pure)."""
    return own_headers(ticket.record) + added_headers(ticket, reason, now)


@dataclass(frozen=True, slots=True)
class DeadLetterCopy:
    """What is written to the dead-letter topic for one record."""

    key: bytes | None
    value: bytes
    headers: Headers
    form: str  # "whole", "value_truncated" or "minimal" (a label of connector_dead_letters_reduced_total)


def fit_dead_letter(record: Record, added: Headers, limit: int) -> DeadLetterCopy | None:
    """The largest faithful copy of ``record`` within ``limit`` bytes, or None when nothing fits (pure).

    In order: the whole record; its value truncated (to nothing if need be) with key and headers kept;
    then without its own headers; then without its key either (``minimal_dead_letter``).
    """
    key, value, kept = record.key, record.value or b"", own_headers(record)
    headers = kept + added
    if Producer.record_size(key, value, headers) <= limit:
        return DeadLetterCopy(key, value, headers, "whole")
    headers += ((VALUE_TRUNCATED, str(len(value)).encode()),)
    room = limit - Producer.record_size(key, b"", headers) - _VARINT_SLACK
    if room >= 0:
        return DeadLetterCopy(key, value[:room], headers, "value_truncated")
    for keep_key in (True, False):
        minimal = minimal_dead_letter(record, added, keep_key=keep_key)
        if Producer.record_size(minimal.key, minimal.value, minimal.headers) <= limit:
            return minimal
    return None


def minimal_dead_letter(record: Record, added: Headers, *, keep_key: bool = False) -> DeadLetterCopy:
    """The dead-letter headers (and the key if ``keep_key``), each left-out part named by its size or count (pure)."""
    value, kept = record.value or b"", own_headers(record)
    markers: Headers = ((VALUE_TRUNCATED, str(len(value)).encode()),)
    if kept:
        markers += ((HEADERS_DROPPED, str(len(kept)).encode()),)
    if record.key is not None and not keep_key:
        markers += ((KEY_DROPPED, str(len(record.key)).encode()),)
    return DeadLetterCopy(record.key if keep_key else None, b"", added + markers, "minimal")


class DeadLetterWriter:
    """Writes tickets' records to the dead-letter topic, each independently, then hands them back as resolved."""

    def __init__(
        self,
        producer: ProducerLike,
        topic: str,
        metrics: Metrics,
        policy: RetryPolicy,
        on_written: Callable[[Ticket], None],
        *,
        max_concurrent: int = MAX_CONCURRENT_WRITES,
        connector_name: str | None = None,
    ) -> None:
        """``connector_name``: write Kafka Connect's error headers naming this connector; None: only ours."""
        self._producer = producer
        self._connector_name = connector_name
        self._topic = topic
        self._limit = producer.max_request_size
        self._metrics = metrics
        self._policy = policy
        self._on_written = on_written
        self._queue: asyncio.Queue[Ticket | None] = asyncio.Queue()  # None: a write task crashed
        self._slots = asyncio.Semaphore(max_concurrent)
        self._writes: set[asyncio.Task[None]] = set()
        self._crash: BaseException | None = None
        self._retrying: dict[int, str] = {}  # id of a ticket whose write is being retried → the last error
        self._log_sampler = LogSampler(LOG_BURST, LOG_WINDOW_SECONDS, time.monotonic())

    def submit(self, ticket: Ticket) -> None:
        """Queue a ticket whose ``dead_letter`` is set."""
        self._queue.put_nowait(ticket)

    @property
    def failing(self) -> str | None:
        """The last error of a write being retried (the topic refuses or Kafka is away), or None."""
        return next(iter(self._retrying.values()), None)

    @property
    def pending(self) -> int:
        """Tickets queued or being written."""
        return self._queue.qsize() + len(self._writes)

    async def run(self) -> None:
        """Start a write per ticket, at most ``max_concurrent`` at once, forever (cancel to stop)."""
        summaries = asyncio.create_task(self._summarize_logs(), name="dlq-log-summary")
        try:
            while True:
                ticket = await self._queue.get()
                if ticket is None:
                    raise RuntimeError("a dead-letter write crashed") from self._crash
                await self._slots.acquire()
                task = asyncio.create_task(self._write(ticket), name="dlq-write")
                self._writes.add(task)
                task.add_done_callback(self._write_done)
        finally:
            summaries.cancel()
            for task in self._writes:
                task.cancel()
            await asyncio.gather(summaries, *self._writes, return_exceptions=True)
            _log_summary(self._log_sampler.summary(time.monotonic()))

    async def _summarize_logs(self) -> None:
        while True:
            await asyncio.sleep(self._log_sampler.window_seconds)
            _log_summary(self._log_sampler.summary(time.monotonic()))

    def _write_done(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            # A bug: its record would stay unresolved forever. Make run() fail, which stops the sink loudly.
            self._crash = task.exception()
            self._queue.put_nowait(None)

    async def _write(self, ticket: Ticket) -> None:
        reason = ticket.dead_letter
        if reason is None:  # pragma: no cover - only tickets with a reason are submitted
            self._on_written(ticket)
            return
        record = ticket.record
        added = added_headers(ticket, reason, time.time(), connector_name=self._connector_name)
        copy = fit_dead_letter(record, added, self._limit)

        async def write_once() -> DeadLetterCopy | None:
            """Send ``copy``: the copy written, or None when even the minimal one is too large.

            A copy refused as too large is replaced by the minimal one at once, and stays replaced for
            the retries (resending it unchanged cannot succeed); BrokerUnavailableError is retried.
            """
            nonlocal copy
            while copy is not None:
                try:
                    await self._producer.send_many(self._topic, [(copy.key, copy.value, copy.headers)])
                    break
                except RecordTooLargeError as exc:
                    if copy.form == "minimal":
                        copy = None
                        break
                    log.warning(
                        "Dead-letter copy refused as too large; writing it without its value.",
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        error=str(exc),
                    )
                    copy = minimal_dead_letter(record, added)
            return copy

        def on_retry(attempt: int, exc: BrokerUnavailableError, _delay: float) -> None:
            self._retrying[id(ticket)] = str(exc)
            log.error(
                "Dead-letter write failed; retrying.",
                topic=self._topic,
                attempt=attempt,
                source_topic=record.topic,
                source_partition=record.partition,
                source_offset=record.offset,
                error=str(exc),
            )

        try:
            copy = await with_retries(write_once, BrokerUnavailableError, self._policy, on_retry=on_retry)
        finally:
            self._retrying.pop(id(ticket), None)
        if copy is None:
            self._metrics.dead_letters_unwritable.labels(reason.workspace or "none", reason.reason).inc()
            log.error(
                "Record NOT dead-lettered: even its smallest copy is larger than the dead-letter topic accepts; "
                "it is committed and stays only in its source topic. Raise the topic's max.message.bytes.",
                reason=reason.reason,
                workspace=reason.workspace,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                dlq_topic=self._topic,
                limit=self._limit,
            )
        else:
            self._metrics.dead_letters.labels(reason.workspace or "none", reason.reason).inc()
            if copy.form != "whole":
                self._metrics.dead_letters_reduced.labels(copy.form).inc()
            if self._log_sampler.admit(reason.reason, time.monotonic()):
                self._log_dead_letter(record, reason, copy)
        self._on_written(ticket)

    @staticmethod
    def _log_dead_letter(record: Record, reason: DeadLetterReason, copy: DeadLetterCopy) -> None:
        log.warning(
            "Record dead-lettered.",
            reason=reason.reason,
            workspace=reason.workspace,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            detail=reason.message,
            **({} if copy.form == "whole" else {"copy": copy.form, "value_bytes": len(record.value or b"")}),
        )


def _log_summary(summary: Summary | None) -> None:
    if summary is not None:
        log.warning(
            "Dead letters of the last `seconds` not logged one by one, by reason (metrics count every one).",
            seconds=round(summary.seconds),
            suppressed=summary.suppressed,
            first_per_reason=LOG_BURST,
        )
