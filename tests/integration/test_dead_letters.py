"""Dead letters always fit: a record too large for the dead-letter topic never stalls its partition.

Real broker, the fake Customer.io over HTTP, the service in-process.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest

from connector.config import KafkaSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import Producer, ensure_topics
from connector.sink.dlq import HEADERS_DROPPED, VALUE_TRUNCATED
from tests.conftest import TopicFactory
from tests.integration.harness import committed_and_end, connector_env, produce, read_all, running, wait_for

pytestmark = pytest.mark.integration


def valid_events(count: int) -> list[tuple[bytes | None, bytes | None]]:
    now = int(time.time() * 1000)
    return [
        (
            f"user-{i}".encode(),
            orjson.dumps(
                {"type": "track", "userId": f"user-{i}", "event": "Signed Up", "messageId": f"m-{i}", "timestamp": now}
            ),
        )
        for i in range(count)
    ]


async def produce_with_headers(
    kafka: KafkaSettings, topic: str, items: list[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]]
) -> None:
    """Produce records in order (one send each, so they keep their order) and wait for the acks."""
    producer = Producer(kafka)
    await producer.start()
    try:
        for item in items:
            await producer.send_many(topic, [item])
    finally:
        await producer.stop()


async def dlq_topic_with_limit(kafka: KafkaSettings, max_message_bytes: int) -> str:
    name = f"dlq-small-{uuid.uuid4().hex[:12]}"
    await ensure_topics(kafka, {name: 1}, configs={"max.message.bytes": str(max_message_bytes)})
    return name


async def wait_fully_committed(kafka: KafkaSettings, group: str, topic: str, timeout: float = 120) -> None:
    """Until the group's committed offset is the topic's end (lag 0), on its only partition."""
    deadline = time.monotonic() + timeout
    while True:
        ((committed, end),) = await committed_and_end(kafka, group, topic, 1)
        if committed == end:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"lag stayed {end - committed} (committed {committed}, end {end})")
        await asyncio.sleep(0.5)  # polling the broker's committed offset, not synchronising with the sink


async def test_a_one_mib_record_is_dead_lettered_truncated_and_the_events_after_it_committed(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """The issue's probe: a 1,048,400-byte non-JSON record, then 50 valid events; lag must reach 0."""
    topic, dlq = await topic_factory(), await topic_factory()
    huge = b"x" * 1_048_400
    await produce(kafka_settings, topic, [(b"huge", huge), *valid_events(50)])
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
    async with running(load_settings(env, role="sink")) as connector:
        await wait_fully_committed(kafka_settings, f"group-{dlq}", topic)
        (dead,) = await read_all(kafka_settings, dlq, expect=1)
        await wait_for(
            lambda: connector.sample("connector_dead_letters_reduced_total", {"form": "value_truncated"}) == 1,
            10,
            "the reduced-copy counter",
        )
    assert len(fake.state.operations_for("demo")) == 50
    assert dead.key == b"huge"
    assert dead.header("cio-dlq-reason") == b"not_json"
    assert dead.header(VALUE_TRUNCATED) == b"1048400"
    assert dead.header("cio-dlq-source-offset") == b"0"
    assert dead.value is not None
    assert 1_047_000 < len(dead.value) < len(huge)
    assert huge.startswith(dead.value)


