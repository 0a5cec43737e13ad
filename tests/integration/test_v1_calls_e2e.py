"""Segment membership and delivery metrics end to end: real broker, the real service, the fake Customer.io."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from connector.config import KafkaSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
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


def track(user: str | None, name: str, properties: dict[str, Any], seq: int) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "event": name, "properties": properties, "messageId": f"m-{seq}"}
    if user is not None:
        message["userId"] = user
    return message


def membership_messages(people: list[str]) -> list[dict[str, Any]]:
    """Per person: identify, add to segment 7 (every third person: 8), an event, remove, and (even people) add again."""
    messages = [{"type": "identify", "userId": u, "traits": {"plan": "pro"}, "messageId": f"i-{u}"} for u in people]
    for step, name in enumerate(["Added to Segment", "Step", "Removed from Segment", "Added to Segment"]):
        for i, user in enumerate(people):
            if name == "Step":
                messages.append(track(user, name, {"n": step}, len(messages)))
            elif not (step == 3 and i % 2):  # odd people stay removed
                messages.append(track(user, name, {"segmentId": 7 if i % 3 else 8}, len(messages)))
    return messages


def calls_per_person(fake: FakeCustomerIO) -> dict[str, list[str]]:
    """The actions the fake received for each person id, in arrival order (segment calls once per id)."""
    seen: dict[str, list[str]] = {}
    for record in fake.state.operations_for("demo"):
        op = record["operation"]
        if op["type"] == "segment":
            for user in op["ids"]:
                seen.setdefault(user, []).append(op["action"])
        elif op["type"] == "person":
            seen.setdefault(op["identifiers"]["id"], []).append(op["action"])
    return seen


async def wait_all_committed(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> None:
    """Until the group's committed offsets reach the end of every partition (120 s at most)."""
    deadline = time.monotonic() + 120
    while True:
        positions = await committed_and_end(kafka, group, topic, partitions)
        if all(c == e for c, e in positions):
            return
        assert time.monotonic() < deadline, positions
        await asyncio.sleep(0.2)


async def test_segment_changes_and_metrics_are_applied_in_order_and_bad_ones_dead_lettered(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """Per person: identify, add, event, remove, add again arrive in that order; membership and metrics are
    what the events say; a bad segment id and a metric without deliveryId are dead-lettered naming the field;
    every offset is committed. 20% of requests fail and are retried."""
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    people = [f"person-{i}" for i in range(30)]
    metrics = [
        track(None, "Report Delivery Event", {"deliveryId": f"dlv-{i}", "metric": "delivered"}, 1000 + i)
        for i in range(5)
    ]
    bad = [
        track("person-0", "Added to Segment", {"segmentId": "seven"}, 2000),
        track(None, "Report Delivery Event", {"metric": "opened"}, 2001),
    ]
    messages = [*membership_messages(people), *metrics, *bad]
    now = int(time.time() * 1000)
    for message in messages:
        message["timestamp"] = now
    await produce(kafka_settings, topic, messages_as_records(messages))
    fake.state.set_faults(error_ratio=0.2)
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
    async with running(load_settings(env, role="sink")):
        await wait_for(lambda: len(fake.state.metrics) >= 5, 120, "the metrics")
        dead = await read_all(kafka_settings, dlq, expect=2, timeout=60)
        await wait_all_committed(kafka_settings, env["CONNECTOR_GROUP_ID"], topic, 2)

    stays = [i for i in range(len(people)) if i % 2 == 0]
    assert fake.state.segment_members("demo", 7) == {("id", people[i]) for i in stays if i % 3}
    assert fake.state.segment_members("demo", 8) == {("id", people[i]) for i in stays if i % 3 == 0}
    assert sorted(m["delivery_id"] for m in fake.state.metrics) == [f"dlv-{i}" for i in range(5)]
    seen = calls_per_person(fake)
    for i, user in enumerate(people):
        expected = ["identify", "add_customers", "event", "remove_customers"]
        assert seen[user] == (expected if i % 2 else [*expected, "add_customers"]), user
    reasons = sorted((r.header("cio-dlq-reason"), r.header("cio-dlq-message")) for r in dead)
    assert reasons == [
        (b"invalid_field", b"properties.segmentId: must be a positive integer segment id (got 'seven')"),
        (b"missing_field", b"properties.deliveryId: required for 'Report Delivery Event'"),
    ]
