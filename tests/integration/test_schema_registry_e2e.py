"""Schema Registry wire format end to end: records framed by confluent-kafka's own serializers, through the
real broker, decoded against the fake registry (real sockets), delivered to the fake Customer.io.

Apicurio Registry could not be used: its Maven artifact (io.apicurio:apicurio-registry-app) is a Quarkus
module without a runnable application, so the registry is ``connector.fake_registry``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connector.config import KafkaSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_registry.server import FakeSchemaRegistry
from connector.sink.schema_registry import NOT_FOUND_LOOKUPS
from tests.conftest import TopicFactory
from tests.integration.harness import committed_and_end, connector_env, produce, read_all, running, wait_for
from tests.integration.test_dead_letters import wait_fully_committed

pytestmark = pytest.mark.integration

ORDER_SCHEMA = orjson.dumps(
    {
        "type": "record",
        "name": "OrderCompleted",
        "fields": [
            {"name": "type", "type": "string"},
            {"name": "userId", "type": "string"},
            {"name": "event", "type": "string"},
            {"name": "messageId", "type": "string"},
            {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {
                "name": "properties",
                "type": {
                    "type": "record",
                    "name": "Order",
                    "fields": [
                        {
                            "name": "total",
                            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
                        },
                        {"name": "order_id", "type": {"type": "string", "logicalType": "uuid"}},
                    ],
                },
            },
        ],
    }
).decode()
IDENTIFY_SCHEMA = '{"type":"object","properties":{"type":{"type":"string"},"userId":{"type":"string"}}}'
AT = datetime(2026, 11, 28, 5, 0, 0, 123000, tzinfo=UTC)
ORDER_ID = uuid.UUID("7d9f6c1e-8f1a-4c55-9b8e-2f3a4b5c6d7e")


@pytest.fixture
async def registry() -> AsyncIterator[FakeSchemaRegistry]:
    async with FakeSchemaRegistry() as server:
        yield server


def order(user: str) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "messageId": f"order-{user}",
        "timestamp": AT,
        "properties": {"total": Decimal("12.50"), "order_id": ORDER_ID},
    }


async def serialize(
    registry: FakeSchemaRegistry, topic: str, avro: list[dict[str, Any]], json: list[Any]
) -> list[bytes]:
    """Avro then JSON Schema values, framed by confluent-kafka's serializers (registering their schemas)."""

    def run() -> list[bytes]:
        context = SerializationContext(topic, MessageField.VALUE)
        with SchemaRegistryClient({"url": registry.url}) as client:
            to_avro, to_json = AvroSerializer(client, ORDER_SCHEMA), JSONSerializer(IDENTIFY_SCHEMA, client)
            values = [to_avro(v, context) for v in avro] + [to_json(v, context) for v in json]
        return [v for v in values if v is not None]

    return await asyncio.to_thread(run)


def plain(user: str) -> bytes:
    return orjson.dumps({"type": "track", "userId": user, "event": "Plain", "messageId": f"plain-{user}"})


def operations(fake: FakeCustomerIO) -> list[dict[str, Any]]:
    """Accepted operations by person id (people are delivered in parallel lanes: no order across them)."""
    return sorted((r["operation"] for r in fake.state.operations_for("demo")), key=lambda op: op["identifiers"]["id"])


def env_for(
    kafka: KafkaSettings, fake: FakeCustomerIO, registry: FakeSchemaRegistry, topic: str, dlq: str
) -> dict[str, str]:
    return connector_env(kafka.bootstrap_servers, fake, [topic], dlq, CONNECTOR_SCHEMA_REGISTRY_URL=registry.url)


@pytest.mark.timeout(180)
async def test_avro_and_json_schema_records_are_delivered_and_bad_frames_dead_lettered_with_their_reason(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO, registry: FakeSchemaRegistry
) -> None:
    topic, dlq = await topic_factory(), await topic_factory()
    avro_value, json_value = await serialize(registry, topic, [order("u1")], [{"type": "identify", "userId": "u2"}])
    unknown_id = b"\x00\x00\x00\x03\xe7" + avro_value[5:]  # schema id 999: never registered
    await produce(
        kafka_settings,
        topic,
        [
            (b"u1", avro_value),
            (b"u2", json_value),
            (b"404", unknown_id),
            (b"cut", b"\x00\x00\x01"),  # a frame shorter than its header
            (b"bad", avro_value[:5] + b"\xff\xff\xff"),  # id 1, bytes that are not an OrderCompleted
            (b"u3", plain("u3")),  # plain JSON after them: the partition goes on
        ],
    )
    async with running(load_settings(env_for(kafka_settings, fake, registry, topic, dlq), role="sink")):
        await wait_fully_committed(kafka_settings, f"group-{dlq}", topic)
        dead = {r.key: r for r in await read_all(kafka_settings, dlq, expect=3)}
    track, identify, plain_track = operations(fake)
    assert track["type"] == "person"
    assert track["action"] == "event"
    assert track["identifiers"] == {"id": "u1"}
    assert track["name"] == "Order Completed"
    assert track["attributes"] == {"total": 12.5, "order_id": str(ORDER_ID)}
    assert track["timestamp"] == int(AT.timestamp())
    assert (identify["action"], identify["identifiers"]) == ("identify", {"id": "u2"})
    assert (plain_track["name"], plain_track["identifiers"]) == ("Plain", {"id": "u3"})
    assert set(dead) == {b"404", b"cut", b"bad"}
    assert dead[b"404"].header("cio-dlq-reason") == b"schema_not_found"
    assert dead[b"404"].header("cio-dlq-schema-id") == b"999"
    assert dead[b"cut"].header("cio-dlq-reason") == b"invalid_frame"
    assert dead[b"bad"].header("cio-dlq-reason") == b"undecodable"
    assert dead[b"bad"].header("cio-dlq-schema-id") == b"1"
    assert registry.state.lookups == {1: 1, 2: 1, 999: NOT_FOUND_LOOKUPS}  # each id fetched once, a 404 confirmed


