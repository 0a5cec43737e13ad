"""Objects, relationships and identify timestamps end to end: real broker, the fake Customer.io over HTTP,
the service in-process (issue 15, points 1-3)."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import orjson
import pytest

from connector.cli import build_parser
from connector.config import KafkaSettings, load_settings
from connector.dlq_replay import replay
from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import Producer
from tests.conftest import TopicFactory
from tests.integration.harness import (
    committed_and_end,
    connector_env,
    messages_as_records,
    produce,
    read_all,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration

ACME = {"object_type_id": "1", "object_id": "acme"}
TIMEOUT = 60.0


def operations(fake: FakeCustomerIO) -> list[dict[str, Any]]:
    return [r["operation"] for r in fake.state.operations_for("demo")]


async def wait_committed(kafka: KafkaSettings, group: str, topic: str) -> None:
    """Until the sink's group has committed the whole (one-partition) topic."""
    deadline = time.monotonic() + TIMEOUT
    while not all(c == e for c, e in await committed_and_end(kafka, group, topic, 1)):
        assert time.monotonic() < deadline, "the sink did not commit everything"
        await asyncio.sleep(0.2)  # polling the broker's committed offsets, not synchronising with the sink


async def test_object_and_relationship_messages_reach_customer_io_as_object_operations(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    topic, dlq = await topic_factory(), await topic_factory()
    messages: list[dict[str, Any]] = [
        {
            "type": "group",
            "userId": "42",
            "groupId": "acme",
            "traits": {"objectAttributes": {"name": "Acme"}, "relationshipAttributes": {"role": "admin"}},
        },
        {"type": "identify", "userId": "43", "traits": {"objectId": "acme", "relationshipAttributes": {"role": "x"}}},
        {"type": "track", "userId": "42", "event": "Relationship Deleted", "properties": {"objectId": "acme"}},
        {"type": "track", "anonymousId": "a1", "event": "Object Deleted", "properties": {"objectId": "acme"}},
        {"type": "track", "userId": "44", "event": "Relationship Deleted", "properties": {}},  # dead letter
    ]
    await produce(kafka_settings, topic, messages_as_records(messages))
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
    async with running(load_settings(env, role="sink")):
        await wait_for(lambda: len(operations(fake)) >= 4, TIMEOUT, "four operations at the fake")
        (dead,) = await read_all(kafka_settings, dlq, expect=1)
        await wait_committed(kafka_settings, f"group-{dlq}", topic)
    ops = {(op["type"], op["action"]): op for op in operations(fake)}
    assert ops.keys() == {
        ("object", "identify"),
        ("person", "identify"),
        ("object", "delete_relationships"),
        ("object", "delete"),
    }
    assert ops["object", "identify"]["attributes"] == {"name": "Acme"}
    assert ops["object", "identify"]["cio_relationships"] == [
        {"identifiers": {"id": "42"}, "relationship_attributes": {"role": "admin"}}
    ]
    assert ops["person", "identify"]["cio_relationships"] == [
        {"identifiers": ACME, "relationship_attributes": {"role": "x"}}
    ]
    assert ops["object", "delete_relationships"] == {
        "type": "object",
        "action": "delete_relationships",
        "identifiers": ACME,
        "cio_relationships": [{"identifiers": {"id": "42"}}],
    }
    assert ops["object", "delete"] == {"type": "object", "action": "delete", "identifiers": ACME}
    assert fake.state.stats()["rejected_operations"] == {}
    assert dead.header("cio-dlq-reason") == b"missing_field"
    assert (dead.header("cio-dlq-message") or b"").startswith(b"properties.objectId:")
    assert orjson.loads(dead.value or b"")["userId"] == "44"


def identify(plan: str, timestamp_ms: int) -> dict[str, Any]:
    return {"type": "identify", "userId": "u1", "traits": {"plan": plan}, "timestamp": timestamp_ms}


@pytest.mark.parametrize(
    ("policy", "applied"),
    [("event", ["current"]), ("now", ["current", "late fix"]), ("omit", ["current", "late fix"])],
)
async def test_identify_timestamp_policies_against_a_customer_io_that_ignores_stale_updates(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO, policy: str, applied: list[str]
) -> None:
    """The problem (``event``: the late identify answers 200 and does nothing) and each policy's outcome."""
    fake.state.set_faults(ignore_stale_identifies=True)
    topic, dlq = await topic_factory(), await topic_factory()
    now_ms = int(time.time() * 1000)
    late = [identify("current", now_ms), identify("late fix", now_ms - 3_600_000)]
    await produce(kafka_settings, topic, messages_as_records(late))
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_IDENTIFY_TIMESTAMP=policy)
    async with running(load_settings(env, role="sink")):
        await wait_committed(kafka_settings, f"group-{dlq}", topic)
    assert [op["attributes"]["plan"] for op in operations(fake)] == applied
    assert fake.state.stats()["ignored_operations"] == ({"demo": 1} if policy == "event" else {})
    stamped = [op.get("timestamp") for op in operations(fake)]
    if policy == "omit":
        assert stamped == [None, None]
    elif policy == "now":
        assert all(isinstance(ts, int) and ts >= now_ms // 1000 for ts in stamped)
    assert await read_all(kafka_settings, dlq, expect=1, timeout=1) == []  # committed, not dead-lettered


async def test_dlq_replay_with_fresh_timestamps_applies_a_stale_identify(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    """A dead-lettered identify replayed after the profile changed: with --fresh-timestamps it is applied."""
    fake.state.set_faults(ignore_stale_identifies=True)
    topic, dlq = await topic_factory(), await topic_factory()
    now_ms = int(time.time() * 1000)
    await produce(kafka_settings, topic, messages_as_records([identify("current", now_ms)]))
    stale = orjson.dumps(identify("replayed", now_ms - 86_400_000))
    dead_headers = (
        ("cio-dlq-reason", b"rejected"),
        ("cio-dlq-source-topic", topic.encode()),
        ("cio-dlq-source-partition", b"0"),
        ("cio-dlq-source-offset", b"99"),
        ("cio-dlq-source-timestamp", str(now_ms - 86_400_000).encode()),
    )
    producer = Producer(kafka_settings)
    await producer.start()
    try:
        await producer.send_many(dlq, [(b"u1", stale, dead_headers)])
    finally:
        await producer.stop()
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CONNECTOR_IDENTIFY_TIMESTAMP="event")
    settings = load_settings(env, role="sink")
    async with running(settings):
        await wait_for(lambda: len(operations(fake)) == 1, TIMEOUT, "the current identify")
        args = build_parser().parse_args(["dlq", "replay", "--group", f"replay-{dlq}", "--fresh-timestamps"])
        out = io.StringIO()
        assert await replay(settings, args, out) == 0
        assert "replayed 1 records" in out.getvalue()
        await wait_for(lambda: len(operations(fake)) == 2, TIMEOUT, "the replayed identify")
    replayed = operations(fake)[1]
    assert replayed["attributes"]["plan"] == "replayed"
    assert "timestamp" not in replayed
    assert fake.state.stats()["ignored_operations"] == {}
    source = await read_all(kafka_settings, topic, expect=2)
    assert source[1].header("cio-identify-timestamp") == b"omit"
    assert source[1].value == stale  # the value is replayed untouched
