"""`dlq replay` never commits a record it did not replay: filtered and limited runs leave the rest reachable.

Real broker; the dead letters are written as the sink writes them (headers and all), then replayed with
the command's own code in-process, through one consumer group per test (the default group's role).
"""

from __future__ import annotations

import io
import uuid
from collections import Counter

import pytest

from connector.cli import build_parser
from connector.config import KafkaSettings, Settings, load_settings
from connector.dlq_replay import replay
from connector.kafka import Producer
from connector.sink.dlq import VALUE_TRUNCATED
from tests.conftest import TopicFactory
from tests.integration.harness import read_all

pytestmark = pytest.mark.integration

REASONS = ("not_json", "rejected")


async def write_dead_letters(kafka: KafkaSettings, dlq: str, source: str, count: int) -> None:
    """``count`` dead letters of ``source`` offsets 0..count-1, reasons alternating, keyed over both partitions."""
    producer = Producer(kafka)
    await producer.start()
    try:
        for offset in range(count):
            headers = (
                ("trace", b"t"),
                ("cio-dlq-reason", REASONS[offset % 2].encode()),
                ("cio-dlq-source-topic", source.encode()),
                ("cio-dlq-source-partition", b"0"),
                ("cio-dlq-source-offset", str(offset).encode()),
                ("cio-dlq-source-timestamp", b"1700000000000"),
            )
            await producer.send_many(dlq, [(f"user-{offset % 3}".encode(), f"v{offset}".encode(), headers)])
    finally:
        await producer.stop()


async def run_replay(settings: Settings, *argv: str) -> str:
    """`cio-connector dlq replay ARGV` in-process; its output."""
    args = build_parser().parse_args(["dlq", "replay", *argv])
    out = io.StringIO()
    assert await replay(settings, args, out) == 0
    return out.getvalue()


async def replayed_offsets(kafka: KafkaSettings, source: str, at_most: int) -> Counter[int]:
    """How many times each origin offset arrived in the source topic (reads until ``at_most`` or a short wait)."""
    records = await read_all(kafka, source, expect=at_most, timeout=5)
    return Counter(int(r.header("cio-origin-offset") or b"-1") for r in records)


def replay_settings(kafka: KafkaSettings, dlq: str) -> Settings:
    return load_settings({"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "CONNECTOR_DLQ_TOPIC": dlq}, role="none")


async def test_replaying_one_reason_then_another_reaches_every_dead_letter_once(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory
) -> None:
    dlq, source = await topic_factory(partitions=2), await topic_factory()
    await write_dead_letters(kafka_settings, dlq, source, 8)
    settings, group = replay_settings(kafka_settings, dlq), f"replay-{uuid.uuid4().hex[:8]}"

    first = await run_replay(settings, "--group", group, "--reason", "not_json")
    assert "replayed 4 records" in first
    assert await replayed_offsets(kafka_settings, source, 5) == Counter({0: 1, 2: 1, 4: 1, 6: 1})

    second = await run_replay(settings, "--group", group, "--reason", "rejected")
    assert "replayed 4 records" in second
    assert await replayed_offsets(kafka_settings, source, 9) == Counter(range(8))

    last = await run_replay(settings, "--group", group)  # unfiltered: exactly what was never replayed
    assert "replayed 0 records" in last
    assert await replayed_offsets(kafka_settings, source, 9) == Counter(range(8))


async def test_a_limited_replay_leaves_the_rest_for_the_next_run(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory
) -> None:
    dlq, source = await topic_factory(partitions=2), await topic_factory()
    await write_dead_letters(kafka_settings, dlq, source, 4)
    settings, group = replay_settings(kafka_settings, dlq), f"replay-{uuid.uuid4().hex[:8]}"

    assert "replayed 1 records" in await run_replay(settings, "--group", group, "--limit", "1")
    assert sum((await replayed_offsets(kafka_settings, source, 2)).values()) == 1

    assert "replayed 3 records" in await run_replay(settings, "--group", group)
    assert await replayed_offsets(kafka_settings, source, 5) == Counter(range(4))


async def test_a_dry_run_replays_and_commits_nothing(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory
) -> None:
    dlq, source = await topic_factory(), await topic_factory()
    await write_dead_letters(kafka_settings, dlq, source, 4)
    settings, group = replay_settings(kafka_settings, dlq), f"replay-{uuid.uuid4().hex[:8]}"

    dry = await run_replay(settings, "--group", group, "--reason", "rejected", "--dry-run")
    assert "would replay 2 records" in dry
    assert await read_all(kafka_settings, source, expect=1, timeout=2) == []
    assert "replayed 4 records" in await run_replay(settings, "--group", group)


async def test_a_truncated_dead_letter_is_listed_not_replayed(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory
) -> None:
    dlq, source = await topic_factory(), await topic_factory()
    await write_dead_letters(kafka_settings, dlq, source, 2)
    producer = Producer(kafka_settings)
    await producer.start()
    try:
        headers = (
            ("cio-dlq-reason", b"not_json"),
            ("cio-dlq-source-topic", source.encode()),
            ("cio-dlq-source-partition", b"0"),
            ("cio-dlq-source-offset", b"77"),
            (VALUE_TRUNCATED, b"1048400"),
        )
        await producer.send_many(dlq, [(b"huge", b"x" * 1000, headers)])
    finally:
        await producer.stop()
    settings, group = replay_settings(kafka_settings, dlq), f"replay-{uuid.uuid4().hex[:8]}"

    out = await run_replay(settings, "--group", group)
    assert "replayed 2 records" in out
    assert "1 records cannot be replayed" in out
    assert f"{source}/0@77" in out
    assert await replayed_offsets(kafka_settings, source, 3) == Counter(range(2))
