"""The broker going away and coming back, as a running service sees it: /readyz names the Kafka clients
while the brokers do not answer (docs/operations.md: ``kafka_producer`` is "connected to the brokers"),
and is ready again once they do, without a restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from connector.config import load_settings
from connector.devtools.kafka_local import LocalKafka
from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import ensure_topics
from tests.integration.harness import DEMO, InProcess, connector_env, running


async def wait_readyz(connector: InProcess, ready: bool, timeout: float) -> dict[str, Any]:
    """Poll /readyz until its answer is ``ready``; the body of that answer."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = await connector.readyz()
        if (status == 200) == ready:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz still {status} after {timeout}s: {body}")
        await asyncio.sleep(0.5)


@pytest.mark.integration
async def test_readyz_is_false_while_the_broker_is_away_and_true_when_it_is_back(
    restartable_kafka: LocalKafka,
) -> None:
    """Broker stopped: /readyz 503 with kafka_producer and kafka_consumer naming the brokers; started
    again: 200 without restarting the connector."""
    suffix = uuid.uuid4().hex[:8]
    topic, dlq = f"events-{suffix}", f"dlq-{suffix}"
    async with FakeCustomerIO([DEMO]) as fake:
        settings = load_settings(connector_env(restartable_kafka.bootstrap, fake, [topic], dlq), role="sink")
        await ensure_topics(settings.kafka, {topic: 1})
        async with running(settings, role="sink") as connector:
            await wait_readyz(connector, True, 60)

            await asyncio.to_thread(restartable_kafka.stop)
            body = await wait_readyz(connector, False, 120)
            for check in ("kafka_producer", "kafka_consumer"):
                assert body["checks"][check] == {
                    "ready": False,
                    "detail": "the brokers do not answer (KAFKA_BOOTSTRAP_SERVERS)",
                }, body

            await asyncio.to_thread(restartable_kafka.start)
            body = await wait_readyz(connector, True, 120)
            assert body["checks"]["kafka_producer"] == {"ready": True, "detail": "connected"}
