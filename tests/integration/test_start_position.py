"""Where a new consumer group starts (CONNECTOR_START_FROM) and `cio-connector offsets show|reset`.

Real broker, the fake Customer.io over HTTP, the real service in-process and the real CLI as a process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from connector.config import KafkaSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from tests.integration.harness import (
    committed_and_end,
    connector_env,
    messages_as_records,
    produce,
    run_cli,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration

JANUARY = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
JUNE = int(dt.datetime(2024, 6, 1, tzinfo=dt.UTC).timestamp() * 1000)


def track(tag: str, count: int) -> list[dict[str, Any]]:
    return [
        {"type": "track", "userId": f"{tag}-{i}", "event": "Visited", "messageId": f"{tag}-{i}"} for i in range(count)
    ]


def user_ids(fake: FakeCustomerIO) -> list[str]:
    return [str(r["operation"]["identifiers"]["id"]) for r in fake.state.operations_for("demo")]


async def produce_at(
    kafka: KafkaSettings, topic: str, partition: int, timestamp_ms: int, *, tag: str, count: int
) -> None:
    """Records with an explicit CreateTime, so a start time falls between them whatever the clock."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for message in track(tag, count):
            await producer.send_and_wait(
                topic,
                orjson.dumps(message),
                key=message["userId"].encode(),
                partition=partition,
                timestamp_ms=timestamp_ms,
            )
    finally:
        await producer.stop()


async def fully_committed(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> bool:
    return all(c == e for c, e in await committed_and_end(kafka, group, topic, partitions))


async def wait_committed(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> None:
    """Until the group's committed offsets reach the end of every partition (the sink's idle catch-up)."""
    deadline = time.monotonic() + 60
    while not await fully_committed(kafka, group, topic, partitions):
        assert time.monotonic() < deadline, "offsets never reached the end"
        await asyncio.sleep(0.2)


async def test_new_group_with_latest_delivers_only_records_produced_after_it_started(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    await produce(kafka_settings, topic, messages_as_records(track("old", 20)))
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_START_FROM="latest")
    settings = load_settings(env, role="sink")
    async with running(settings):
        # The sink commits its start position (the end) once it is placed: from then on, records are new.
        await wait_committed(kafka_settings, settings.sink.group_id, topic, 2)
        await produce(kafka_settings, topic, messages_as_records(track("new", 20)))
        await wait_for(lambda: len(set(user_ids(fake))) >= 20, 60, "the new records")
        await wait_committed(kafka_settings, settings.sink.group_id, topic, 2)
    assert set(user_ids(fake)) == {f"new-{i}" for i in range(20)}


async def test_new_group_with_a_time_starts_each_partition_at_its_first_record_from_then(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """Partition 0 has January and June records, partition 1 only January ones (it starts at its end)."""
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    await produce_at(kafka_settings, topic, 0, JANUARY, tag="jan0", count=5)
    await produce_at(kafka_settings, topic, 0, JUNE, tag="jun0", count=5)
    await produce_at(kafka_settings, topic, 1, JANUARY, tag="jan1", count=5)
    env = connector_env(
        kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_START_FROM="2024-03-01T00:00:00+00:00"
    )
    settings = load_settings(env, role="sink")
    async with running(settings):
        await wait_committed(kafka_settings, settings.sink.group_id, topic, 2)
    assert sorted(user_ids(fake)) == sorted(f"jun0-{i}" for i in range(5))


async def test_offsets_show_reset_and_dry_run(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """show lists committed/end/lag; reset is refused while a sink runs; --dry-run commits nothing;
    reset --to earliest makes the sink deliver everything again."""
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    await produce(kafka_settings, topic, messages_as_records(track("u", 30)))
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
    settings = load_settings(env, role="sink")
    group = settings.sink.group_id
    async with running(settings):
        await wait_for(lambda: len(user_ids(fake)) >= 30, 60, "the first delivery")
        await wait_committed(kafka_settings, group, topic, 2)
        refused = run_cli(env, "offsets", "reset", "--to", "earliest")
        assert refused.returncode == 1
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "active member" in refused.stderr
        assert group in refused.stderr
    ends = [e for _, e in await committed_and_end(kafka_settings, group, topic, 2)]
    assert sum(ends) == 30

    shown = run_cli(env, "offsets", "show")
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines()[2:]]
    assert rows == [[topic, str(p), str(ends[p]), str(ends[p]), "0"] for p in range(2)]

    dry = run_cli(env, "offsets", "reset", "--to", "earliest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "nothing committed" in dry.stdout
    assert [line.split()[3] for line in dry.stdout.splitlines()[2:]] == ["0", "0"]
    assert [c for c, _ in await committed_and_end(kafka_settings, group, topic, 2)] == ends

    done = run_cli(env, "offsets", "reset", "--to", "earliest")
    assert done.returncode == 0, done.stderr
    assert [c for c, _ in await committed_and_end(kafka_settings, group, topic, 2)] == [0, 0]
    lagging = run_cli(env, "offsets", "show")
    assert [line.split()[4] for line in lagging.stdout.splitlines()[2:]] == [str(e) for e in ends]

    async with running(settings):
        await wait_for(lambda: len(user_ids(fake)) >= 60, 60, "the records delivered again")
        await wait_committed(kafka_settings, group, topic, 2)
    assert sorted(user_ids(fake)) == sorted([f"u-{i}" for i in range(30)] * 2)


async def test_offsets_reset_to_a_time(kafka_settings: KafkaSettings, topic_factory: Any) -> None:
    topic = await topic_factory(partitions=1)
    await produce_at(kafka_settings, topic, 0, JANUARY, tag="jan", count=3)
    await produce_at(kafka_settings, topic, 0, JUNE, tag="jun", count=2)
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers, "CONNECTOR_GROUP_ID": f"g-{topic}"}
    done = run_cli(env, "offsets", "reset", "--to", "2024-03-01T00:00:00Z", "--topic", topic)
    assert done.returncode == 0, done.stderr
    assert await committed_and_end(kafka_settings, f"g-{topic}", topic, 1) == [(3, 5)]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["offsets", "reset", "--to", "yesterday"], "--to"),
        (["offsets", "reset", "--to", "2024-03-01T00:00:00"], "--to"),
    ],
)
def test_offsets_reset_answers_a_bad_position_with_one_line(args: list[str], named: str) -> None:
    result = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert named in result.stderr


def test_a_bad_start_from_is_a_config_error_naming_it() -> None:
    result = run_cli({"CONNECTOR_START_FROM": "beginning", "CONNECTOR_INPUT_TOPICS": "t"}, "sink")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "CONNECTOR_START_FROM" in result.stderr
