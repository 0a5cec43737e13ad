"""Transactional email with cc, bcc and attachments, end to end: Kafka → sink → fake App API, or the DLQ."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from connector.config import KafkaSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from tests.conftest import TopicFactory
from tests.integration.harness import connector_env, produce, read_all, running, wait_for

pytestmark = pytest.mark.integration

PDF = base64.b64encode(b"%PDF-1.4 invoice").decode()


def send(n: int, **properties: Any) -> bytes:
    """A transactional track event for template 42."""
    message = {
        "type": "track",
        "event": "Transactional Email Requested",
        "userId": f"user-{n}",
        "messageId": f"txn-{n}",
        "properties": {"transactional_message_id": 42, "to": "ana@example.com", **properties},
    }
    return orjson.dumps(message)


async def test_cc_bcc_and_attachments_are_sent_and_bad_ones_dead_lettered_naming_the_field(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, fake: FakeCustomerIO
) -> None:
    topic, dlq = await topic_factory(), await topic_factory()
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
    env |= {"CIO_APP_API_KEY": "demo-app-key", "CONNECTOR_TRANSACTIONAL_TOPIC": topic}
    settings = load_settings(env, role="sink")
    too_many = {"to": [f"t{i}@example.com" for i in range(10)], "cc": [f"c{i}@example.com" for i in range(6)]}
    records = [
        send(1, cc=["bo@example.com", "cy@example.com"], bcc="audit@example.com", attachments={"invoice.pdf": PDF}),
        send(2, **too_many),
        send(3, attachments={"invoice.pdf": "not base64!"}),
    ]
    async with running(settings):
        await produce(kafka_settings, topic, [(f"user-{n}".encode(), value) for n, value in enumerate(records, 1)])
        dead = await read_all(kafka_settings, dlq, expect=2, timeout=60)
        await wait_for(lambda: len(fake.state.emails) >= 1, 30, "the transactional send")
    (sent,) = fake.state.emails
    assert sent["message"]["cc"] == "bo@example.com, cy@example.com"
    assert sent["message"]["bcc"] == "audit@example.com"
    assert sent["message"]["attachments"] == {"invoice.pdf": PDF}
    reasons = {
        (d.header("cio-dlq-source-offset"), d.header("cio-dlq-reason"), (d.header("cio-dlq-message") or b"").decode())
        for d in dead
    }
    assert reasons == {
        (b"1", b"limit_exceeded", "properties.cc: to+cc+bcc hold more than 15 recipients (at most 15)"),
        (b"2", b"invalid_field", "properties.attachments['invoice.pdf']: not valid base64"),
    }
