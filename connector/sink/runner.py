"""The sink's driver: fetch → decode → route → map → deliver → resolve → commit.

Invariants:
- A record's offset becomes committable only when its ticket is resolved: every operation accepted by
  Customer.io, or the record written to the dead-letter topic, or the record filtered.
- Commits carry the highest *contiguous* resolved offset + 1 per partition (``offsets.py``).
- A revoked partition is never committed after its revocation: in-flight work gets a bounded grace
  period, then its tracker is dropped and late completions are ignored.
- Gaps in a partition's offsets (aborted transactions, transaction markers) are stepped over; a partition
  with nothing in flight commits the consumer's position, so lag reaches 0 after a trailing marker.
- With ``CONNECTOR_ERRORS_TOLERANCE=none`` a record that would be dead-lettered halts its partition: it
  is never resolved (so nothing past it is committed), the partition stays paused, /readyz names it.
- A record in the Schema Registry wire format whose schema is not cached yet waits (tracked, unresolved),
  with every later record of its partition, while the schema is fetched; the partition is paused meanwhile.
  A registry outage is backpressure: nothing is dead-lettered for it and nothing past it is committed.
- Backpressure, not loss: partitions feeding a congested workspace (failing, credentials rejected, or
  holding for Retry-After) or one at its share of the process-wide buffer budget (``budget.py``) are
  paused, and resumed when it recovers; at the process bound intake stops: for up to a second by not
  fetching (what aiokafka prefetched stays), then by pausing every partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import operator
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from connector.config import Settings
from connector.errors import BrokerUnavailableError
from connector.kafka import ConsumerLike, Partition, ProducerLike, Record
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.sink.budget import BufferBudget, Holding
from connector.sink.delivery import WorkspaceDelivery
from connector.sink.dlq import DeadLetterWriter
from connector.sink.framed import MAGIC, frame_id
from connector.sink.offsets import OffsetTracker
from connector.sink.positioning import StartPositioner
from connector.sink.record_path import RecordPath, SubmitTransactional
from connector.sink.retry import RetryPolicy
from connector.sink.routing import Router
from connector.sink.schema_registry import SchemaRegistry
from connector.sink.subscription import output_topics, subscription_pattern
from connector.sink.tickets import DeadLetterReason, Ticket
from connector.sink.transactional_sender import TransactionalSender, TransactionalWorkers

log = get_logger("sink.runner")

FETCH_TIMEOUT_MS = 200
# How long the buffer budget may stop every partition by holding intake rather than pausing them.
HOLD_WITHOUT_PAUSE_SECONDS = 1.0
LAG_INTERVAL_SECONDS = 5.0
REVOKE_GRACE_SECONDS = 10.0
FINAL_STEP_SECONDS = 5.0  # bound on each shutdown step that talks to Kafka
_TOPIC_AND_PARTITION = operator.itemgetter(0, 1)  # of a Record (a NamedTuple), in C


class Sink:
    """Consumes the input topics and delivers them through one ``WorkspaceDelivery`` per workspace."""

    def __init__(
        self,
        settings: Settings,
        *,
        offsets: OffsetTracker,
        consumer: ConsumerLike,
        producer: ProducerLike,
        deliveries: Mapping[str, WorkspaceDelivery],
        router: Router,
        metrics: Metrics,
        transactional: TransactionalSender | None = None,
        positioner: StartPositioner | None = None,
    ) -> None:
        self._settings = settings
        self._positioner = positioner
        self._sink = settings.sink
        self._consumer = consumer
        self._deliveries = dict(deliveries)
        self._router = router
        self._metrics = metrics
        self._policy = RetryPolicy.from_settings(settings.sink)
        self._transactional = (
            None
            if transactional is None
            else TransactionalWorkers(transactional, self._policy, self._sink.auth_reprobe_seconds)
        )
        self._offsets = offsets
        self._dlq = DeadLetterWriter(
            producer,
            self._sink.dlq_topic,
            metrics,
            self._policy,
            self._finish,
            connector_name=self._sink.group_id if self._sink.dlq_connect_headers else None,
        )
        self._progress = asyncio.Event()  # a record resolved (or a schema arrived): room may have freed up
        self._schemas = (
            SchemaRegistry(settings.schema_registry, self._policy, on_fetched=self._progress.set, metrics=metrics)
            if settings.schema_registry.url is not None
            else None
        )
        self._record_path = RecordPath(
            self._sink,
            router,
            {name: delivery.submit for name, delivery in self._deliveries.items()},
            submit_transactional=_transactional_submitter(self._transactional, self._deliveries),
            on_filtered=self._count_filtered,
            on_skipped=self._count_skipped,
            shapes=settings.topic_shapes(),
            schemas=None if self._schemas is None else self._schemas.cached,
        )
        for delivery in self._deliveries.values():
            delivery.complete_with(self._on_tickets_done)
        self._paused: set[Partition] = set()
        self._partitions: dict[tuple[str, int], Partition] = {}
        self._consumed: dict[str, int] = defaultdict(int)
        self._completed: Counter[tuple[str, str]] = Counter()  # (topic, outcome), flushed to metrics per fetch
        self._skipped: Counter[str] = Counter()  # tombstones skipped, by topic, flushed with _completed
        self._halted: dict[Partition, str] = {}  # errors.tolerance=none: partition → why it stopped
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        # One bound for the whole process, shared by the workspaces (not multiplied by their number).
        self._budget = BufferBudget(self._sink.max_buffered_operations, self._sink.max_buffered_bytes)
        self._waiting_for_room = False  # only then does resolving a record set _progress
        self._stopped_since: float | None = None  # since when the budget has stopped every partition
        # Records waiting for their schema, per partition, in offset order: (record, tracker generation).
        self._held: dict[Partition, deque[tuple[Record, int]]] = {}

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def deliveries(self) -> Mapping[str, WorkspaceDelivery]:
        """Per-workspace delivery state (readiness is read from here)."""
        return self._deliveries

    @property
    def halted(self) -> Mapping[Partition, str]:
        """Partitions stopped at a rejected record (CONNECTOR_ERRORS_TOLERANCE=none), with the reason."""
        return self._halted

    @property
    def dead_letter_failure(self) -> str | None:
        """Why dead letters cannot be written right now (they are being retried), or None."""
        return self._dlq.failing

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then flush, wait for in-flight work (bounded) and commit."""
        for delivery in self._deliveries.values():
            delivery.start()
        self._tasks.append(asyncio.create_task(self._dlq.run(), name="dlq-writer"))
        if self._transactional is not None:
            self._tasks.append(asyncio.create_task(self._transactional.run(), name="transactional"))
        pattern = self._sink.input_topic_pattern
        if pattern is not None:
            excluded = output_topics(self._settings)
            pattern = subscription_pattern(pattern, excluded)
            log.info("Subscribing by pattern; output topics excluded.", pattern=pattern, excluded=list(excluded))
        await self._consumer.start(self._sink.input_topics, self._on_revoked, self._on_assigned, pattern=pattern)
        log.info("Sink started.", topics=list(self._sink.input_topics), group=self._sink.group_id)
        try:
            await self._consume(stop)
            self._stopping = True
            await self._drain(self._sink.shutdown_timeout_seconds)
            try:
                async with asyncio.timeout(FINAL_STEP_SECONDS):
                    await self._catch_up_idle_partitions()
                    await self._commit()
            except TimeoutError:
                log.warning("Final commit timed out; uncommitted records will be re-read.")
            self._publish_counts()
        finally:
            self._stopping = True
            # Cancel retries still running past the deadline: their records stay uncommitted, not lost.
            for delivery in self._deliveries.values():
                await delivery.stop()
            if self._schemas is not None:
                await self._schemas.close()
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:
                async with asyncio.timeout(FINAL_STEP_SECONDS):
                    await self._consumer.stop()
            except TimeoutError:
                log.warning("Leaving the consumer group timed out (Kafka unreachable?).")
            except asyncio.CancelledError:
                # aiokafka's own tasks, cancelled as the brokers vanished, surface here; only a cancellation
                # of this task is passed on (a traceback at exit otherwise).
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                log.warning("Leaving the consumer group was interrupted (Kafka unreachable?).")
            log.info("Sink stopped.")

    async def _consume(self, stop: asyncio.Event) -> None:
        next_commit = next_lag = time.monotonic()
        while not stop.is_set():
            all_paused = self._apply_backpressure()
            if all_paused is None:
                # Intake held for a moment without pausing: nothing is fetched, and what aiokafka has
                # prefetched stays (a pause drops it, to be fetched again after the resume).
                await self._wait_for_progress(FETCH_TIMEOUT_MS / 1000)
            else:
                # Poll even when everything is paused (then without waiting): a member that stops polling
                # for max.poll.interval is put out of the group, which a long credential outage must not do.
                timeout_ms = 0 if all_paused else FETCH_TIMEOUT_MS
                records = await self._consumer.fetch(timeout_ms, self._sink.max_poll_records)
                if self._held:
                    self._release_held()
                if records:
                    self._process(records)
                elif all_paused:
                    # Wait for records to resolve rather than a fetch timeout, so intake resumes the moment
                    # there is room again.
                    await self._wait_for_progress(FETCH_TIMEOUT_MS / 1000)
            self._publish_counts()
            now = time.monotonic()
            if now >= next_commit:
                next_commit = now + self._sink.commit_interval_seconds
                self._raise_if_a_task_died()
                await self._until_stopped(self._commit_in_passing(), stop, "Periodic offset commit")
            if now >= next_lag:
                next_lag = now + LAG_INTERVAL_SECONDS
                await self._until_stopped(self._publish_lag(), stop, "Lag query")

    async def _commit_in_passing(self) -> None:
        await self._catch_up_idle_partitions()
        await self._commit()

    async def _until_stopped(self, step: Coroutine[Any, Any, None], stop: asyncio.Event, what: str) -> None:
        """Run a periodic Kafka step of the consume loop, abandoned once ``stop`` is set.

        With the brokers away, aiokafka's commit waits for a group coordinator for as long as it takes: the
        loop then never saw ``stop``, and the process ignored SIGTERM until SIGKILL. An abandoned step is
        cancelled (a commit not made is made by the next one, or re-reads records: nothing is lost).
        Periodic (once per commit or lag interval), so its task and waiter cost nothing per record.
        """
        work = asyncio.ensure_future(step)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((work, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not work.done():
                work.cancel()
                log.warning("Periodic Kafka step abandoned to stop (Kafka unreachable?).", step=what)
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        if not work.cancelled():
            work.result()  # what the step raised (a bug: its Kafka failures are handled inside)

    def _holds_without_pause(self, everything_stopped_by_the_budget: bool) -> bool:
        """Whether intake is held without pausing now: the budget has stopped every partition for less
        than ``HOLD_WITHOUT_PAUSE_SECONDS`` (see ``_apply_backpressure``)."""
        if not everything_stopped_by_the_budget:
            self._stopped_since = None
            return False
        now = time.monotonic()
        if self._stopped_since is None:
            self._stopped_since = now
        return now - self._stopped_since < HOLD_WITHOUT_PAUSE_SECONDS

    async def _wait_for_progress(self, timeout: float) -> None:
        """Until a record resolves, at most ``timeout`` seconds."""
        self._progress.clear()
        self._waiting_for_room = True
        try:
            async with asyncio.timeout(timeout):
                await self._progress.wait()
        except TimeoutError:
            pass
        finally:
            self._waiting_for_room = False

    def _raise_if_a_task_died(self) -> None:
        """A crashed lane or writer would stall its records forever: fail loudly instead (a bug)."""
        tasks = [*self._tasks, *(t for d in self._deliveries.values() for t in d.tasks)]
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"background task {task.get_name()} died") from task.exception()
        if self._positioner is not None and self._positioner.failure is not None:
            raise self._positioner.failure

    async def _drain(self, timeout: float) -> None:
        """Flush every batch and wait for in-flight records to resolve, at most ``timeout`` seconds.

        Records that cannot resolve before a restart are not waited for: a halted partition's, and those
        held by a workspace stopped for rejected credentials (it sends nothing until a re-probe succeeds).
        They stay uncommitted and are re-read after the restart.
        """
        if self._held:
            self._release_held()  # those whose schema arrived; the rest stay unresolved, re-read after a restart
        waiting = sum(map(len, self._held.values()))
        if waiting:
            log.warning(
                "Records waiting for the Schema Registry stay uncommitted; they will be re-read.", records=waiting
            )
        for delivery in self._deliveries.values():
            delivery.flush()
        await _wait_until(self._nothing_resolvable_in_flight, timeout)
        left = max(0, self._in_flight_not_halted() - waiting)
        stopped = sorted(name for name, d in self._deliveries.items() if d.stopped_reason is not None and d.buffered)
        if left and self._nothing_resolvable_in_flight():
            log.warning(
                "Records held by workspaces stopped for rejected credentials stay uncommitted; they will be re-read.",
                records=left,
                workspaces=stopped,
            )
        elif left:
            log.warning("Shutdown deadline passed; unresolved records will be re-read.", records=left)

    def _nothing_resolvable_in_flight(self) -> bool:
        """No in-flight record can still resolve: every one left is halted or held by a stopped workspace.

        Every unresolved record is in a workspace's buffer, the dead-letter writer or a transactional send
        (mapping is synchronous); when only stopped workspaces hold operations, the rest can only wait.
        """
        if not self._in_flight_not_halted():
            return True
        return (
            self._dlq.pending == 0
            and (self._transactional is None or self._transactional.unfinished == 0)
            and all(d.buffered == 0 for d in self._deliveries.values() if d.stopped_reason is None)
        )

    # --- per record (hot path) --------------------------------------------------------------------

    def _process(self, records: list[Record]) -> None:
        on_done = self._on_ticket_done
        schemas = self._schemas
        map_record = self._record_path.map  # decode → route → map, shared with `cio-connector map`
        map_run = self._record_path.map_run  # the same, for a whole run of records (compiled: setup.py)
        # A fetch returns each partition's records together, in offset order: the partition's tracker is
        # looked up once per run of records, and every offset is tracked before any record can resolve.
        for (topic, number), group in itertools.groupby(records, _TOPIC_AND_PARTITION):
            run = list(group)
            partition = self._partition(topic, number)
            tracker = self._offsets.tracker(partition)
            tracker.extend([record.offset for record in run])
            generation = tracker.generation
            if schemas is None:  # no record can wait for a schema: the run is mapped in one call
                map_run(run, partition, generation, on_done)
                self._consumed[topic] += len(run)
                continue
            held = self._held.get(partition)
            for record in run:
                if held is not None or self._awaits_schema(record.value):
                    if held is None:
                        held = self._held[partition] = deque()
                    held.append((record, generation))
                    continue
                ticket = Ticket(record, partition, generation, on_done)
                map_record(record, ticket)
                ticket.seal()
            self._consumed[topic] += len(run)
        for topic, count in self._consumed.items():
            self._metrics.records_consumed.labels(topic).inc(count)
        self._consumed.clear()

    def _awaits_schema(self, value: bytes | None) -> bool:
        """Whether a record is framed with a schema id not cached yet (its fetch is then started)."""
        if not value or value[0] != MAGIC or self._schemas is None:
            return False
        schema_id = frame_id(value)
        if schema_id is None or self._schemas.cached(schema_id) is not None:
            return False  # a truncated frame is dead-lettered when mapped; a cached schema decodes now
        self._schemas.request(schema_id)
        return True

    def _release_held(self) -> None:
        """Map the held records whose schema has arrived, in order, up to the first still waiting."""
        on_done = self._on_ticket_done
        for partition, held in list(self._held.items()):
            while held:
                record, generation = held[0]
                if not self._offsets.is_current(partition, generation):
                    held.clear()  # revoked meanwhile: its new owner re-reads them
                    break
                if self._awaits_schema(record.value):
                    break
                held.popleft()
                ticket = Ticket(record, partition, generation, on_done)
                self._record_path.map(record, ticket)
                ticket.seal()
            if not held:
                del self._held[partition]

    def _partition(self, topic: str, number: int) -> Partition:
        key = (topic, number)
        partition = self._partitions.get(key)
        if partition is None:
            partition = self._partitions[key] = Partition(topic, number)
        return partition

    def _publish_counts(self) -> None:
        """Move per-record tallies into Prometheus (labels() lookups are too slow to do per record)."""
        completed = self._completed
        for (topic, outcome), count in completed.items():
            self._metrics.records_completed.labels(topic, outcome).inc(count)
        completed.clear()
        for topic, count in self._skipped.items():
            self._metrics.records_skipped.labels(topic, "tombstone").inc(count)
        self._skipped.clear()
        self._metrics.records_in_flight.set(self._offsets.in_flight())

    def _count_filtered(self, workspace: str, reason: str) -> None:
        self._metrics.filtered.labels(workspace, reason).inc()

    def _count_skipped(self, topic: str) -> None:
        self._skipped[topic] += 1

    def _on_ticket_done(self, ticket: Ticket) -> None:
        # Delivered records mostly complete a batch at a time (_on_tickets_done); these are the rest.
        if ticket.dead_letter is None:
            self._finish(ticket)
        elif not self._offsets.is_current(ticket.partition, ticket.generation):
            return  # revoked meanwhile: its new owner re-reads it
        elif self._sink.errors_tolerance == "none":
            self._halt(ticket, ticket.dead_letter)
        else:
            self._dlq.submit(ticket)

    def _on_tickets_done(self, tickets: list[Ticket]) -> None:
        """``_on_ticket_done`` for the tickets one accepted batch finished, in batch order.

        A batch holds runs of one partition's tickets (a fetch hands each partition's records over
        together): the tracker is looked up once per run, not per ticket, and outcomes are tallied per run.
        A ticket finished by a delivery held an operation there, so it is neither skipped nor only
        filtered: it is delivered, or dead-lettered (then handled one by one, as ``_on_ticket_done`` does).
        Revoked partitions' tickets are ignored, as there: their new owner re-reads them.
        """
        offsets = self._offsets
        completed = self._completed
        partition: Partition | None = None
        generation = -1
        tracker = None
        delivered = 0
        for ticket in tickets:
            if ticket.dead_letter is not None:
                self._on_ticket_done(ticket)
                continue
            if ticket.partition is not partition or ticket.generation != generation:
                if delivered and partition is not None:
                    completed[partition.topic, "delivered"] += delivered
                    delivered = 0
                partition = ticket.partition
                generation = ticket.generation
                tracker = offsets.current(partition, generation)
            if tracker is not None:
                tracker.resolve(ticket.record.offset)
                delivered += 1
        if delivered and partition is not None:
            completed[partition.topic, "delivered"] += delivered
        if self._waiting_for_room:
            self._progress.set()

    def _halt(self, ticket: Ticket, reason: DeadLetterReason) -> None:
        """errors.tolerance=none: the record stays unresolved (nothing past it is committed) and its
        partition is paused until a restart or a rebalance re-reads it."""
        partition = ticket.partition
        self._metrics.records_halted.labels(partition.topic, reason.reason).inc()
        if partition in self._halted:
            return  # an earlier record already stopped it
        offset = ticket.record.offset
        self._halted[partition] = (
            f"{partition.topic}-{partition.partition} stopped at offset {offset}: {reason.message}"
        )
        self._metrics.partitions_halted.set(len(self._halted))
        log.error(
            "Record rejected with CONNECTOR_ERRORS_TOLERANCE=none; partition stopped.",
            topic=partition.topic,
            partition=partition.partition,
            offset=offset,
            reason=reason.reason,
        )

    def _in_flight_not_halted(self, partitions: list[Partition] | None = None) -> int:
        """Unresolved records worth waiting for: a halted partition's never resolve."""
        chosen = self._offsets.partitions() if partitions is None else partitions
        return self._offsets.in_flight([p for p in chosen if p not in self._halted])

    def _finish(self, ticket: Ticket) -> None:
        """The record is resolved (delivered, filtered, or its dead-letter copy acknowledged)."""
        tracker = self._offsets.current(ticket.partition, ticket.generation)
        if tracker is None:
            return  # revoked meanwhile: its new owner re-reads it
        tracker.resolve(ticket.record.offset)
        self._completed[ticket.partition.topic, ticket.outcome] += 1
        if self._waiting_for_room:
            self._progress.set()

    # --- flow control, commits, lag ---------------------------------------------------------------

    def _apply_backpressure(self) -> bool | None:
        """Pause what must not be fetched now, resume the rest; True when the whole assignment is paused.

        None: intake is held without pausing anything. When the buffer budget stops every partition,
        routinely under a backlog and for a fraction of a second, pausing would make aiokafka drop what
        it has prefetched (up to a fetch per partition), to fetch it again after the resume while the
        sink waits. So for up to ``HOLD_WITHOUT_PAUSE_SECONDS`` the sink just stops fetching; a bound
        that lasts (a workspace failing) then pauses as before, and the loop polls again, which a group
        member must do within max.poll.interval.
        """
        assignment = self._consumer.assignment()
        deliveries = self._deliveries
        was_full = self._budget.full
        # Records waiting for the dead-letter writer or a transactional send hold memory too.
        plan = self._budget.plan(
            {name: Holding(d.buffered, d.buffered_bytes, d.congested) for name, d in deliveries.items()},
            self._dlq.pending + (self._transactional.pending if self._transactional is not None else 0),
        )
        # Intake just stopped (for the process or a workspace): open batches go out now, lingering gains
        # nothing while nothing comes in; intake restarts below half the room (hysteresis, budget.py).
        for name in plan.flush:
            deliveries[name].flush()
        for delivery in deliveries.values():
            delivery.publish_gauges()
        wanted: set[Partition] = set()
        if plan.full:
            wanted = set(assignment)
        else:
            for name in plan.held_back:
                wanted |= deliveries[name].partitions_buffered()
            wanted &= assignment
        # Halted, or waiting for a schema (the records after them wait too): paused whatever the budget.
        stopped = (self._halted.keys() | self._held.keys()) & assignment
        wanted |= stopped
        if self._holds_without_pause(bool(assignment) and wanted >= assignment and stopped <= self._paused):
            return None
        pause = wanted - self._paused
        resume = (self._paused - wanted) & assignment
        # Pauses at the memory bound are routine under backlog (debug); a congested workspace's are news.
        say = log.debug if plan.full or was_full else log.info
        if pause:
            self._consumer.pause(pause)
            say("Partitions paused for backpressure.", partitions=sorted(f"{p.topic}-{p.partition}" for p in pause))
        if resume:
            self._consumer.resume(resume)
            say("Partitions resumed.", partitions=sorted(f"{p.topic}-{p.partition}" for p in resume))
        self._paused = wanted
        self._metrics.partitions_paused.set(len(wanted))
        return bool(assignment) and wanted >= assignment

    async def _catch_up_idle_partitions(self) -> None:
        """Partitions with nothing in flight may commit the consumer's position (``offsets.py``)."""
        for partition in self._consumer.assignment():
            tracker = self._offsets.tracker(partition)
            if tracker.pending:
                continue
            position = await self._consumer.position(partition)
            # Re-checked after the await: the partition may have been revoked (a new tracker) meanwhile.
            if position is not None and self._offsets.current(partition, tracker.generation) is tracker:
                tracker.catch_up(position)

    async def _commit(self, only: list[Partition] | None = None) -> None:
        offsets = self._offsets.to_commit()
        if only is not None:
            offsets = {p: o for p, o in offsets.items() if p in only}
        if not offsets:
            return
        started = time.perf_counter()
        try:
            await self._consumer.commit(offsets)
        except BrokerUnavailableError as exc:
            self._metrics.commits.labels("failed").inc()
            log.warning("Offset commit failed; will retry.", error=str(exc))
            return
        self._metrics.commit_duration.observe(time.perf_counter() - started)
        self._metrics.commits.labels("ok").inc()
        self._offsets.mark_committed(offsets)

    async def _publish_lag(self) -> None:
        partitions = self._offsets.partitions()
        if not partitions:
            return
        try:
            ends = await self._consumer.end_offsets(partitions)
        except BrokerUnavailableError:
            return
        for partition, end in ends.items():
            if not self._offsets.is_tracked(partition):
                continue
            tracker = self._offsets.tracker(partition)
            position = tracker.committed if tracker.committed is not None else tracker.first_seen
            if position < 0:
                continue  # nothing fetched or committed yet: no lag known
            self._metrics.consumer_lag.labels(partition.topic, str(partition.partition)).set(max(0, end - position))

    async def _on_assigned(self, partitions: list[Partition]) -> None:
        if self._positioner is not None:
            await self._positioner.place(partitions)
        self._metrics.partitions_assigned.set(len(self._consumer.assignment()))
        log.info("Partitions assigned.", partitions=sorted(f"{p.topic}-{p.partition}" for p in partitions))

    async def _on_revoked(self, partitions: list[Partition]) -> None:
        if not partitions:
            return
        for delivery in self._deliveries.values():
            delivery.flush()
        grace = 0.0 if self._stopping else REVOKE_GRACE_SECONDS
        await _wait_until(lambda: not self._in_flight_not_halted(partitions), grace)
        await self._commit(only=partitions)
        abandoned = self._offsets.in_flight(partitions)
        self._offsets.revoke(partitions)
        for delivery in self._deliveries.values():
            delivery.note_revocation()
        self._paused -= set(partitions)
        for partition in partitions:
            self._held.pop(partition, None)  # unresolved, uncommitted: its next owner re-reads them
        for partition in partitions:
            self._halted.pop(partition, None)  # its next owner re-reads the record and decides again
        self._metrics.partitions_halted.set(len(self._halted))
        self._metrics.partitions_revoked.inc(len(partitions))
        self._metrics.partitions_assigned.set(len(set(self._consumer.assignment()) - set(partitions)))
        for partition in partitions:
            with contextlib.suppress(KeyError):  # no lag published yet for it
                self._metrics.consumer_lag.remove(partition.topic, str(partition.partition))
        log.info(
            "Partitions revoked.",
            partitions=sorted(f"{p.topic}-{p.partition}" for p in partitions),
            abandoned_records=abandoned,
        )


async def _wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; whether it held.

    Polling (not an Event) because the condition spans many tickets, lanes and the dead-letter writer;
    it only runs during shutdown and rebalances.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll)
    return True


def _transactional_submitter(
    workers: TransactionalWorkers | None, deliveries: Mapping[str, WorkspaceDelivery]
) -> SubmitTransactional | None:
    """Transactional sends go to the App API of the workspace the record was routed to."""
    if workers is None:
        return None

    def submit(workspace: str, body: bytes, ticket: Ticket) -> None:
        workers.submit(deliveries[workspace].destination, body, ticket)

    return submit
