"""Delivery to one workspace: ordering lanes, batching, retries, flow control and credential failures.

A person's operations always travel through the same lane (hash of ``order_key``), and a lane sends one
batch at a time and retries it until it is resolved, so Customer.io sees each person's operations in
Kafka order however many lanes run concurrently. Outcomes of a request:

    200            every operation delivered
    207            items named by batch_index rejected (dead-letter), the rest delivered; never resent
    400/413/422    split the batch in halves and resend until the bad items stand alone (dead-letter)
    401/403/3xx    credentials or region wrong: the workspace stops (not ready), nothing is dead-lettered,
                   its records stay uncommitted, and the held batch is re-tried as a probe periodically
    408/429/5xx,   retried with full-jitter backoff (Retry-After honoured, capped) for as long as it takes;
    network        the workspace reports itself congested so the runner pauses its partitions

Track API v1 calls (``Operation.v1``: manual segment membership, delivery metrics) travel the same lanes:
the batcher closes the open batch before one and gives it a batch of its own (consecutive ids of one
segment call merged, up to 1,000), so the lane sends it after the person's earlier operations and before
their later ones, under the same rate and concurrency limits, with the same retries, credential handling
and dead letters. A v1 call is all or nothing (no 207): a 400 on merged ids bisects like a batch.

A merge (``Operation.after_key``: a Segment ``alias``) travels in the primary's lane but concerns the
secondary too, whose earlier operations travel in its own lane. Its batch waits, before taking a rate
token or permit, until the secondary's lane has finished every batch made ready before the merge (so the
merge never reaches Customer.io ahead of them and they never re-create the merged-away person); a barrier
only waits for earlier batches, so barriers cannot deadlock (see ``_hold_behind``).

What it buffers (``buffered`` operations, ``buffered_bytes`` of their serialized bodies) counts against the
process-wide budget (``budget.py``); the runner, not the workspace, decides when its intake stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

from connector.cio.client import BatchResponse, CustomerIOClient
from connector.cio.region import ResolvedWorkspace
from connector.config import SinkSettings
from connector.errors import AuthError, PermanentDeliveryError, TransientDeliveryError
from connector.kafka import Partition
from connector.logs import get_logger
from connector.metrics import Metrics, retry_cause
from connector.sink.batcher import Batch, Batcher
from connector.sink.limits import ConcurrencyLimiter, RateLimiter
from connector.sink.mapping.model import Operation
from connector.sink.retry import RetryPolicy
from connector.sink.tickets import DeadLetterReason, Ticket

log = get_logger("sink.delivery")

FAILING_AFTER_ATTEMPTS = 3  # consecutive transient failures before the workspace reports congestion


class _Lane:
    __slots__ = ("barriers", "batcher", "enqueued", "finished", "progress", "ready", "wakeup")

    def __init__(self, batcher: Batcher[Ticket]) -> None:
        self.batcher = batcher
        # Each ready batch with the revocation count when it closed: only a batch that saw a
        # rebalance needs its items checked against the current assignment.
        self.ready: deque[tuple[Batch[Ticket], int]] = deque()
        self.wakeup = asyncio.Event()
        # Batches made ready so far, and of those the ones dropped from ``ready`` (delivered, dead-lettered
        # or abandoned): batch n of the lane is the n-th made ready (from 0), sent once ``finished == n``.
        self.enqueued = 0
        self.finished = 0
        # Set when ``finished`` advances, created only while a barrier of another lane waits for it.
        self.progress: asyncio.Event | None = None
        # Merge barriers, in batch order: (batch number here, other lane, its ``finished`` to wait for).
        self.barriers: deque[tuple[int, _Lane, int]] = deque()

    def make_ready(self, batch: Batch[Ticket], revocations: int) -> None:
        """Queue a closed batch for sending (the one way into ``ready``, so ``enqueued`` counts it)."""
        self.ready.append((batch, revocations))
        self.enqueued += 1

    def drop_first(self) -> None:
        """The first ready batch is resolved (or abandoned): drop it and wake barriers waiting for it."""
        self.ready.popleft()
        self.finished += 1
        progress = self.progress
        if progress is not None:
            self.progress = None
            progress.set()

    async def finished_at_least(self, target: int) -> None:
        """Return once ``target`` of this lane's batches are finished."""
        while self.finished < target:
            progress = self.progress
            if progress is None:
                progress = self.progress = asyncio.Event()
            await progress.wait()


