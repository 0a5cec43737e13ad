"""The listener against a real broker: every documented event lands in Kafka as specified, exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry

from connector import __version__
from connector.config import KafkaSettings
from connector.devtools.kafka_local import LocalKafka
from connector.kafka import Consumer, Partition, Producer, Record, ensure_topics
from connector.metrics import Metrics
from connector.webhook.listener import WebhookListener, serve_webhooks
from tests.webhook.cio_payloads import EXPECTED_NAMES, TIMESTAMP, signed, webhook
from tests.webhook.webhook_support import Clock, webhook_settings

pytestmark = pytest.mark.integration

PATH = "/webhooks/customerio"
RECEIVED = TIMESTAMP + 1.5
# data field → property name, written out here rather than derived, so the test checks the mapping.
PROPERTY_NAMES = {
    "campaign_id": "campaignId",
    "action_id": "actionId",
    "parent_action_id": "parentActionId",
    "journey_id": "journeyId",
    "trigger_event_id": "triggerEventId",
    "delivery_id": "deliveryId",
    "recipient": "recipient",
    "recipients": "recipients",
    "subject": "emailSubject",
    "failure_message": "reason",
    "machine": "machine",
    "tracked_response": "trackedResponse",
    "proxied": "proxied",
    "prefetched": "prefetched",
    "synthetic": "synthetic",
    "inbound_event_id": "inboundEventId",
    "to": "to",
    "content": "content",
    "email_address": "emailAddress",
}


async def _noop(_partitions: list[Partition]) -> None:
    return None


async def consume(settings: KafkaSettings, topic: str, expected: int, settle_seconds: float = 2.0) -> list[Record]:
    """Every record of ``topic`` from the beginning: wait for ``expected`` of them, then a little more."""
    consumer = Consumer(settings, f"test-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest")
    await consumer.start([topic], _noop, _noop)
    records: list[Record] = []
    try:
        deadline = time.monotonic() + 60
        while len(records) < expected and time.monotonic() < deadline:
            records += await consumer.fetch(timeout_ms=500)
        quiet_until = time.monotonic() + settle_seconds  # anything beyond `expected` is a duplicate
        while time.monotonic() < quiet_until:
            records += await consumer.fetch(timeout_ms=200)
    finally:
        await consumer.stop()
    return records


async def post(session: aiohttp.ClientSession, payload: dict[str, Any]) -> int:
    """POST a signed webhook; its status."""
    body, headers = signed(payload)
    async with session.post(PATH, data=body, headers=headers) as response:
        await response.read()
        return response.status


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[Producer]:
    """The connector's idempotent producer on the session broker."""
    producer = Producer(kafka_settings)
    await producer.start()
    yield producer
    await producer.stop()


def expected_event(payload: dict[str, Any]) -> dict[str, Any]:
    """The event the listener must produce for one of the generated payloads."""
    data = payload["data"]
    properties: dict[str, Any] = {PROPERTY_NAMES[k]: v for k, v in data.items() if k in PROPERTY_NAMES}
    if "href" in data:
        properties["link"] = {"url": data["href"], "id": data["link_id"]}
    properties.update(eventId=payload["event_id"], objectType=payload["object_type"], metric=payload["metric"])
    return {
        "type": "track",
        "event": EXPECTED_NAMES[payload["object_type"], payload["metric"]],
        "messageId": payload["event_id"],
        "userId": "user-1042",
        "timestamp": "2025-01-01T00:04:05.000Z",
        "originalTimestamp": "2025-01-01T00:04:05.000Z",
        "receivedAt": "2025-01-01T00:04:06.500Z",
        "context": {
            "integration": {"name": "Customer.io", "version": __version__},
            "library": {"name": "cio-connector", "version": __version__},
            "traits": {"email": "ana@example.com", "cioId": "a10b000001"},
        },
        "integrations": {"Customer.io": False},
        "properties": properties,
    }


async def test_every_documented_event_is_produced_field_by_field(
    kafka_settings: KafkaSettings, topic_factory: Any, producer: Producer
) -> None:
    """Each (object_type, metric) of the reference's table, posted signed over a socket, lands in Kafka as specified."""
    topic = await topic_factory(partitions=3)
    metrics = Metrics(CollectorRegistry())
    settings = webhook_settings(topic=topic, produce_timeout_seconds=10)
    run = uuid.uuid4().hex[:8]
    payloads = {f"{run}-{ot}-{m}": webhook(ot, m, event_id=f"{run}-{ot}-{m}") for ot, m in EXPECTED_NAMES}
    async with (
        serve_webhooks(settings, producer, metrics, clock=Clock(RECEIVED)) as listener,
        aiohttp.ClientSession(base_url=f"http://127.0.0.1:{listener.port}") as session,
    ):
        statuses = await asyncio.gather(*(post(session, p) for p in payloads.values()))
    assert set(statuses) == {200}

    records = await consume(kafka_settings, topic, len(payloads))
    assert Counter(r.header("event_id") for r in records) == Counter(p.encode() for p in payloads)
    for record in records:
        assert record.value is not None
        event = orjson.loads(record.value)
        payload = payloads[event["messageId"]]
        assert event == expected_event(payload), payload["object_type"] + "/" + payload["metric"]
        assert record.key == b"user-1042"
        assert record.headers == (
            ("event_id", payload["event_id"].encode()),
            ("object_type", payload["object_type"].encode()),
            ("metric", payload["metric"].encode()),
        )
    for ot, m in EXPECTED_NAMES:
        labels = {"object_type": ot, "metric": m, "workspace": ""}
        assert metrics.registry.get_sample_value("connector_webhook_events_total", labels) == 1


