"""A Sink wired to in-memory stand-ins for the Kafka consumer and producer, and the fake Customer.io.

For unit tests of the runner's per-record path: the stand-ins implement ``kafka.ConsumerLike`` and
``kafka.ProducerLike`` (what ``Sink`` calls) over a fixed list of records on one partition. Everything past Kafka is real (routing, mapping, the
dead-letter writer, WorkspaceDelivery and TransactionalSender over HTTP to ``connector.fake_cio``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from connector.cio.client import CustomerIOClient
from connector.cio.region import resolve_workspace
from connector.config import Settings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.kafka import DEFAULT_MAX_REQUEST_SIZE, Headers, Partition, RebalanceCallback, Record
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
    """Hands out ``records`` once (in fetches of ``max_records``) and remembers what was committed."""

    def __init__(self, records: Sequence[Record]) -> None:
        self._pending = list(records)
        self._ends = {Partition(r.topic, r.partition): r.offset + 1 for r in records}
        self.committed_offsets: dict[Partition, int] = {}
        self.all_committed = asyncio.Event()
        if not records:
            self.all_committed.set()

    async def start(self, topics: Sequence[str], on_revoked: RebalanceCallback, on_assigned: RebalanceCallback) -> None:
        await on_assigned(sorted(self._ends, key=lambda p: (p.topic, p.partition)))

    async def stop(self) -> None:
        return None

    async def fetch(self, timeout_ms: int, max_records: int | None = None) -> list[Record]:
        if not self._pending:
            await asyncio.sleep(timeout_ms / 1000)
            return []
        count = max_records or len(self._pending)
        taken, self._pending = self._pending[:count], self._pending[count:]
        return taken

    async def commit(self, offsets: dict[Partition, int]) -> None:
        self.committed_offsets.update(offsets)
        if all(self.committed_offsets.get(p) == end for p, end in self._ends.items()):
            self.all_committed.set()

    async def end_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        return {p: self._ends[p] for p in partitions if p in self._ends}

    def assignment(self) -> set[Partition]:
        return set(self._ends)

    def pause(self, partitions: Iterable[Partition]) -> None:
        return None

    def resume(self, partitions: Iterable[Partition]) -> None:
        return None


class MemoryProducer:
    """Keeps what is sent: the dead-letter copies, as (topic, key, value, headers)."""

    started = True
    max_request_size = DEFAULT_MAX_REQUEST_SIZE

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, Headers]] = []

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


@dataclass
class Outcome:
    """What became of the records: committed offsets, dead letters by offset, and the metrics."""

    committed: dict[Partition, int]
    dead_letters: dict[tuple[str, int], dict[str, bytes]] = field(default_factory=dict)  # (topic, offset) → headers
    metrics: Metrics = field(default_factory=Metrics)


def sink_settings(fake: FakeCustomerIO) -> Settings:
    """A one-workspace sink on EVENTS and the transactional topic, pinned to the fake's EU hosts."""
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
        },
        role="sink",
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
    offsets = OffsetTracker()

    def is_current(ticket: Ticket) -> bool:
        return offsets.is_current(ticket.partition, ticket.generation)

    async with CustomerIOClient(10.0, metrics) as client:
        ws = await resolve_workspace(client, settings.endpoints, settings.workspaces[0])
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
        sink = Sink(
            settings,
            offsets=offsets,
            consumer=consumer,
            producer=producer,
            deliveries={ws.name: delivery},
            router=router or Router(settings),
            metrics=metrics,
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


def record(offset: int, value: bytes | None, topic: str = EVENTS, headers: Headers = ()) -> Record:
    """A consumed record at ``offset`` of partition 0."""
    return Record(topic, 0, offset, 1_735_689_600_000 + offset, None, value, headers)