class WorkspaceDelivery:
    """Sends one workspace's operations; resolves each operation's ticket exactly once."""

    def __init__(
        self,
        destination: ResolvedWorkspace,
        client: CustomerIOClient,
        tuning: SinkSettings,
        policy: RetryPolicy,
        *,
        rate_per_second: float,
        max_in_flight: int,
        metrics: Metrics,
        is_current: Callable[[Ticket], bool],
        clock: Callable[[], float] = time.monotonic,
        diagnose: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self.destination = destination
        # Asked once when credentials are rejected: a wrong region reads as a bad key otherwise.
        self._diagnose = diagnose
        self.name = destination.name
        self._client = client
        self._tuning = tuning
        self._policy = policy
        self._metrics = metrics
        self._is_current = is_current
        self._labels = destination.labels
        self._lanes = [
            _Lane(Batcher(tuning.batch_max_operations, tuning.batch_max_bytes, tuning.linger_seconds))
            for _ in range(tuning.lanes_per_workspace)
        ]
        self._lane_count = len(self._lanes)
        self._only_here = (self.name,)  # a ticket's workspaces when its first operation comes here
        self._rate = RateLimiter(rate_per_second, on_wait=self._on_rate_wait)
        in_flight_gauge = metrics.in_flight_requests.labels(self.name)
        limit_gauge = metrics.concurrency_limit.labels(self.name)

        def on_concurrency(in_flight: int, limit: float) -> None:
            in_flight_gauge.set(in_flight)
            limit_gauge.set(limit)

        self._concurrency = ConcurrencyLimiter(max_in_flight, on_change=on_concurrency)
        limit_gauge.set(self._concurrency.aimd.limit)
        self._buffered_gauge = metrics.operations_buffered.labels(self.name)
        self._ready_gauge = metrics.workspace_ready.labels(self.name)
        self._ready_gauge.set(1)
        self._delivered = metrics.operations.labels(self.name, "delivered")
        self._rejected = metrics.operations.labels(self.name, "dead_lettered")
        self._delay = metrics.end_to_end_delay.labels(self.name)
        self.buffered = 0
        self.buffered_bytes = 0  # serialized bodies of the buffered operations
        self.failing = False
        self.stopped_reason: str | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._probe_pending = False
        self._revocations = 0
        self._last_revocation_at = 0.0
        self._hold_until = 0.0  # Retry-After applies to the whole workspace, not just the lane that got it
        self._clock = clock  # of the Retry-After hold (monotonic seconds; tests pass their own)
        # partitions_buffered() while intake is stopped: valid until an operation arrives or a revocation.
        self._partitions_cache: tuple[int, frozenset[Partition]] | None = None
        # Tickets an accepted batch finished, in batch order, in one call (``complete_with``; by default
        # each ticket reports itself, as its own ``release`` would).
        self._complete_many: Callable[[list[Ticket]], None] = _each_finished

    # --- state seen by the runner -----------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """False while the workspace's credentials are rejected."""
        return self.stopped_reason is None

    @property
    def congested(self) -> bool:
        """True while this workspace cannot drain: credentials rejected, failing, or holding for Retry-After."""
        return self.stopped_reason is not None or self.failing or self._hold_until > self._clock()

    @property
    def hold_until(self) -> float:
        """When the last Retry-After hold ends, on ``clock`` (0.0 if there never was one): no request before."""
        return self._hold_until

    def complete_with(self, complete_many: Callable[[list[Ticket]], None]) -> None:
        """Hand the tickets an accepted batch finishes to ``complete_many`` in one call, in batch order,
        instead of one ``Ticket.release`` callback each (the runner resolves them per partition run)."""
        self._complete_many = complete_many

    def mark_stopped(self, reason: str) -> None:
        """Start stopped (credentials rejected at start-up): the first batch becomes the probe."""
        self.stopped_reason = reason
        self._ready_gauge.set(0)
        self._probe_pending = True

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        """The lane senders and the linger ticker (watched by the runner)."""
        return tuple(self._tasks)

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start one sender per lane and the linger ticker."""
        self._tasks = [asyncio.create_task(self._run_lane(lane), name=f"lane-{self.name}") for lane in self._lanes]
        self._tasks.append(asyncio.create_task(self._linger(), name=f"linger-{self.name}"))

    async def stop(self) -> None:
        """Cancel the senders (unresolved operations stay unresolved: their offsets are not committed)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # --- intake -----------------------------------------------------------------------------------

    def submit(self, operation: Operation, ticket: Ticket) -> None:
        """Queue one operation; the ticket is released once it is delivered or rejected."""
        # Ticket.hold inlined (once per operation): one more operation of this record is on its way here.
        ticket.pending += 1
        workspaces = ticket.workspaces
        if not workspaces:
            ticket.workspaces = self._only_here  # the usual first operation: no tuple built
        elif self.name not in workspaces:
            ticket.workspaces = (*workspaces, self.name)
        self.buffered += 1
        self.buffered_bytes += len(operation.body)
        if self._partitions_cache is not None:
            self._partitions_cache = None
        # hash() is stable within the process, which is all lane affinity needs.
        lane = self._lanes[hash(operation.order_key) % self._lane_count]
        if operation.after_key is not None:
            self._hold_behind(lane, operation.after_key)
        full = lane.batcher.add(operation, ticket, time.monotonic())
        if full is not None:
            lane.make_ready(full, self._revocations)
            # A one-item v1 call opened as ``full`` closed: ready too, right behind it.
            single = lane.batcher.take_full() if operation.v1 is not None else None
            if single is not None:
                lane.make_ready(single, self._revocations)
            lane.wakeup.set()

    def _hold_behind(self, lane: _Lane, after_key: str) -> None:
        """Make the batch the next operation of ``lane`` opens wait for ``after_key``'s lane's batches so far.

        A merge travels in the primary's lane; the secondary's earlier operations travel in theirs. Sent
        first, the merge would delete the secondary and those operations re-create it. So the secondary's
        open batch closes (its batches so far then number ``enqueued``), this lane's open batch closes (the
        merge opens the next one, number ``lane.enqueued``), and that batch is sent only once the other
        lane has finished them.

        No deadlock: a barrier waits only for batches made ready before it was set, in another lane, and
        its own batch is made ready after it was set. Each wait therefore points at batches made ready
        strictly earlier than the waiting one (within a lane too: batches go in order), so the waits
        follow time order and cannot form a cycle. Flush, linger, revocation (an abandoned batch still
        counts as finished) and the credential probe (taken only by a batch past its barrier) only close
        or drop batches in order; none makes a batch ready out of turn or skips ``drop_first``.
        """
        other = self._lanes[hash(after_key) % self._lane_count]
        if other is lane:
            return  # one lane: already in order
        revocations = self._revocations
        batch = other.batcher.flush()
        if batch is not None:
            other.make_ready(batch, revocations)
            other.wakeup.set()
        target = other.enqueued
        if other.finished >= target:
            return  # nothing of the secondary's lane outstanding
        batch = lane.batcher.flush()
        if batch is not None:
            lane.make_ready(batch, revocations)
            lane.wakeup.set()
        lane.barriers.append((lane.enqueued, other, target))

    def note_revocation(self) -> None:
        """Partitions were revoked: batches formed before now must drop items of revoked partitions."""
        self._revocations += 1
        self._last_revocation_at = time.monotonic()

    def flush(self) -> None:
        """Close every open batch now."""
        for lane in self._lanes:
            batch = lane.batcher.flush()
            if batch is not None:
                lane.make_ready(batch, self._revocations)
                lane.wakeup.set()

    def partitions_buffered(self) -> frozenset[Partition]:
        """Partitions with operations waiting here: the ones to pause while this workspace's intake is stopped.

        Computed by scanning the lanes rather than kept per operation: it is only needed while intake is
        stopped. The scan is reused until an operation is added (resolving only shrinks the true set, and a
        partition paused a little longer than needed is resumed once the workspace's intake restarts).
        """
        cached = self._partitions_cache
        if cached is not None and cached[0] == self._revocations:
            return cached[1]
        partitions: set[Partition] = set()
        for lane in self._lanes:
            partitions.update(ticket.partition for ticket in lane.batcher.open_tags)
            for batch, _ in lane.ready:
                partitions.update(ticket.partition for ticket in batch.tags)
        result = frozenset(partitions)
        self._partitions_cache = (self._revocations, result)
        return result

    def publish_gauges(self) -> None:
        """Refresh gauges that are cheaper to sample than to track per operation."""
        self._buffered_gauge.set(self.buffered)

    # --- senders ----------------------------------------------------------------------------------

    async def _linger(self) -> None:
        period = max(0.01, self._tuning.linger_seconds / 2)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for lane in self._lanes:
                batch = lane.batcher.due(now)
                if batch is not None:
                    lane.make_ready(batch, self._revocations)
                    lane.wakeup.set()

    async def _run_lane(self, lane: _Lane) -> None:
        while True:
            if not lane.ready:
                lane.wakeup.clear()
                await lane.wakeup.wait()
                continue
            # In a call of its own: a batch bound to a local of this loop would stay referenced while the
            # lane waits, so every idle lane (lanes × workspaces of them) kept its last batch alive, with
            # its operations and records, outside any bound (1 GB at 50 workspaces).
            await self._send_first(lane)

    async def _send_first(self, lane: _Lane) -> None:
        """Deliver the lane's first ready batch (its items still current), then drop it from the lane."""
        barriers = lane.barriers
        while barriers and barriers[0][0] <= lane.finished:
            # A merge's batch: first the secondary's lane finishes what it had before the merge. Waited
            # for here, before any rate token or concurrency permit is taken.
            _, other, target = barriers[0]
            await other.finished_at_least(target)
            barriers.popleft()  # only once passed: a lane cancelled while waiting keeps its barrier
        batch, revocations = lane.ready[0]
        if revocations != self._revocations or batch.opened_at < self._last_revocation_at:
            current = batch.select(self._is_current)
            self._abandon(batch, current)
            batch = current
        if len(batch):
            await self._deliver(batch)
        lane.drop_first()

    async def _deliver(self, batch: Batch[Ticket]) -> None:
        """Send ``batch`` until every item is resolved; only cancellation interrupts it.

        Its own loop rather than ``retry.with_retries``: a failure here also moves the AIMD limit, the
        workspace's Retry-After hold and its credential probe, and a 400 bisects. Backoff and the retry
        label are the shared ones (``RetryPolicy.delay``, ``retry_cause``).
        """
        attempt = 0
        probing = False  # after a credential failure this lane re-sends its batch as the probe
        body = batch.body()
        if self._probe_pending:
            # Rejected at start-up: wait one re-probe period, then this batch is the probe.
            self._probe_pending = False
            await asyncio.sleep(self._tuning.auth_reprobe_seconds)
            probing = True
        while True:
            if not probing:
                await self._resumed.wait()
            await self._rate.acquire()
            outcome = await self._send_once(batch, body)
            # The concurrency permit is released by now: retries and bisection must never wait for a
            # permit while holding one, or lanes bisecting at the same time deadlock each other.
            if isinstance(outcome, BatchResponse):
                self._on_accepted(batch, outcome)
                return
            if isinstance(outcome, TransientDeliveryError):
                attempt += 1
                await self._on_transient(outcome, attempt, len(batch))
            elif isinstance(outcome, AuthError):
                await self._on_auth_failure(outcome)
                probing = True
            else:
                await self._on_rejected_batch(batch, outcome)
                return

    async def _send_once(
        self, batch: Batch[Ticket], body: bytes
    ) -> BatchResponse | TransientDeliveryError | AuthError | PermanentDeliveryError:
        """One request under the concurrency limit, after any Retry-After hold; the outcome as a value."""
        while True:
            await self._concurrency.acquire()
            # Checked after the permit: a 429 may have arrived while this lane waited for it.
            hold = self._hold_until - self._clock()
            if hold <= 0:
                break
            await self._concurrency.release(backpressure=None)
            await asyncio.sleep(hold)
        backpressure = False
        try:
            v1 = batch.v1
            if v1 is not None:
                return await self._client.post_track_v1(
                    self.destination.track_url,
                    self.destination.track_auth,
                    v1.path,
                    body,
                    self._labels,
                    endpoint=v1.endpoint,
                )
            return await self._client.post_batch(
                self.destination.track_url, self.destination.track_auth, body, self._labels
            )
        except TransientDeliveryError as exc:
            backpressure = True
            return exc
        except (AuthError, PermanentDeliveryError) as exc:
            return exc
        finally:
            await self._concurrency.release(backpressure=backpressure)

    async def _on_transient(self, exc: TransientDeliveryError, attempt: int, size: int) -> None:
        self._metrics.retries.labels(self.name, retry_cause(exc.status)).inc()
        if attempt >= FAILING_AFTER_ATTEMPTS and not self.failing:
            self.failing = True
            log.warning("Workspace failing; pausing its partitions.", workspace=self.name, error=str(exc))
        delay = self._policy.delay(attempt, exc.retry_after)
        if exc.retry_after is not None:
            self._hold_until = max(self._hold_until, self._clock() + delay)
        log.info(
            "Batch delivery failed; retrying.",
            workspace=self.name,
            attempt=attempt,
            status=exc.status,
            operations=size,
            retry_in_seconds=round(delay, 3),
            error=str(exc),
        )
        await asyncio.sleep(delay)

    async def _on_auth_failure(self, exc: AuthError) -> None:
        self._metrics.auth_failures.labels(self.name, "track").inc()
        if self.stopped_reason is None:
            region = await self._diagnose() if self._diagnose is not None and exc.status in (401, 403) else None
            self.stopped_reason = region or str(exc)
            self._resumed.clear()
            self._ready_gauge.set(0)
            log.error(
                "Workspace pinned to the wrong region; delivery stopped, records kept uncommitted."
                if region
                else "Workspace credentials rejected; delivery stopped, records kept uncommitted.",
                workspace=self.name,
                status=exc.status,
                error=self.stopped_reason,
                reprobe_seconds=self._tuning.auth_reprobe_seconds,
            )
        await asyncio.sleep(self._tuning.auth_reprobe_seconds)

    def _on_accepted(self, batch: Batch[Ticket], response: BatchResponse) -> None:
        if self.stopped_reason is not None:
            log.info("Workspace credentials accepted again; delivery resumed.", workspace=self.name)
            self.stopped_reason = None
            self._ready_gauge.set(1)
        self._resumed.set()
        if self.failing:
            log.info("Workspace recovered.", workspace=self.name)
            self.failing = False
        self._metrics.batch_operations.observe(len(batch))
        self._metrics.batch_bytes.observe(batch.body_bytes)
        tags = batch.tags
        if tags:
            self._delay.observe(max(0.0, time.time() - tags[0].record.timestamp_ms / 1000))
        rejected: dict[int, DeadLetterReason] = {}
        for err in response.item_errors:
            if err.batch_index is not None and 0 <= err.batch_index < len(tags):
                detail = f"{err.field}: {err.message}" if err.field else err.message
                rejected[err.batch_index] = DeadLetterReason(
                    "rejected", f"Customer.io rejected the operation: {detail}".strip(), self.name, response.status
                )
        if response.status == 207 and not rejected:
            log.warning("Customer.io answered 207 without batch_index; treating all as delivered.", workspace=self.name)
        if rejected:
            for index, reason in rejected.items():
                tags[index].reject(reason)
        self._release_all(tags)
        self._delivered.inc(len(tags) - len(rejected))
        if rejected:
            self._rejected.inc(len(rejected))
            log.warning("Operations rejected by Customer.io.", workspace=self.name, rejected=len(rejected))
        self._resolved(len(tags), batch.operation_bytes)

    def _release_all(self, tags: list[Ticket]) -> None:
        """Release one operation of each ticket; those finished go to ``complete_many`` together."""
        # Ticket.release inlined (once per operation); the finished tickets go to the runner in one call.
        finished: list[Ticket] = []
        for ticket in tags:
            pending = ticket.pending - 1
            ticket.pending = pending
            if pending == 0:
                finished.append(ticket)
        if finished:
            self._complete_many(finished)

    async def _on_rejected_batch(self, batch: Batch[Ticket], exc: PermanentDeliveryError) -> None:
        if len(batch) > 1:
            # A whole-batch 400 hides which items are bad: bisect so good operations are never
            # dead-lettered alongside a bad one. Halves go in order, keeping per-person order.
            first, second = batch.split()
            for half in (first, second):
                await self._deliver(half)
            return
        ticket = batch.tags[0]
        ticket.reject(DeadLetterReason("rejected", f"Customer.io rejected the operation: {exc}", self.name, exc.status))
        ticket.release()
        self._rejected.inc()
        log.warning("Operation rejected by Customer.io.", workspace=self.name, status=exc.status, error=str(exc))
        self._resolved(1, batch.operation_bytes)

    def _abandon(self, batch: Batch[Ticket], kept: Batch[Ticket]) -> None:
        """Operations of revoked partitions: not sent, not resolved (their new owner re-reads them)."""
        if len(kept) < len(batch):
            self._resolved(len(batch) - len(kept), batch.operation_bytes - kept.operation_bytes)

    def _resolved(self, count: int, nbytes: int) -> None:
        self.buffered -= count
        self.buffered_bytes -= nbytes

    def _on_rate_wait(self, seconds: float) -> None:
        self._metrics.rate_limit_waits.labels(self.name, "track").inc()
        self._metrics.rate_limit_wait_seconds.labels(self.name, "track").inc(seconds)


def _each_finished(tickets: list[Ticket]) -> None:
    """The default completion: each finished ticket reports itself (no runner wired with ``complete_with``)."""
    for ticket in tickets:
        ticket.finished()
