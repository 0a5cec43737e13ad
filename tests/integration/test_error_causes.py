"""Errors name their real cause: a wrong pinned region at run time, a malformed broker address, a port in use.

The region case runs the sink in-process against the fake Customer.io; the start-up failures run the real
command line as a process and read its stderr.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from connector.config import KafkaSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from tests.integration.harness import connector_env, free_port, produce, run_cli, running, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def human_lines(stderr: str) -> list[str]:
    """stderr without the JSON log lines (start-up progress): what is left is for a person to read."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


async def test_a_us_workspace_pinned_to_eu_is_reported_as_the_wrong_region(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, caplog: pytest.LogCaptureFixture
) -> None:
    """The EU host answers 401 to US credentials; the US host accepts them: /readyz and the log say region."""
    topic, dlq = await topic_factory(), await topic_factory()
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CIO_REGION="eu")
    settings = load_settings(env, role="sink")
    message = {"type": "track", "userId": "u1", "event": "Visited", "messageId": "m1"}
    await produce(kafka_settings, topic, [(b"u1", orjson.dumps(message))])
    with caplog.at_level(logging.ERROR, logger="connector"):
        async with running(settings) as connector:
            await wait_for(
                lambda: connector.sample("connector_workspace_ready", {"workspace": "default"}) == 0, 60, "stop"
            )
            status, body = await connector.readyz()
    assert status == 503
    detail = body["checks"]["workspace:default"]["detail"]
    assert "the account is in region us, not eu" in detail
    assert "key rejected" not in detail
    stopped = [r for r in caplog.records if "delivery stopped" in r.getMessage()]
    assert len(stopped) == 1
    assert "wrong region" in stopped[0].getMessage()
    assert "region us, not eu" in stopped[0].fields["error"]  # type: ignore[attr-defined]


async def test_a_rejected_key_is_still_reported_as_a_rejected_key(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """The other region's host rejects a wrong key too: no region is blamed."""
    topic, dlq = await topic_factory(), await topic_factory()
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq, CIO_API_KEY="wrong-key")
    settings = load_settings(env, role="sink")
    message = {"type": "track", "userId": "u1", "event": "Visited", "messageId": "m1"}
    await produce(kafka_settings, topic, [(b"u1", orjson.dumps(message))])
    async with running(settings) as connector:
        await wait_for(lambda: connector.sample("connector_workspace_ready", {"workspace": "default"}) == 0, 60, "stop")
        status, body = await connector.readyz()
    assert status == 503
    assert body["checks"]["workspace:default"]["detail"] == "Track API key rejected (401)"


def test_a_malformed_bootstrap_address_is_one_config_line() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092x", "CONNECTOR_INPUT_TOPICS": "t"}
    env |= {"CIO_SITE_ID": "s", "CIO_API_KEY": "k", "CONNECTOR_METRICS_PORT": str(free_port())}
    result = run_cli(env, "sink")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "KAFKA_BOOTSTRAP_SERVERS" in line
    assert "127.0.0.1:19092x" in line


def test_a_metrics_port_in_use_is_one_line_naming_it(busy_port: int) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "CONNECTOR_INPUT_TOPICS": "t"}
    env |= {"CIO_SITE_ID": "s", "CIO_API_KEY": "k", "CONNECTOR_METRICS_PORT": str(busy_port)}
    result = run_cli(env, "sink")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "CONNECTOR_METRICS_PORT" in line
    assert "in use" in line


def test_a_webhook_port_in_use_is_one_line_naming_it(kafka_settings: KafkaSettings, busy_port: int) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CIO_WEBHOOK_SIGNING_KEYS": "signing-key-1",
        "CONNECTOR_WEBHOOK_TOPIC": f"hooks-{busy_port}",
        "CONNECTOR_METRICS_PORT": str(free_port()),
        "CONNECTOR_WEBHOOK_PORT": str(busy_port),
    }
    result = run_cli(env, "webhooks")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = human_lines(result.stderr)
    assert "CONNECTOR_WEBHOOK_PORT" in line
    assert "in use" in line
