"""Produce each webhook event once and wait for the broker's ack (no HTTP here).

Events are produced in batches, one batch in flight at a time. The first event that needs producing
starts a ``_Batch``; every new event joins it until it is flushed: in the next loop turn when no batch
is in flight, else as soon as the one in flight is acknowledged (or failed), or at once if the one in
flight is still unacknowledged after ``produce_timeout`` (a stuck batch holds back at most one timeout's
worth of events). So batches grow with the load and no linger is added: at low rates a batch is one event sent at once, under load each broker
round trip carries what arrived during the previous one. The flush hands the batch to
``Producer.send_batch`` (one closed aiokafka batch per partition) at once, not at the next loop turn
(``start_eagerly``): after an ack, the next batch is queued in the same step, before the acknowledged
requests are woken. One task per batch (not per webhook) carries on to its ack.

Every request of a batch waits on the batch's one shared future, and one deadline per batch wakes them
``produce_timeout`` seconds after it was started: a request answers 503 in time whatever Kafka does
(even while the batch waits behind one that Kafka does not acknowledge: aiokafka gives that one up
after its own ``request_timeout_ms``), while the flush (never cancelled by a request) runs on until
the broker acknowledges or the producer gives up.

``_pending`` maps each ``event_id`` being produced to its batch, so a retry of that id joins the batch
instead of producing a second copy (after the deadline, with a fresh deadline of its own). An id is
remembered as produced (``RecentIds``) only once acknowledged, in the same step that un-pends it, so a
retry always finds one or the other. Each event has its own outcome: one refused (too large) does not
fail its batch-mates.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Literal

from prometheus_client import Counter, Histogram

from connector.eager import start_eagerly
from connector.errors import BrokerUnavailableError
from connector.kafka import BatchSender
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.webhook.dedup import RecentIds
from connector.webhook.normalize import NormalizedEvent

log = get_logger("webhook")

Outcome = Literal["accepted", "duplicate"]


# The listener needs only a connected producer and a batched, acknowledged send (tests pass a fake of that shape).
ProducerLike = BatchSender


class _Batch:
    """Events produced together; their requests all wait on ``waiter``."""

    __slots__ = ("events", "failures", "finished", "started", "waiter")

    def __init__(self, waiter: asyncio.Future[None]) -> None:
        self.events: list[NormalizedEvent] = []
        # The produce duration counts from here: it includes the wait behind the batch in flight.
        self.started = time.perf_counter()
        # Woken (result None) when the batch finishes or at its deadline; replaced by a retry after the deadline.
        self.waiter = waiter
        self.finished = False
        self.failures: dict[str, BrokerUnavailableError] = {}  # event_id → why it is not in Kafka


class EventDelivery:
    """Webhook events → Kafka in batches, at most one produce in flight per ``event_id``."""

    def __init__(
        self,
        producer: ProducerLike,
        topic: str,
        *,
        produce_timeout: float,
        recent: RecentIds,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        max_pending: int = 10_000,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.produce_timeout = produce_timeout
        self.recent = recent
        self.max_pending = max_pending
        self._metrics = metrics
        self._clock = clock
        self._pending: dict[str, _Batch] = {}
        self._collecting: _Batch | None = None  # the batch of this loop turn, flushed in the next
        self._flushing: set[asyncio.Task[None]] = set()  # the produces that had to wait (for their ack)
        self._in_flight = 0  # batches handed to the producer and not finished
        self._event_counters: dict[tuple[str, str, str], Counter] = {}
        self._durations: dict[str, Histogram] = {}
        self._deadlines = _Deadlines(produce_timeout)

    @property
    def pending(self) -> int:
        """Events produced and not yet acknowledged (nor failed)."""
        return len(self._pending)

    async def deliver(self, event: NormalizedEvent) -> Outcome:
        """'accepted' or 'duplicate' once the event is in Kafka; BrokerUnavailableError if it is not (yet)."""
        event_id = event.event_id
        if self.recent.contains(event_id, self._clock()):
            return "duplicate"
        batch = self._pending.get(event_id)
        joined = batch is not None
        if batch is None:
            if not self.producer.started:
                raise BrokerUnavailableError("producer not connected")
            if len(self._pending) >= self.max_pending:
                raise BrokerUnavailableError(f"{len(self._pending)} events already await a Kafka ack")
            batch = self._collecting
            if batch is None:
                batch = self._collecting = self._start_batch()
            batch.events.append(event)  # before a flush below, which may finish the batch at once
            self._pending[event_id] = batch
            if batch.waiter.done():
                # Still collecting past its deadline: the batch in flight has not been acknowledged within
                # produce_timeout. Send this one now rather than hold every new event behind a batch that
                # aiokafka may keep for its own request_timeout_ms (one more batch per produce_timeout at
                # most), and let the event wait its own produce_timeout.
                self._renew(batch)
                self._flush(batch)
        elif batch.waiter.done():  # a retry after the batch's deadline: it waits anew, as long
            self._renew(batch)
        # Never cancels the flush: when we stop waiting, the record stays queued in the producer and may
        # still be acknowledged; a retry of this event_id then joins the batch instead of producing it again.
        await self._wait(batch)
        if not batch.finished:
            raise BrokerUnavailableError(f"no acknowledgement from Kafka within {self.produce_timeout}s")
        if batch.failures:
            error = batch.failures.get(event_id)
            if error is not None:
                raise error
        return "duplicate" if joined else "accepted"

    def _start_batch(self) -> _Batch:
        loop = asyncio.get_running_loop()
        batch = _Batch(loop.create_future())
        self._deadlines.add(batch.waiter)
        if not self._in_flight:
            loop.call_soon(self._flush, batch)
        # else the batch in flight flushes this one when it finishes (``_produce``)
        return batch

    def _renew(self, batch: _Batch) -> None:
        batch.waiter = batch.waiter.get_loop().create_future()
        self._deadlines.add(batch.waiter)

    async def _wait(self, batch: _Batch) -> None:
        """Return when ``batch`` is finished or its deadline has passed.

        The waiter is shared: cancelling one request cancels it for all (a task cancels the future it
        awaits), so the others wait on a fresh one instead of failing.
        """
        while not batch.finished:
            waiter = batch.waiter
            if waiter.cancelled():
                self._renew(batch)
                waiter = batch.waiter
            try:
                await waiter
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # this request was cancelled
            else:
                return

    def _flush(self, batch: _Batch) -> None:
        """Send ``batch`` if it is still the one collecting (the loop-turn flush may find it sent already).

        The produce starts now, not at the next loop turn: its records are queued in the producer when this
        returns (``start_eagerly``); a task carries on only if it has to wait (for the ack, as a rule).
        """
        if self._collecting is not batch:
            return
        self._collecting = None
        self._in_flight += 1
        try:
            task = start_eagerly(self._produce(batch), "webhook-produce")
        except Exception as exc:  # noqa: BLE001 - a bug: _produce has answered its batch 503 already
            _log_produce_bug(exc)
            return
        if task is not None:
            self._flushing.add(task)
            task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushing.discard(task)
        _observe_failure(task)

    async def settle(self, timeout: float) -> int:
        """Wait (at most ``timeout`` s) for batches still awaiting an ack, then cancel the rest.

        Returns how many events were cancelled. Their webhooks were answered 503 (or are being), so
        Customer.io sends them again; the producer may still deliver a cancelled record when it is
        flushed on stop, which makes that event at-least-once rather than exactly-once.
        """
        if self._collecting is not None:
            self._flush(self._collecting)
        tasks = list(self._flushing)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        cancelled = self.pending
        unsettled = [task for task in tasks if not task.done()]
        for task in unsettled:
            task.cancel()
        if unsettled:
            await asyncio.wait(unsettled)
        return cancelled if unsettled else 0

    async def _produce(self, batch: _Batch) -> None:
        events = batch.events
        try:
            try:
                outcomes = await self.producer.send_batch(self.topic, [(e.key, e.value, e.headers) for e in events])
            finally:
                # The next batch is queued now, in the step that reads this one's ack and before its
                # requests are woken: aiokafka's sender, woken by the same response later in this loop
                # turn, takes it at once, and its produce request leaves in the next turn, with these
                # answers, instead of three or four turns after them (a turn is up to a few ms under load).
                self._in_flight -= 1
                if self._collecting is not None and not self._in_flight:
                    self._flush(self._collecting)
        except asyncio.CancelledError:
            self._finish(batch, [BrokerUnavailableError("produce cancelled (shutting down)")] * len(events))
            raise
        except BrokerUnavailableError as exc:  # the protocol returns errors per record; a fake may raise
            self._finish(batch, [exc] * len(events))
            return
        except BaseException as exc:
            # A bug, not an outage; still 503 (Customer.io retries soon) rather than 500 (it waits an hour).
            error = BrokerUnavailableError(f"unexpected producer failure: {exc!r}")
            self._finish(batch, [error] * len(events))
            raise
        self._finish(batch, outcomes, time.perf_counter() - batch.started)

    def _finish(
        self, batch: _Batch, outcomes: list[BrokerUnavailableError | None], duration: float | None = None
    ) -> None:
        """Un-pend every event of ``batch``, remember the acknowledged ones, count them, wake the requests."""
        now = self._clock()
        pending, recent, failures = self._pending, self.recent, batch.failures
        for event, error in zip(batch.events, outcomes, strict=True):
            pending.pop(event.event_id, None)
            if error is not None:
                failures[event.event_id] = error
                continue
            recent.add(event.event_id, now)
            if duration is not None:
                self._count(event, duration)
        batch.finished = True
        if not batch.waiter.done():
            batch.waiter.set_result(None)

    def _count(self, event: NormalizedEvent, duration: float) -> None:
        histogram = self._durations.get(event.workspace)
        if histogram is None:  # bounded: configured workspaces, or "" for the single path
            histogram = self._durations[event.workspace] = self._metrics.webhook_produce_duration.labels(
                event.workspace
            )
        histogram.observe(duration)
        labels = (event.object_type_label, event.metric_label, event.workspace)
        counter = self._event_counters.get(labels)
        if counter is None:  # bounded: labels are known names or "other", workspaces as above
            counter = self._event_counters[labels] = self._metrics.webhook_events.labels(*labels)
        counter.inc()


class _Deadlines:
    """Wakes each waiter ``timeout`` seconds after it was added, with one timer for all of them.

    Every waiter gets the same timeout, so deadlines come in the order the waiters were added: a FIFO
    queue and a timer for its head replace a timer per request (``call_later`` + ``cancel``). A waiter
    answered earlier stays queued (done, never woken twice) until its deadline passes: at most
    ``timeout`` seconds' worth of requests.
    """

    __slots__ = ("_queue", "_timer", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._queue: collections.deque[tuple[float, asyncio.Future[None]]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, waiter: asyncio.Future[None]) -> None:
        """Set ``waiter``'s result (if nothing else did) ``timeout`` seconds from now."""
        loop = waiter.get_loop()
        deadline = loop.time() + self.timeout
        self._queue.append((deadline, waiter))
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        queue, now = self._queue, loop.time()
        while queue and (queue[0][0] <= now or queue[0][1].done()):
            _deadline, waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
        if queue:
            self._timer = loop.call_at(queue[0][0], self._expire, loop)


def _observe_failure(task: asyncio.Task[None]) -> None:
    """Retrieve the outcome of a produce task nobody may be waiting for any more."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, BrokerUnavailableError):
        _log_produce_bug(exc)


def _log_produce_bug(exc: BaseException) -> None:
    """A produce that failed otherwise than by an outage: a bug (its batch was answered 503)."""
    log.error("Webhook produce task failed unexpectedly.", error=repr(exc))