async def test_the_dlq_topics_own_limit_is_read_and_copies_are_reduced_to_it(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """A dead-letter topic with max.message.bytes=4096: a 10 KB value is cut, 6 KB of headers are dropped."""
    topic, dlq = await topic_factory(), await dlq_topic_with_limit(kafka_settings, 4096)
    big_headers = tuple((f"h{i}", b"y" * 1000) for i in range(6))
    await produce_with_headers(
        kafka_settings,
        topic,
        [
            (b"long", b"<" * 10_000, ()),
            (b"headers", b"{not json", big_headers),
            *((k, v, ()) for k, v in valid_events(20)),
        ],
    )
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
    async with running(load_settings(env, role="sink")):
        await wait_fully_committed(kafka_settings, f"group-{dlq}", topic)
        dead = {r.header("cio-dlq-source-offset"): r for r in await read_all(kafka_settings, dlq, expect=2)}
    assert set(dead) == {b"0", b"1"}
    cut, headerless = dead[b"0"], dead[b"1"]
    assert cut.key == b"long"
    assert cut.header(VALUE_TRUNCATED) == b"10000"
    assert 2000 < len(cut.value or b"") < 4096
    assert headerless.key == b"headers"
    assert headerless.value == b""
    assert headerless.header(VALUE_TRUNCATED) == b"9"
    assert headerless.header(HEADERS_DROPPED) == b"6"
    assert headerless.header("cio-dlq-reason") == b"not_json"
    assert len(fake.state.operations_for("demo")) == 20


async def test_a_copy_the_broker_refuses_as_too_large_is_rewritten_without_its_value_not_retried(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """The limit set too high (1 MiB) for a 4096-byte topic: the broker's refusal is final for that copy."""
    topic, dlq = await topic_factory(), await dlq_topic_with_limit(kafka_settings, 4096)
    await produce(kafka_settings, topic, [(b"big", b"<" * 10_000), *valid_events(10), (b"small", b"{no")])
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_DLQ_MAX_MESSAGE_BYTES="1048576")
    async with running(load_settings(env, role="sink")) as connector:
        await wait_fully_committed(kafka_settings, f"group-{dlq}", topic)
        dead = {r.header("cio-dlq-source-offset"): r for r in await read_all(kafka_settings, dlq, expect=2)}
        minimal = connector.sample("connector_dead_letters_reduced_total", {"form": "minimal"})
    # Both dead letters written: the refused one again without its value, and the one after it not held back
    # (if it shared the refused batch it was refused with it, and rewritten the same way).
    assert set(dead) == {b"0", b"11"}
    assert dead[b"0"].value == b""
    assert dead[b"0"].header(VALUE_TRUNCATED) == b"10000"
    assert dead[b"0"].header("cio-dlq-reason") == b"not_json"
    assert dead[b"11"].header("cio-dlq-reason") == b"not_json"
    assert minimal >= 1
    assert len(fake.state.operations_for("demo")) == 10


async def test_a_record_no_copy_of_which_fits_is_committed_loudly_not_retried_forever(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """A dead-letter topic too small even for the dead-letter headers: the partition still moves on, counted."""
    topic, dlq = await topic_factory(), await dlq_topic_with_limit(kafka_settings, 200)
    await produce(kafka_settings, topic, [(b"bad", b"{no"), *valid_events(10)])
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
    async with running(load_settings(env, role="sink")) as connector:
        await wait_fully_committed(kafka_settings, f"group-{dlq}", topic)
        await wait_for(
            lambda: (
                connector.sample("connector_dead_letters_unwritable_total", {"workspace": "none", "reason": "not_json"})
                == 1
            ),
            10,
            "the unwritable counter",
        )
    assert len(fake.state.operations_for("demo")) == 10
    assert await read_all(kafka_settings, dlq, expect=1, timeout=2) == []


@pytest.mark.parametrize("enabled", [True, False])
async def test_kafka_connect_error_headers_are_written_only_when_enabled(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO, enabled: bool
) -> None:
    """CONNECTOR_DLQ_CONNECT_HEADERS: the dead letter also carries Kafka Connect's __connect.errors.* headers."""
    topic, dlq = await topic_factory(), await topic_factory()
    await produce(kafka_settings, topic, [*valid_events(3), (b"bad", b"{no")])
    env = connector_env(
        kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_DLQ_CONNECT_HEADERS=str(enabled).lower()
    )
    async with running(load_settings(env, role="sink")):
        await wait_fully_committed(kafka_settings, f"group-{dlq}", topic)
        (dead,) = await read_all(kafka_settings, dlq, expect=1)
    assert dead.key == b"bad"
    assert dead.header("cio-dlq-reason") == b"not_json"
    connect = {k: v for k, v in dead.headers if k.startswith("__connect.")}
    if not enabled:
        assert connect == {}
        return
    assert connect == {
        "__connect.errors.topic": topic.encode(),
        "__connect.errors.partition": b"0",
        "__connect.errors.offset": b"3",
        "__connect.errors.connector.name": f"group-{dlq}".encode(),
        "__connect.errors.task.id": b"0",
        "__connect.errors.stage": b"VALUE_CONVERTER",
        "__connect.errors.class.name": b"connector.sink.mapping.decode",
        "__connect.errors.exception.class.name": b"connector.not_json",
        "__connect.errors.exception.message": dead.header("cio-dlq-message"),
        "__connect.errors.exception.stacktrace": b"",
    }
