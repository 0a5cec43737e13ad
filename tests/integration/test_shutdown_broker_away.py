"""Stopping the sink while the brokers are away: it ends within its bounded shutdown steps.

aiokafka's commit waits for a group coordinator for as long as it takes; the consume loop used to sit in
its periodic commit and never see the stop: the process ignored SIGTERM until SIGKILL.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from connector.config import load_settings
from connector.devtools.kafka_local import LocalKafka
from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import ensure_topics
from tests.integration.harness import DEMO, connector_env, running
from tests.integration.test_broker_outage import wait_readyz

# The shutdown timeout plus each bounded final step, with room for a busy machine: a hang never ends.
STOP_WITHIN_SECONDS = 120


@pytest.mark.integration
async def test_the_sink_stops_while_the_brokers_are_away(restartable_kafka: LocalKafka) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic, dlq = f"events-{suffix}", f"dlq-{suffix}"
    async with FakeCustomerIO([DEMO]) as fake:
        settings = load_settings(connector_env(restartable_kafka.bootstrap, fake, [topic], dlq), role="sink")
        await ensure_topics(settings.kafka, {topic: 1})
        service = running(settings, role="sink")
        connector = await service.__aenter__()
        try:
            await wait_readyz(connector, True, 60)
            await asyncio.to_thread(restartable_kafka.stop)
            await wait_readyz(connector, False, 120)  # the clients have seen the brokers go
            connector.stop.set()
            done, _ = await asyncio.wait([connector.task], timeout=STOP_WITHIN_SECONDS)
            assert connector.task in done, f"the sink did not stop within {STOP_WITHIN_SECONDS} s"
            connector.task.result()  # and it stopped cleanly, without an exception
        finally:
            if not connector.task.done():
                connector.task.cancel()
