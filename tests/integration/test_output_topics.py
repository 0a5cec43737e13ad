"""Output topics as the cluster has them: a webhook topic whose max.message.bytes refuses the webhook
producer's batches is named at start-up (docs/operations.md: it must accept 256 KiB), instead of showing
only as 503s naming MessageSizeTooLargeError."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import orjson
import pytest

from connector.config import KafkaSettings
from connector.kafka import MAX_BATCH_BYTES, ensure_topics
from tests.integration.harness import free_port, start_process, wait_for
from tests.webhook.cio_payloads import SIGNING_KEY


@pytest.mark.integration
async def test_a_webhook_topic_below_the_batch_size_is_named_at_start_up(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """max.message.bytes=100000 on the webhook topic: one warning naming CONNECTOR_WEBHOOK_TOPIC, the limit
    and the size needed; the listener still starts."""
    topic = f"hooks-small-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_settings, {topic: 1}, configs={"max.message.bytes": "100000"})
    log = tmp_path / "webhooks.log"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CIO_WEBHOOK_SIGNING_KEYS": SIGNING_KEY,
        "CONNECTOR_WEBHOOK_TOPIC": topic,
        "CONNECTOR_WEBHOOK_PORT": str(free_port()),
        "CONNECTOR_METRICS_PORT": str(free_port()),
        "LOG_FORMAT": "json",
    }
    process = start_process(env, "webhooks", log)
    try:
        await wait_for(lambda: "Service started." in log.read_text(), 60, "the listener to start")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [warning] = [line for line in lines if "max.message.bytes" in line["message"]]
    assert warning["message"].startswith("CONNECTOR_WEBHOOK_TOPIC: ")
    assert (warning["level"], warning["topic"], warning["max_message_bytes"], warning["needed"]) == (
        "warning",
        topic,
        100000,
        MAX_BATCH_BYTES,
    )
