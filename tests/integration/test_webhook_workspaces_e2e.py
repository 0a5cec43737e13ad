"""Webhooks of several workspaces through the whole service (`webhooks` role) into the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from connector.app import run_service
from connector.config import KafkaSettings, load_settings
from connector.metrics import Metrics
from tests.integration.harness import free_port, read_all
from tests.webhook.cio_payloads import signed, webhook

pytestmark = pytest.mark.integration

US_KEY = "whsec-us-brand"
EU_KEY = "whsec-eu-brand"


async def post(session: aiohttp.ClientSession, path: str, payload: dict[str, Any], key: str) -> int:
    """POST a webhook signed now with ``key``; its status."""
    body, headers = signed(payload, key=key, timestamp=int(time.time()))
    async with session.post(path, data=body, headers=headers) as response:
        await response.read()
        return response.status


async def webhook_ready(url: str) -> bool:
    """Whether the webhook port's /readyz answers 200."""
    with contextlib.suppress(aiohttp.ClientError):
        async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
            return response.status == 200
    return False


@contextlib.asynccontextmanager
async def webhook_service(env: dict[str, str], config: Path) -> AsyncIterator[tuple[str, Metrics]]:
    """`cio-connector webhooks` in this event loop until the block ends: (listener URL, its metrics)."""
    port = free_port()
    env = {**env, "CONNECTOR_WEBHOOK_HOST": "127.0.0.1", "CONNECTOR_WEBHOOK_PORT": str(port)}
    env.update(CONNECTOR_METRICS_HOST="127.0.0.1", CONNECTOR_METRICS_PORT=str(free_port()))
    settings = load_settings(env, str(config), role="webhooks")
    stop = asyncio.Event()
    metrics = Metrics()
    service = asyncio.create_task(run_service(settings, "webhooks", stop, metrics))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not await webhook_ready(url):
            if service.done():
                service.result()  # raises the start-up failure
                raise AssertionError("the service exited during start-up")
            assert time.monotonic() < deadline, "the webhook listener did not become ready within 60 s"
            await asyncio.sleep(0.1)
        yield url, metrics
    finally:
        stop.set()
        await asyncio.wait_for(service, 60)


async def test_two_workspaces_land_named_unknown_404_foreign_signature_401(
    kafka_settings: KafkaSettings, topic_factory: Any, tmp_path: Path
) -> None:
    """Each workspace's webhooks land in Kafka naming it; an unknown workspace gets 404, a key of one
    workspace on the other's path gets 401, and neither is produced."""
    topic = await topic_factory()
    key_file = tmp_path / "eu.keys"
    key_file.write_text(f"{EU_KEY}\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
workspaces:
  - {{name: us-brand, webhook_signing_keys_env: US_WEBHOOK_KEYS}}
  - {{name: eu-brand, webhook_signing_keys_file: {key_file}}}
"""
    )
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CONNECTOR_WEBHOOK_TOPIC": topic,
        "US_WEBHOOK_KEYS": US_KEY,
    }
    run = uuid.uuid4().hex[:8]
    async with webhook_service(env, config) as (url, metrics), aiohttp.ClientSession(base_url=url) as session:
        us_event = webhook("email", "opened", event_id=f"{run}-us")
        eu_event = webhook("push", "delivered", event_id=f"{run}-eu")
        assert await post(session, "/webhooks/customerio/us-brand", us_event, US_KEY) == 200
        assert await post(session, "/webhooks/customerio/eu-brand", eu_event, EU_KEY) == 200
        foreign = webhook("email", "sent", event_id=f"{run}-foreign")
        assert await post(session, "/webhooks/customerio/eu-brand", foreign, US_KEY) == 401
        unknown = webhook("email", "sent", event_id=f"{run}-unknown")
        assert await post(session, "/webhooks/customerio/mars", unknown, US_KEY) == 404
        # No CIO_WEBHOOK_SIGNING_KEYS: the single path is not served.
        assert await post(session, "/webhooks/customerio", unknown, US_KEY) == 404

    # Both accepted events; nothing else arrives (the refused ones were never produced).
    records = await read_all(kafka_settings, topic, expect=3, timeout=10)
    by_id = {r.header("event_id") or b"": r for r in records}
    assert sorted(by_id) == [f"{run}-eu".encode(), f"{run}-us".encode()]
    assert len(records) == 2
    for event_id, workspace in ((f"{run}-us", "us-brand"), (f"{run}-eu", "eu-brand")):
        record = by_id[event_id.encode()]
        assert record.header("workspace") == workspace.encode()
        assert record.value is not None
        assert orjson.loads(record.value)["context"]["workspace"] == workspace
    for workspace in ("us-brand", "eu-brand"):
        labels = {"outcome": "accepted", "workspace": workspace}
        assert metrics.registry.get_sample_value("connector_webhook_requests_total", labels) == 1
    mismatch = {"reason": "mismatch", "workspace": "eu-brand"}
    assert metrics.registry.get_sample_value("connector_webhook_signature_failures_total", mismatch) == 1
    unknown_labels = {"outcome": "unknown_workspace", "workspace": ""}
    assert metrics.registry.get_sample_value("connector_webhook_requests_total", unknown_labels) == 2