async def test_unknown_event_is_produced_under_the_generic_name(
    kafka_settings: KafkaSettings, topic_factory: Any, producer: Producer
) -> None:
    """An unknown object type/metric is answered 200 and produced with its raw values."""
    topic = await topic_factory()
    payload: dict[str, Any] = {
        "event_id": f"unk-{uuid.uuid4().hex}",
        "object_type": "fax",
        "metric": "beeped",
        "data": {},
    }
    async with (
        serve_webhooks(
            webhook_settings(topic=topic), producer, Metrics(CollectorRegistry()), clock=Clock()
        ) as listener,
        aiohttp.ClientSession(base_url=f"http://127.0.0.1:{listener.port}") as session,
    ):
        assert await post(session, payload) == 200
    [record] = await consume(kafka_settings, topic, 1, settle_seconds=0.5)
    assert record.value is not None
    event = orjson.loads(record.value)
    assert event["event"] == "Customer.io Event"
    assert event["properties"] == {"eventId": payload["event_id"], "objectType": "fax", "metric": "beeped"}
    assert record.key == payload["event_id"].encode()


async def test_broker_outage_503_then_retries_produced_exactly_once(restartable_kafka: LocalKafka) -> None:
    """Broker down → 503 for every webhook; broker back → retries answered 200, each event in Kafka exactly once."""
    kafka_settings = KafkaSettings(bootstrap_servers=restartable_kafka.bootstrap)
    topic = f"webhooks-outage-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_settings, {topic: 2})
    producer = Producer(kafka_settings)
    await producer.start()
    metrics = Metrics(CollectorRegistry())
    # The payloads' timestamps are fixed: the listener's clock must be near them (replay window).
    listener = WebhookListener(
        webhook_settings(topic=topic, produce_timeout_seconds=0.5), producer, metrics, clock=Clock()
    )
    await listener.start()
    before = [webhook("email", "delivered", event_id=f"before-{i}") for i in range(3)]
    during = [webhook("push", "opened", event_id=f"during-{i}") for i in range(5)]
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{listener.port}") as session:
            assert [await post(session, p) for p in before] == [200] * 3

            await asyncio.to_thread(restartable_kafka.stop)
            assert await asyncio.gather(*(post(session, p) for p in during)) == [503] * 5
            assert await asyncio.gather(*(post(session, p) for p in during)) == [503] * 5  # Customer.io retries
            assert (
                metrics.registry.get_sample_value(
                    "connector_webhook_requests_total", {"outcome": "accepted", "workspace": ""}
                )
                == 3
            )

            await asyncio.to_thread(restartable_kafka.start)
            # Customer.io keeps retrying each webhook until it gets a 2xx.
            pending = list(during)
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                statuses = await asyncio.gather(*(post(session, p) for p in pending))
                pending = [p for p, status in zip(pending, statuses, strict=True) if status != 200]
                assert set(statuses) <= {200, 503}
                if pending:
                    await asyncio.sleep(0.5)
            assert pending == []
            # And once more after success: acknowledged without producing again.
            assert await asyncio.gather(*(post(session, p) for p in during)) == [200] * 5
    finally:
        await listener.stop()
        await producer.stop()

    records = await consume(kafka_settings, topic, len(before) + len(during))
    counts = Counter(r.header("event_id") for r in records)
    assert counts == Counter(p["event_id"].encode() for p in before + during)


async def test_a_batch_refuses_only_its_too_large_record(kafka_settings: KafkaSettings) -> None:
    """One batched send: the record too large for the producer fails alone; its batch-mates (same partition,
    before and after it) are in Kafka, once each."""
    topic = f"webhooks-sizes-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_settings, {topic: 1})
    producer = Producer(kafka_settings, max_request_size=10_000)
    await producer.start()
    small = [(f"s{i}".encode(), b"x" * 100, (("n", str(i).encode()),)) for i in range(6)]
    too_large = (b"large", b"p" * 20_000, ())
    try:
        outcomes = await producer.send_batch(topic, [*small[:3], too_large, *small[3:]])
    finally:
        await producer.stop()
    assert [type(o).__name__ for o in outcomes] == ["NoneType"] * 3 + ["RecordTooLargeError"] + ["NoneType"] * 3
    records = await consume(kafka_settings, topic, len(small), settle_seconds=1.0)
    assert sorted(r.key or b"" for r in records) == sorted(key for key, _, _ in small)
