"""A Sink wired to in-memory stand-ins for the Kafka consumer and producer, and the fake Customer.io.

For unit tests of the runner's per-record path: the stand-ins implement ``kafka.ConsumerLike`` and
``kafka.ProducerLike`` (what ``Sink`` calls) over a fixed list of records on one partition. Everything past Kafka is real (routing, mapping, the
dead-letter writer, WorkspaceDelivery and TransactionalSender over HTTP to ``connector.fake_cio``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from connector.cio.client import CustomerIOClient
from connector.cio.region import ResolvedWorkspace, resolve_workspace
from connector.config import Settings, load_settings
from connector.errors import BrokerUnavailableError
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.kafka import DEFAULT_MAX_REQUEST_SIZE, Headers, Partition, ProducerLike, RebalanceCallback, Record
from connector.metrics import Metrics
from connector.sink.delivery import WorkspaceDelivery
from connector.sink.offsets import OffsetTracker
from connector.sink.retry import RetryPolicy
from connector.sink.routing import Router
from connector.sink.runner import Sink
from connector.sink.tickets import Ticket
from connector.sink.transactional_sender import TransactionalSender

EVENTS = "events"
TRANSACTIONAL = "txn"
FAKE = Workspace("demo", "demo-site", "demo-track-key", "eu", app_api_key="demo-app-key")


class MemoryConsumer:
    """A group member alone on in-memory partitions: hands out ``records`` once and remembers commits.

    Fetches take at most ``max_records``, in the given order, from partitions that are assigned and not
    paused (``paused`` is what the runner paused). ``revoke_at_next_fetch`` plays a rebalance the way
    aiokafka does, inside a fetch: the runner's revocation callback runs before that fetch returns.
    """

    def __init__(self, records: Sequence[Record]) -> None:
        self._pending = list(records)
        self._ends: dict[Partition, int] = {}
        for r in records:
            partition = Partition(r.topic, r.partition)
            self._ends[partition] = max(self._ends.get(partition, 0), r.offset + 1)
        self._assigned = set(self._ends)
        self.paused: set[Partition] = set()
        self.handed_out = 0  # records fetched so far
        self.fetches = 0
        self.commits: list[dict[Partition, int]] = []  # every commit, in order
        self.committed_offsets: dict[Partition, int] = {}
        self.all_committed = asyncio.Event()
        self._positions: dict[Partition, int] = {}  # next offset fetch() hands out, per partition
        if not records:
            self.all_committed.set()
        self._on_revoked: RebalanceCallback | None = None
        self._revoke_next: list[Partition] = []
        self.revoking = asyncio.Event()  # set when a requested revocation's callback is called
        self.revoked = asyncio.Event()  # set once it returned

    async def start(
        self,
        topics: Sequence[str],
        on_revoked: RebalanceCallback,
        on_assigned: RebalanceCallback,
        *,
        pattern: str | None = None,
    ) -> None:
        self._on_revoked = on_revoked
        await on_assigned(sorted(self._ends, key=lambda p: (p.topic, p.partition)))

    async def stop(self) -> None:
        return None

    def revoke_at_next_fetch(self, partitions: Sequence[Partition]) -> None:
        """The next fetch revokes ``partitions`` (their records left unfetched are never handed out)."""
        self._revoke_next = list(partitions)

    async def fetch(self, timeout_ms: int, max_records: int | None = None) -> list[Record]:
        self.fetches += 1
        if self._revoke_next and self._on_revoked is not None:
            revoked, self._revoke_next = self._revoke_next, []
            self.revoking.set()
            await self._on_revoked(revoked)
            self._assigned -= set(revoked)
            self.paused -= set(revoked)
            self.revoked.set()
        count = max_records or len(self._pending)
        taken: list[Record] = []
        kept: list[Record] = []
        for r in self._pending:
            partition = Partition(r.topic, r.partition)
            if len(taken) < count and partition in self._assigned and partition not in self.paused:
                taken.append(r)
            else:
                kept.append(r)
        if not taken:
            await asyncio.sleep(timeout_ms / 1000)
            return []
        self._pending = kept
        self.handed_out += len(taken)
        for record in taken:
            self._positions[Partition(record.topic, record.partition)] = record.offset + 1
        return taken

    async def position(self, partition: Partition) -> int | None:
        return self._positions.get(partition)

    async def commit(self, offsets: dict[Partition, int]) -> None:
        self.commits.append(dict(offsets))
        self.committed_offsets.update(offsets)
        if all(self.committed_offsets.get(p) == end for p, end in self._ends.items()):
            self.all_committed.set()

    async def end_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        return {p: self._ends[p] for p in partitions if p in self._ends}

    def assignment(self) -> set[Partition]:
        return set(self._assigned)

    def pause(self, partitions: Iterable[Partition]) -> None:
        self.paused.update(partitions)

    def resume(self, partitions: Iterable[Partition]) -> None:
        self.paused.difference_update(partitions)


class MemoryProducer:
    """Keeps what is sent: the dead-letter copies, as (topic, key, value, headers)."""

    started = True

    def __init__(self, max_request_size: int = DEFAULT_MAX_REQUEST_SIZE) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, Headers]] = []
        self.max_request_size = max_request_size  # read by the dead-letter writer to size its copies

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        ack_timeout: float | None = None,
    ) -> None:
        self.sent.append((topic, key, value, headers))

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes | None, Headers]]) -> None:
        self.sent.extend((topic, key, value, headers) for key, value, headers in items)


class GatedProducer(MemoryProducer):
    """A dead-letter producer the test controls: its first ``failures`` writes raise BrokerUnavailableError,
    and when ``gated`` each write waits until ``allow`` lets it through (``waiting`` counts those held)."""

    def __init__(self, *, failures: int = 0, gated: bool = False) -> None:
        super().__init__()
        self.attempts = 0
        self.waiting = 0
        self._failures = failures
        self._gate = asyncio.Semaphore(0) if gated else None

    def allow(self, writes: int = 1) -> None:
        """Let ``writes`` more writes through the gate."""
        if self._gate is None:
            raise RuntimeError("the producer is not gated")
        for _ in range(writes):
            self._gate.release()

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes | None, Headers]]) -> None:
        self.attempts += 1
        if self._gate is not None:
            self.waiting += 1
            try:
                await self._gate.acquire()
            finally:
                self.waiting -= 1
        if self._failures > 0:
            self._failures -= 1
            raise BrokerUnavailableError("Kafka rejected a record: NotEnoughReplicasError (test)")
        await super().send_many(topic, items)


@dataclass
class Outcome:
    """What became of the records: committed offsets, dead letters by offset, and the metrics."""

    committed: dict[Partition, int]
    dead_letters: dict[tuple[str, int], dict[str, bytes]] = field(default_factory=dict)  # (topic, offset) → headers
    metrics: Metrics = field(default_factory=Metrics)


def sink_settings(fake: FakeCustomerIO, **overrides: str) -> Settings:
    """A one-workspace sink on EVENTS and the transactional topic, pinned to the fake's EU hosts.

    ``overrides`` are more settings, by environment variable name.
    """
    return load_settings(
        {
            "CIO_SITE_ID": FAKE.site_id,
            "CIO_API_KEY": FAKE.api_key,
            "CIO_APP_API_KEY": FAKE.app_api_key or "",
            "CIO_REGION": "eu",
            "CIO_TRACK_URL_EU": fake.eu_url,
            "CIO_APP_URL_EU": fake.eu_url,
            "CONNECTOR_INPUT_TOPICS": f"{EVENTS},{TRANSACTIONAL}",
            "CONNECTOR_TRANSACTIONAL_TOPIC": TRANSACTIONAL,
            "CONNECTOR_LINGER_SECONDS": "0.01",
            "CONNECTOR_COMMIT_INTERVAL_SECONDS": "0.05",
            **overrides,
        },
        role="sink",
    )


def _one_workspace_sink(
    settings: Settings,
    client: CustomerIOClient,
    ws: ResolvedWorkspace,
    *,
    consumer: MemoryConsumer,
    producer: ProducerLike,
    metrics: Metrics,
    policy: RetryPolicy,
    router: Router | None = None,
    transactional: TransactionalSender | None = None,
) -> Sink:
    """A Sink with one WorkspaceDelivery (1,000 requests/s, 4 in flight) over ``consumer``."""
    offsets = OffsetTracker()

    def is_current(ticket: Ticket) -> bool:
        return offsets.is_current(ticket.partition, ticket.generation)

    delivery = WorkspaceDelivery(
        ws,
        client,
        settings.sink,
        policy,
        rate_per_second=1000.0,
        max_in_flight=4,
        metrics=metrics,
        is_current=is_current,
    )
    return Sink(
        settings,
        offsets=offsets,
        consumer=consumer,
        producer=producer,
        deliveries={ws.name: delivery},
        router=router or Router(settings),
        metrics=metrics,
        transactional=transactional,
    )


async def run_sink(
    fake: FakeCustomerIO, records: Sequence[Record], router: Router | None = None, timeout: float = 120.0
) -> Outcome:
    """Run a Sink over ``records`` until every offset is committed (at most ``timeout`` s), then stop it.

    Raises whatever ``Sink.run`` raises, and TimeoutError if the records are not all committed in time.
    """
    settings = sink_settings(fake)
    metrics = Metrics()
    consumer, producer = MemoryConsumer(records), MemoryProducer()
    policy = RetryPolicy(initial_seconds=0.0, max_seconds=0.0, retry_after_cap_seconds=0.0)

    async with CustomerIOClient(10.0, metrics) as client:
        ws = await resolve_workspace(client, settings.endpoints, settings.workspaces[0])
        sink = _one_workspace_sink(
            settings,
            client,
            ws,
            consumer=consumer,
            producer=producer,
            metrics=metrics,
            policy=policy,
            router=router or Router(settings),
            transactional=TransactionalSender(client, policy, 1000.0, metrics),
        )
        stop = asyncio.Event()
        running = asyncio.create_task(sink.run(stop))
        committed = asyncio.create_task(consumer.all_committed.wait())
        done, _ = await asyncio.wait({running, committed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await running  # re-raises if the sink died
        committed.cancel()
        if committed not in done:
            raise TimeoutError(f"not every record was committed: {consumer.committed_offsets}")
    outcome = Outcome(dict(consumer.committed_offsets), metrics=metrics)
    for _topic, _key, _value, headers in producer.sent:
        named = dict(headers)
        source = (named["cio-dlq-source-topic"].decode(), int(named["cio-dlq-source-offset"]))
        outcome.dead_letters[source] = named
    return outcome


@contextlib.asynccontextmanager
async def started_sink(
    fake: FakeCustomerIO, consumer: MemoryConsumer, producer: ProducerLike, **overrides: str
) -> AsyncIterator[Sink]:
    """A running Sink (one workspace, ``sink_settings`` plus ``overrides``) over ``consumer``; stopped on exit.

    Retry backoff is a few milliseconds and a rejected key is re-probed every 10 ms, so nothing waits long.
    """
    settings = sink_settings(
        fake,
        CONNECTOR_RETRY_INITIAL_SECONDS="0.001",
        CONNECTOR_RETRY_MAX_SECONDS="0.005",
        CONNECTOR_AUTH_REPROBE_SECONDS="0.01",
        CONNECTOR_SHUTDOWN_TIMEOUT_SECONDS="1",
        **overrides,
    )
    metrics = Metrics()

    async with CustomerIOClient(10.0, metrics) as client:
        ws = await resolve_workspace(client, settings.endpoints, settings.workspaces[0])
        policy = RetryPolicy.from_settings(settings.sink)
        sink = _one_workspace_sink(
            settings, client, ws, consumer=consumer, producer=producer, metrics=metrics, policy=policy
        )
        stop = asyncio.Event()
        running = asyncio.create_task(sink.run(stop))
        try:
            yield sink
        finally:
            stop.set()
            await asyncio.wait_for(running, 60)


def record(offset: int, value: bytes | None, topic: str = EVENTS, headers: Headers = (), partition: int = 0) -> Record:
    """A consumed record at ``offset`` of ``partition`` (0 unless told)."""
    return Record(topic, partition, offset, 1_735_689_600_000 + offset, None, value, headers)


# --- shared by the broker-free engine tests (delivery, runner, dead-letter writer) ----------------------


class ManualClock:
    """A monotonic clock that moves only when told; counts its readings (each one is code deciding on it)."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds (generous: a busy machine)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class Resolved:
    """The ``on_done`` of test tickets: every ticket that resolved, in order (a ticket twice is a bug)."""

    def __init__(self) -> None:
        self.tickets: list[Ticket] = []

    def __call__(self, ticket: Ticket) -> None:
        self.tickets.append(ticket)

    @property
    def offsets(self) -> list[int]:
        """Offsets of the resolved tickets' records, in resolution order."""
        return [t.record.offset for t in self.tickets]
