"""`dlq inspect` against the real broker: counts by reason, examples, filters, no group, no secrets."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import orjson
import pytest

from connector.config import KafkaSettings, Settings, load_settings
from connector.dlq_inspect import VALUE_PREVIEW_CHARS, inspect
from connector.kafka import Consumer, Partition, Producer, group_committed_offsets
from tests.conftest import TopicFactory
from tests.integration.harness import run_cli

pytestmark = pytest.mark.integration

UPSTREAM_TOKEN = "Bearer upstream-secret-token-123"
SECRET_IN_VALUE = "hunter2-password-value"


async def write_dead_letters(kafka: KafkaSettings, dlq: str, letters: list[tuple[str, str, int]]) -> None:
    """One dead letter per (reason, source topic, source offset), spread over the topic's partitions by key;
    each carries an upstream header with a token and a long value ending with a secret-looking string."""
    producer = Producer(kafka)
    await producer.start()
    try:
        for reason, source, offset in letters:
            headers = (
                ("authorization", UPSTREAM_TOKEN.encode()),
                ("cio-dlq-reason", reason.encode()),
                ("cio-dlq-message", f"properties.to: required ({reason})".encode()),
                ("cio-dlq-status", b""),
                ("cio-dlq-workspace", b"default"),
                ("cio-dlq-source-topic", source.encode()),
                ("cio-dlq-source-partition", b"0"),
                ("cio-dlq-source-offset", str(offset).encode()),
                ("cio-dlq-time", b"2026-11-28T05:00:00Z"),
            )
            value = orjson.dumps({"type": "track", "padding": "x" * 300, "password": SECRET_IN_VALUE})
            await producer.send_many(dlq, [(f"user-{offset}".encode(), value, headers)])
    finally:
        await producer.stop()


def settings_for(kafka: KafkaSettings, dlq: str) -> Settings:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CONNECTOR_DLQ_TOPIC": dlq,
        "CONNECTOR_GROUP_ID": "sink-g",
    }
    return load_settings(env, role="none")


async def inspect_json(settings: Settings, **options: Any) -> dict[str, Any]:
    out = io.StringIO()
    args: dict[str, Any] = {"reasons": None, "sources": None, "limit": 3, "as_json": True} | options
    assert await inspect(settings, out=out, **args) == 0
    doc: dict[str, Any] = orjson.loads(out.getvalue())
    return doc


@pytest.fixture
async def dlq(kafka_settings: KafkaSettings, topic_factory: TopicFactory) -> str:
    """A two-partition dead-letter topic: 5 not_json from orders, 2 rejected from orders, 1 rejected from users."""
    topic = await topic_factory(2)
    letters = [("not_json", "orders", n) for n in range(5)] + [("rejected", "orders", n) for n in range(5, 7)]
    await write_dead_letters(kafka_settings, topic, [*letters, ("rejected", "users", 0)])
    return topic


async def test_counts_by_reason_with_a_few_examples(kafka_settings: KafkaSettings, dlq: str) -> None:
    doc = await inspect_json(settings_for(kafka_settings, dlq), limit=2)
    assert (doc["complete"], doc["read"], doc["matched"]) == (True, 8, 8)
    assert [(r["reason"], r["count"], len(r["examples"])) for r in doc["reasons"]] == [
        ("not_json", 5, 2),
        ("rejected", 3, 2),
    ]
    example = doc["reasons"][0]["examples"][0]
    assert example["source_topic"] == "orders"
    assert example["message"] == "properties.to: required (not_json)"
    assert len(example["value_preview"]) == VALUE_PREVIEW_CHARS + 1  # the cut, and the ellipsis
    assert example["value_bytes"] > VALUE_PREVIEW_CHARS


async def test_filters_by_source_topic_and_reason(kafka_settings: KafkaSettings, dlq: str) -> None:
    settings = settings_for(kafka_settings, dlq)
    by_source = await inspect_json(settings, sources=["users"])
    assert [(r["reason"], r["count"]) for r in by_source["reasons"]] == [("rejected", 1)]
    by_reason = await inspect_json(settings, reasons=["rejected"], sources=["orders"], limit=0)
    assert (by_reason["read"], by_reason["matched"]) == (8, 2)
    assert by_reason["reasons"] == [{"reason": "rejected", "count": 2, "examples": []}]


async def consumer_groups(kafka: KafkaSettings) -> set[str]:
    """Every consumer group the broker knows."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        return {group_id for group_id, _protocol in await admin.list_consumer_groups()}
    finally:
        await admin.close()


async def test_reads_without_a_group_and_leaves_committed_offsets_alone(
    kafka_settings: KafkaSettings, dlq: str
) -> None:
    """Twice in a row the whole topic: the sink group's committed offsets stay, and no group is created."""
    settings = settings_for(kafka_settings, dlq)
    sink_group = Consumer(kafka_settings, "sink-g")
    await sink_group.connect()
    try:
        sink_group.assign([Partition(dlq, 0), Partition(dlq, 1)])
        await sink_group.commit({Partition(dlq, 0): 1, Partition(dlq, 1): 0})
    finally:
        await sink_group.stop()
    groups = await consumer_groups(kafka_settings)
    for _ in range(2):
        assert (await inspect_json(settings))["read"] == 8
    assert await group_committed_offsets(kafka_settings, "sink-g") == {Partition(dlq, 0): 1, Partition(dlq, 1): 0}
    assert await consumer_groups(kafka_settings) == groups


async def test_the_command_line_prints_no_secret_and_no_upstream_header(
    kafka_settings: KafkaSettings, dlq: str
) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CONNECTOR_DLQ_TOPIC": dlq,
        "CIO_SITE_ID": "site",
        "CIO_API_KEY": "track-key-not-shown",
        "CIO_APP_API_KEY": "app-key-not-shown",
    }
    result = await asyncio.to_thread(run_cli, env, "dlq", "inspect", "--limit", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"dead-letter topic {dlq}: 8 records read, 8 match" in out
    assert "not_json" in out
    assert re.search(r"^  orders/0@\d+  workspace default  status -", out, re.MULTILINE)
    for secret in (UPSTREAM_TOKEN, SECRET_IN_VALUE, "track-key-not-shown", "app-key-not-shown"):
        assert secret not in out + result.stderr


async def test_an_empty_topic_is_zero_records(kafka_settings: KafkaSettings, topic_factory: TopicFactory) -> None:
    doc = await inspect_json(settings_for(kafka_settings, await topic_factory(1)))
    assert (doc["complete"], doc["read"], doc["reasons"]) == (True, 0, [])
