"""Kafka semantics against the real broker: transactions, tombstones, topic patterns, errors.tolerance=none.

Each test runs the real service in-process against the session's broker and the fake Customer.io.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from connector.config import KafkaSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import ensure_topics
from tests.conftest import TopicFactory
from tests.integration.harness import committed_and_end, connector_env, produce, read_all, running, wait_for

pytestmark = pytest.mark.integration


def event(user: str) -> bytes:
    """A track event whose user id says which batch it came from."""
    return orjson.dumps({"type": "track", "userId": user, "event": "Signed Up", "messageId": f"m-{user}"})


def delivered_users(fake: FakeCustomerIO) -> set[str]:
    return {str(r["operation"]["identifiers"]["id"]) for r in fake.state.operations_for("demo")}


async def produce_transaction(kafka: KafkaSettings, topic: str, users: list[str], *, commit: bool) -> None:
    """One transaction of ``users``' events over the topic's partitions, committed or aborted."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=f"tx-{uuid.uuid4().hex}")
    await producer.start()
    try:
        await producer.begin_transaction()
        for user in users:
            await producer.send(topic, event(user), key=user.encode())
        await producer.flush()
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    finally:
        await producer.stop()


async def assert_fully_committed(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> None:
    positions = await committed_and_end(kafka, group, topic, partitions)
    assert all(committed == end for committed, end in positions), positions


async def wait_until_fully_committed(
    kafka: KafkaSettings, group: str, topic: str, partitions: int, timeout: float = 60
) -> None:
    """Until the group's committed offset is the end offset of every partition (lag 0)."""
    deadline = time.monotonic() + timeout
    while True:
        positions = await committed_and_end(kafka, group, topic, partitions)
        if all(committed == end for committed, end in positions):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"committed offsets never reached the end: {positions}")
        await asyncio.sleep(0.5)


async def transactional_topic(kafka: KafkaSettings, topic: str) -> tuple[set[str], set[str]]:
    """Commit 60, abort 40, commit 30 on ``topic``: (committed users, aborted users)."""
    first = [f"committed-{i}" for i in range(60)]
    aborted = [f"aborted-{i}" for i in range(40)]
    last = [f"later-{i}" for i in range(30)]
    await produce_transaction(kafka, topic, first, commit=True)
    await produce_transaction(kafka, topic, aborted, commit=False)
    await produce_transaction(kafka, topic, last, commit=True)
    return set(first) | set(last), set(aborted)


async def test_aborted_transactions_are_not_delivered_and_lag_reaches_zero(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """read_committed (the default): exactly the committed records reach Customer.io, and the group's
    committed offset reaches the end of the log (past the aborted records and the commit markers)."""
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    committed, aborted = await transactional_topic(kafka_settings, topic)
    assert not committed & aborted
    settings = load_settings(connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq), role="sink")
    async with running(settings) as connector:
        await wait_for(lambda: delivered_users(fake) >= committed, 60, "the committed records")
        await wait_until_fully_committed(kafka_settings, settings.sink.group_id, topic, 2)  # while running
        consumed = connector.sample("connector_records_consumed_total", {"topic": topic})
    assert delivered_users(fake) == committed
    assert consumed == len(committed)
    await assert_fully_committed(kafka_settings, settings.sink.group_id, topic, 2)


async def test_read_uncommitted_delivers_aborted_records_too(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """KAFKA_ISOLATION_LEVEL=read_uncommitted (documented): aborted records are delivered as well."""
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    committed, aborted = await transactional_topic(kafka_settings, topic)
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, KAFKA_ISOLATION_LEVEL="read_uncommitted")
    settings = load_settings(env, role="sink")
    async with running(settings):
        await wait_for(lambda: delivered_users(fake) >= committed | aborted, 60, "every record, aborted ones too")
    assert delivered_users(fake) == committed | aborted


async def test_tombstones_are_skipped_and_committed_empty_values_dead_lettered(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """A null value is skipped (counted, committed, no dead letter); an empty value is still a dead letter."""
    topic, dlq = await topic_factory(), await topic_factory()
    items: list[tuple[bytes | None, bytes | None]] = [
        (b"a", event("a")),
        (b"gone", None),
        (b"b", event("b")),
        (b"empty", b""),
        (b"gone-too", None),
        (b"c", event("c")),
    ]
    await produce(kafka_settings, topic, items)
    settings = load_settings(connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq), role="sink")
    async with running(settings) as connector:
        await wait_for(lambda: delivered_users(fake) == {"a", "b", "c"}, 60, "the three events")
        await wait_for(
            lambda: connector.sample("connector_records_skipped_total", {"topic": topic, "reason": "tombstone"}) == 2,
            30,
            "two tombstones counted",
        )

        def outcomes() -> dict[str, float]:
            return {
                outcome: connector.sample("connector_records_completed_total", {"topic": topic, "outcome": outcome})
                for outcome in ("delivered", "skipped", "dead_lettered")
            }

        await wait_for(lambda: sum(outcomes().values()) == 6, 30, "every record completed")
        completed = outcomes()
    dead = await read_all(kafka_settings, dlq, expect=2, timeout=5)
    assert [(r.key, r.header("cio-dlq-reason")) for r in dead] == [(b"empty", b"empty_record")]
    assert completed == {"delivered": 3, "skipped": 2, "dead_lettered": 1}
    await assert_fully_committed(kafka_settings, settings.sink.group_id, topic, 1)


