"""The runner and the Schema Registry: a record waiting for its schema holds its own partition only,
in order, and is delivered once the registry answers (in-memory Kafka, fake registry and fake Customer.io
over real sockets)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import orjson
import pytest
from fastavro import parse_schema, schemaless_writer

from connector.fake_cio.server import FakeCustomerIO
from connector.fake_registry.server import FakeSchemaRegistry
from connector.kafka import Partition
from tests.sink.memory_sink import EVENTS, FAKE, MemoryConsumer, MemoryProducer, record, started_sink, wait_for

SCHEMA = {
    "type": "record",
    "name": "Track",
    "fields": [
        {"name": "type", "type": "string"},
        {"name": "userId", "type": "string"},
        {"name": "event", "type": "string"},
    ],
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE]) as server:
        yield server


@pytest.fixture
async def registry() -> AsyncIterator[FakeSchemaRegistry]:
    async with FakeSchemaRegistry() as server:
        yield server


def avro(schema_id: int, user: str) -> bytes:
    out = io.BytesIO(b"\x00" + schema_id.to_bytes(4, "big"))
    out.seek(5)
    schemaless_writer(out, parse_schema(SCHEMA), {"type": "track", "userId": user, "event": "Avro"})
    return out.getvalue()


def plain(user: str) -> bytes:
    return orjson.dumps({"type": "track", "userId": user, "event": "Plain"})


def users(fake: FakeCustomerIO) -> list[str]:
    return sorted(op["operation"]["identifiers"]["id"] for op in fake.state.operations_for())


async def test_a_record_waiting_for_its_schema_holds_its_partition_only_and_goes_on_once_it_arrives(
    fake: FakeCustomerIO, registry: FakeSchemaRegistry
) -> None:
    schema_id = registry.state.register("events-value", {"schema": orjson.dumps(SCHEMA).decode()})
    registry.state.unavailable = True
    waiting, free = Partition(EVENTS, 0), Partition(EVENTS, 1)
    consumer = MemoryConsumer(
        [
            record(0, avro(schema_id, "a0"), partition=0),
            record(1, plain("p0"), partition=0),  # behind the waiting record: waits too
            record(0, plain("p1"), partition=1),
            record(1, avro(schema_id, "a1"), partition=1),  # fetched after p0's wait began: waits
        ]
    )
    async with started_sink(fake, consumer, MemoryProducer(), CONNECTOR_SCHEMA_REGISTRY_URL=registry.url) as sink:
        await wait_for(
            lambda: registry.state.refused >= 3 and consumer.committed_offsets.get(free) == 1,
            "p1 committed while a0 waits",
        )
        assert users(fake) == ["p1"]
        assert waiting in consumer.paused
        assert consumer.committed_offsets.get(waiting, 0) == 0  # nothing past the waiting record
        registry.state.unavailable = False
        await consumer.all_committed.wait()
        assert consumer.paused == set()
        assert sink.halted == {}
    assert users(fake) == ["a0", "a1", "p0", "p1"]
    assert registry.state.lookups[schema_id] == 1


@pytest.mark.timeout(120)
async def test_records_waiting_for_their_schema_on_a_revoked_partition_are_left_to_its_next_owner(
    fake: FakeCustomerIO, registry: FakeSchemaRegistry
) -> None:
    schema_id = registry.state.register("events-value", {"schema": orjson.dumps(SCHEMA).decode()})
    registry.state.unavailable = True
    revoked, kept = Partition(EVENTS, 0), Partition(EVENTS, 1)
    consumer = MemoryConsumer(
        [record(0, avro(schema_id, "r0"), partition=0), record(0, avro(schema_id, "k1"), partition=1)]
    )
    async with started_sink(fake, consumer, MemoryProducer(), CONNECTOR_SCHEMA_REGISTRY_URL=registry.url):
        await wait_for(lambda: registry.state.refused >= 2, "the registry refusing")
        consumer.revoke_at_next_fetch([revoked])
        await wait_for(consumer.revoked.is_set, "the revocation (after its grace period)", timeout=60)
        registry.state.unavailable = False
        await wait_for(lambda: consumer.committed_offsets.get(kept) == 1, "k1 delivered and committed")
        # Released in the same pass as k1 had it not been dropped: the new owner re-reads it instead.
        assert users(fake) == ["k1"]
        assert revoked not in consumer.committed_offsets


async def test_at_shutdown_records_still_waiting_for_their_schema_are_named_and_left_uncommitted(
    fake: FakeCustomerIO, registry: FakeSchemaRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    schema_id = registry.state.register("events-value", {"schema": orjson.dumps(SCHEMA).decode()})
    registry.state.unavailable = True
    consumer = MemoryConsumer([record(0, avro(schema_id, "a0")), record(1, plain("p0"))])
    caplog.set_level("WARNING", logger="connector.sink.runner")
    async with started_sink(fake, consumer, MemoryProducer(), CONNECTOR_SCHEMA_REGISTRY_URL=registry.url):
        await wait_for(lambda: registry.state.refused >= 2, "the registry refusing")
    warnings = {r.getMessage(): r.fields for r in caplog.records if r.name == "connector.sink.runner"}  # type: ignore[attr-defined]
    assert warnings == {
        "Records waiting for the Schema Registry stay uncommitted; they will be re-read.": {"records": 2}
    }
    assert consumer.committed_offsets.get(Partition(EVENTS, 0), 0) == 0
    assert users(fake) == []
