"""An accepted batch resolves its records in one go: right contiguous prefixes per partition, never a revoked one's.

The runner takes the tickets a batch finished together (``WorkspaceDelivery.complete_with``) and resolves
them per partition run; these tests hand a delivery batches whose tickets interleave two partitions.
No Kafka and no HTTP: the batches are accepted as if Customer.io answered 200.
"""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from connector.cio.client import BatchResponse, CustomerIOClient
from connector.cio.region import pin
from connector.config import load_settings
from connector.kafka import Partition, Record
from connector.metrics import Metrics
from connector.sink.batcher import Batch
from connector.sink.delivery import WorkspaceDelivery
from connector.sink.mapping.model import Operation
from connector.sink.offsets import OffsetTracker
from connector.sink.retry import RetryPolicy
from connector.sink.routing import Router
from connector.sink.runner import Sink
from connector.sink.tickets import Ticket
from tests.sink.memory_sink import MemoryConsumer, MemoryProducer, record

TOPIC = "events"
P0, P1 = Partition(TOPIC, 0), Partition(TOPIC, 1)


class _Engine:
    """A Sink over one workspace with one lane, whose batches the test accepts in the order it chooses."""

    def __init__(self) -> None:
        settings = load_settings(
            {
                "CONNECTOR_INPUT_TOPICS": TOPIC,
                "CIO_SITE_ID": "site",
                "CIO_API_KEY": "key",
                "CIO_REGION": "us",
                "CONNECTOR_LANES_PER_WORKSPACE": "1",
            }
        )
        self.metrics = Metrics(CollectorRegistry())
        self.offsets = OffsetTracker()
        offsets = self.offsets

        def is_current(ticket: Ticket) -> bool:
            return offsets.is_current(ticket.partition, ticket.generation)

        self.delivery = WorkspaceDelivery(
            pin(settings.workspaces[0], settings.endpoints, "us"),
            CustomerIOClient(10.0, self.metrics),  # never called: the test accepts the batches
            settings.sink,
            RetryPolicy.from_settings(settings.sink),
            rate_per_second=1000.0,
            max_in_flight=4,
            metrics=self.metrics,
            is_current=is_current,
        )
        self.sink = Sink(
            settings,
            offsets=offsets,
            consumer=MemoryConsumer([]),
            producer=MemoryProducer(),
            deliveries={self.delivery.name: self.delivery},
            router=Router(settings),
            metrics=self.metrics,
        )
        self.queued: dict[tuple[int, int], tuple[Operation, Ticket]] = {}

    def fetched(self, records: list[Record]) -> None:
        """Process a fetch; its operations wait in ``queued`` (by partition number and offset) to be accepted."""
        self.sink._process(records)
        self.delivery.flush()
        for lane in self.delivery._lanes:
            while lane.ready:
                batch, _ = lane.ready.popleft()
                for operation, ticket in zip(batch.operations, batch.tags, strict=True):
                    self.queued[ticket.partition.partition, ticket.record.offset] = (operation, ticket)

    def accept(self, *items: tuple[int, int]) -> None:
        """Customer.io answers 200 to one batch of these records' operations, in this order."""
        batch: Batch[Ticket] = Batch()
        for item in items:
            operation, ticket = self.queued.pop(item)
            batch.operations.append(operation)
            batch.tags.append(ticket)
            batch.body_bytes += len(operation.body) + 1
        self.delivery._on_accepted(batch, BatchResponse(200))

    def delivered(self) -> float | None:
        self.sink._publish_counts()
        return self.metrics.registry.get_sample_value(
            "connector_records_completed_total", {"topic": TOPIC, "outcome": "delivered"}
        )


def _fetch(offsets: range) -> list[Record]:
    """Records of partitions 0 and 1 at ``offsets``, each partition's together (as a fetch returns them)."""
    return [
        record(
            offset,
            orjson.dumps({"type": "track", "event": "Order", "userId": f"u{partition}-{offset}"}),
            TOPIC,
            partition=partition,
        )
        for partition in (0, 1)
        for offset in offsets
    ]


async def test_a_batch_interleaving_two_partitions_commits_each_contiguous_prefix() -> None:
    """Records of two partitions resolved by one batch, interleaved and out of order: each partition
    commits up to its first record still in flight, and the next batch completes both."""
    engine = _Engine()
    engine.fetched(_fetch(range(4)))

    engine.accept((0, 1), (1, 0), (1, 1), (0, 2), (1, 3), (0, 3))
    assert engine.offsets.to_commit() == {P1: 2}  # partition 0 waits for offset 0, partition 1 for offset 2
    assert engine.delivered() == 6

    engine.accept((1, 2), (0, 0))
    assert engine.offsets.to_commit() == {P0: 4, P1: 4}
    assert engine.delivered() == 8
    assert engine.offsets.in_flight() == 0


async def test_a_revoked_partitions_records_in_a_batch_are_not_committed() -> None:
    """A batch accepted after its partition was revoked and assigned again resolves only the records of
    the current assignment: the old copies of the re-read records do not commit them."""
    engine = _Engine()
    engine.fetched(_fetch(range(2)))
    before_revocation = dict(engine.queued)
    engine.offsets.revoke([P1])
    engine.delivery.note_revocation()
    engine.fetched([r for r in _fetch(range(2)) if r.partition == 1])  # re-read from its committed offset

    engine.queued = before_revocation
    engine.accept((1, 0), (0, 0), (1, 1), (0, 1))
    assert engine.offsets.to_commit() == {P0: 2}
    assert engine.offsets.in_flight([P1]) == 2  # the re-read records wait for their own answers
    assert engine.delivered() == 2
