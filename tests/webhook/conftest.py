"""Fixtures of the webhook tests: an in-memory producer and an in-process listener over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import RawTestServer, TestClient
from prometheus_client import CollectorRegistry

from connector.config import Secret
from connector.metrics import Metrics
from connector.webhook.handler import make_webhook_app
from tests.webhook.webhook_support import Clock, FakeProducer, MakeClient, webhook_settings


@pytest.fixture
def fake_producer() -> FakeProducer:
    """A producer that acknowledges everything immediately unless told otherwise."""
    return FakeProducer()


@pytest.fixture
def metrics() -> Metrics:
    """Metrics on a fresh registry."""
    return Metrics(CollectorRegistry())


@pytest.fixture
def clock() -> Clock:
    """The listener's wall clock."""
    return Clock()


@pytest.fixture
async def make_client(fake_producer: FakeProducer, metrics: Metrics, clock: Clock) -> AsyncIterator[MakeClient]:
    """Build the listener's handler (settings and workspaces' keys overridable) and a client talking to it over a socket."""
    clients: list[TestClient[Any, Any]] = []

    async def make(
        *, workspace_keys: dict[str, tuple[Secret, ...]] | None = None, **overrides: Any
    ) -> TestClient[Any, Any]:
        app = make_webhook_app(
            webhook_settings(**overrides), fake_producer, metrics, clock, workspace_keys=workspace_keys
        )
        client: TestClient[Any, Any] = TestClient(RawTestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