async def test_tombstones_dead_letter_when_asked(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """CONNECTOR_TOMBSTONES=dead_letter keeps the old behaviour: a null value is an empty_record dead letter."""
    topic, dlq = await topic_factory(), await topic_factory()
    await produce(kafka_settings, topic, [(b"gone", None), (b"a", event("a"))])
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_TOMBSTONES="dead_letter")
    async with running(load_settings(env, role="sink")):
        dead = await read_all(kafka_settings, dlq, expect=1, timeout=30)
    assert [(r.key, r.header("cio-dlq-reason")) for r in dead] == [(b"gone", b"empty_record")]


async def test_pattern_picks_up_a_topic_created_later_and_never_its_dead_letter_topic(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """A topic created after start-up that matches the pattern is consumed; the dead-letter topic, which the
    pattern also matches, is not (its records would be dead-lettered again, forever)."""
    prefix = f"pat-{uuid.uuid4().hex[:8]}"
    first = await topic_factory(prefix=prefix)
    dlq = f"{prefix}-dlq"
    env = connector_env(
        kafka_settings.bootstrap_servers,
        fake,
        [],
        dlq,
        CONNECTOR_INPUT_TOPICS="",
        CONNECTOR_INPUT_TOPIC_PATTERN=f"{prefix}-.*",
        KAFKA_METADATA_MAX_AGE_SECONDS="1",
    )
    settings = load_settings(env, role="sink")
    async with running(settings) as connector:
        await produce(kafka_settings, first, [(b"first", event("first")), (b"bad", b"not json")])
        await wait_for(lambda: "first" in delivered_users(fake), 60, "the first topic's event")
        later = f"{prefix}-later"
        await ensure_topics(kafka_settings, {later: 1})
        await produce(kafka_settings, later, [(b"later", event("later"))])
        await wait_for(lambda: "later" in delivered_users(fake), 60, "the later topic's event")
        await wait_for(
            lambda: (
                connector.sample("connector_records_completed_total", {"topic": first, "outcome": "dead_lettered"}) == 1
            ),
            30,
            "the dead letter",
        )
        dlq_consumed = connector.sample("connector_records_consumed_total", {"topic": dlq})
    assert (await read_all(kafka_settings, dlq, expect=1, timeout=10))[0].key == b"bad"
    assert dlq_consumed == 0
    await assert_fully_committed(kafka_settings, settings.sink.group_id, later, 1)


async def test_errors_tolerance_none_stops_the_partition_at_a_bad_record(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """errors.tolerance=none: records before the bad one are committed, nothing after it; /readyz names the
    partition and the reason; the other partition keeps flowing; nothing is dead-lettered."""
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_ERRORS_TOLERANCE="none")
    settings = load_settings(env, role="sink")
    await produce_to_partition(kafka_settings, topic, 0, [event("p0-a"), event("p0-b"), b"not json", event("p0-c")])
    await produce_to_partition(kafka_settings, topic, 1, [event("p1-a")])
    async with running(settings) as connector:
        await wait_for(lambda: {"p0-a", "p0-b", "p1-a"} <= delivered_users(fake), 60, "the records around it")
        await wait_for(lambda: connector.sample("connector_partitions_halted") == 1, 30, "the partition halted")
        await produce_to_partition(kafka_settings, topic, 1, [event("p1-b")])
        await wait_for(lambda: "p1-b" in delivered_users(fake), 60, "the other partition flowing")
        await wait_for(
            lambda: connector.sample("connector_consumer_lag_records", {"topic": topic, "partition": "1"}) == 0,
            60,
            "partition 1 committed",
        )
        status, body = await connector.readyz()
        halted = connector.sample("connector_records_halted_total", {"topic": topic, "reason": "not_json"})
    assert status == 503
    assert body["checks"]["partitions"]["ready"] is False
    detail = body["checks"]["partitions"]["detail"]
    assert f"{topic}-0 stopped at offset 2" in detail, detail
    assert "not JSON" in detail, detail
    assert halted == 1
    (p0, p1) = await committed_and_end(kafka_settings, settings.sink.group_id, topic, 2)
    assert p0 == (2, 4)  # the two records before it, not the one after
    assert p1 == (2, 2)
    assert await read_all(kafka_settings, dlq, expect=1, timeout=2) == []


async def produce_to_partition(kafka: KafkaSettings, topic: str, partition: int, values: list[bytes]) -> None:
    """Values in order onto one partition."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()
