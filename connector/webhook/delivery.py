"""Produce each webhook event once and wait for the broker's ack (no HTTP here).

One produce task per ``event_id``. A request waits for it at most ``produce_timeout`` seconds, but the
task itself (shielded) runs on until the broker acknowledges or the producer gives up; a retry of the
same ``event_id`` meanwhile joins that task instead of producing a second copy. An id is remembered
as produced (``RecentIds``) only once acknowledged, in the same step that un-pends it, so a retry
always finds one or the other.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Literal

from prometheus_client import Counter, Histogram

from connector.errors import BrokerUnavailableError
from connector.kafka import RecordSender
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.webhook.dedup import RecentIds
from connector.webhook.normalize import NormalizedEvent

log = get_logger("webhook")

Outcome = Literal["accepted", "duplicate"]


# The listener needs only a connected producer and one acknowledged send (tests pass a fake of that shape).
ProducerLike = RecordSender


class EventDelivery:
    """Webhook events → Kafka, at most one produce in flight per ``event_id``."""

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
        self._pending: dict[str, asyncio.Task[None]] = {}
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
        task = self._pending.get(event_id)
        joined = task is not None
        if task is None:
            if not self.producer.started:
                raise BrokerUnavailableError("producer not connected")
            if len(self._pending) >= self.max_pending:
                raise BrokerUnavailableError(f"{len(self._pending)} events already await a Kafka ack")
            task = asyncio.create_task(self._produce(event), name="webhook-produce")
            task.add_done_callback(_observe_failure)
            self._pending[event_id] = task
        # Wait without ever cancelling the task: when we stop waiting, the record stays queued in the
        # producer and may still be acknowledged; a retry of this event_id then joins the task instead
        # of producing it again.
        await self._wait_at_most(task)
        if not task.done():
            raise BrokerUnavailableError(f"no acknowledgement from Kafka within {self.produce_timeout}s")
        if task.cancelled():
            raise BrokerUnavailableError("produce cancelled (shutting down)")
        error = task.exception()
        if isinstance(error, BrokerUnavailableError):
            raise error
        if error is not None:
            # A bug, not an outage; still 503 (Customer.io retries soon) rather than 500 (it waits an hour).
            raise BrokerUnavailableError(f"unexpected producer failure: {error!r}") from error
        return "duplicate" if joined else "accepted"

    async def _wait_at_most(self, task: asyncio.Task[None]) -> None:
        """Return when ``task`` is done or ``produce_timeout`` s have passed (asyncio.wait, with less machinery)."""
        waiter: asyncio.Future[None] = task.get_loop().create_future()

        def wake(_task: object) -> None:
            if not waiter.done():
                waiter.set_result(None)

        task.add_done_callback(wake)
        self._deadlines.add(waiter)
        try:
            await waiter
        finally:
            task.remove_done_callback(wake)

    async def settle(self, timeout: float) -> int:
        """Wait (at most ``timeout`` s) for produce tasks still awaiting an ack, then cancel the rest.

        Returns how many were cancelled. Their webhooks were answered 503 (or are being), so Customer.io
        sends them again; the producer may still deliver a cancelled record when it is flushed on stop,
        which makes that event at-least-once rather than exactly-once.
        """
        tasks = list(self._pending.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        unsettled = [task for task in tasks if not task.done()]
        for task in unsettled:
            task.cancel()
        if unsettled:
            await asyncio.wait(unsettled)
        return len(unsettled)

    async def _produce(self, event: NormalizedEvent) -> None:
        started = time.perf_counter()
        try:
            await self.producer.send(self.topic, event.value, key=event.key, headers=event.headers)
        except BaseException:
            self._pending.pop(event.event_id, None)
            raise
        self._pending.pop(event.event_id, None)
        self.recent.add(event.event_id, self._clock())
        duration = self._durations.get(event.workspace)
        if duration is None:  # bounded: configured workspaces, or "" for the single path
            duration = self._durations[event.workspace] = self._metrics.webhook_produce_duration.labels(event.workspace)
        duration.observe(time.perf_counter() - started)
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
        log.error("Webhook produce task failed unexpectedly.", error=repr(exc))