@pytest.mark.timeout(180)
async def test_while_the_registry_is_down_records_wait_then_are_delivered_and_nothing_is_dead_lettered(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO, registry: FakeSchemaRegistry
) -> None:
    topic, dlq = await topic_factory(), await topic_factory()
    values = await serialize(registry, topic, [order("u1"), order("u2")], [])
    registry.state.unavailable = True
    await produce(kafka_settings, topic, [(b"u1", values[0]), (b"u0", plain("u0")), (b"u2", values[1])])
    settings = load_settings(env_for(kafka_settings, fake, registry, topic, dlq), role="sink")
    async with running(settings) as connector:
        await wait_for(lambda: registry.state.refused >= 3, 60, "three refused schema fetches")
        assert operations(fake) == []  # not even the plain record after it: order is kept
        ((committed, _end),) = await committed_and_end(kafka_settings, f"group-{dlq}", topic, 1)
        assert committed <= 0  # nothing past the waiting record
        registry.state.unavailable = False
        await wait_fully_committed(kafka_settings, f"group-{dlq}", topic)
        completed = {
            outcome: connector.sample("connector_records_completed_total", {"topic": topic, "outcome": outcome})
            for outcome in ("delivered", "dead_lettered")
        }
    assert completed == {"delivered": 3, "dead_lettered": 0}
    assert [op["identifiers"]["id"] for op in operations(fake)] == ["u0", "u1", "u2"]


GROUP_SCHEMA = orjson.dumps(
    {
        "type": "record",
        "name": "AccountScored",
        "fields": [
            {"name": "type", "type": "string"},
            {"name": "userId", "type": "string"},
            {"name": "groupId", "type": "string"},
            {
                "name": "traits",
                "type": {"type": "record", "name": "Score", "fields": [{"name": "ratio", "type": "double"}]},
            },
        ],
    }
).decode()


@pytest.mark.timeout(180)
async def test_an_avro_nan_is_dead_lettered_not_sent_as_a_null_that_erases_the_attribute(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO, registry: FakeSchemaRegistry
) -> None:
    topic, dlq = await topic_factory(), await topic_factory()

    def run() -> list[bytes]:
        context = SerializationContext(topic, MessageField.VALUE)
        with SchemaRegistryClient({"url": registry.url}) as client:
            to_avro = AvroSerializer(client, GROUP_SCHEMA)
            values = [
                to_avro({"type": "group", "userId": "u1", "groupId": g, "traits": {"ratio": r}}, context)
                for g, r in (("acme", 0.25), ("nan", float("nan")), ("inf", float("inf")))
            ]
        return [v for v in values if v is not None]

    scored, nan, inf = await asyncio.to_thread(run)
    await produce(kafka_settings, topic, [(b"acme", scored), (b"nan", nan), (b"inf", inf)])
    async with running(load_settings(env_for(kafka_settings, fake, registry, topic, dlq), role="sink")):
        await wait_fully_committed(kafka_settings, f"group-{dlq}", topic)
        dead = {r.key: r for r in await read_all(kafka_settings, dlq, expect=2)}
    (accepted,) = [r["operation"] for r in fake.state.operations_for("demo")]
    assert accepted["identifiers"] == {"object_type_id": "1", "object_id": "acme"}
    assert accepted["attributes"] == {"ratio": 0.25}
    assert set(dead) == {b"nan", b"inf"}
    assert dead[b"nan"].header("cio-dlq-reason") == b"invalid_field"
    assert dead[b"nan"].header("cio-dlq-message") == (
        b"schema id 1: traits.ratio: nan is a number JSON cannot carry (NaN or \xc2\xb1Infinity)"
    )
    assert (dead[b"inf"].header("cio-dlq-message") or b"").startswith(b"schema id 1: traits.ratio: inf ")
