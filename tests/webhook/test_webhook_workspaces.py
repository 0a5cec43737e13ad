"""Webhooks per workspace over a real socket: <path>/<workspace> with that workspace's keys only."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from connector.config import Secret
from connector.metrics import Metrics
from tests.webhook.cio_payloads import SIGNING_KEY, signed, webhook
from tests.webhook.webhook_support import FakeProducer, MakeClient

PATH = "/webhooks/customerio"
US_KEY = "whsec-us-brand"
EU_OLD_KEY = "whsec-eu-brand-old"
EU_NEW_KEY = "whsec-eu-brand-new"
WORKSPACE_KEYS = {
    "us-brand": (Secret(US_KEY),),
    "eu-brand": (Secret(EU_OLD_KEY), Secret(EU_NEW_KEY)),  # in rotation: both accepted
}


async def post(client: TestClient[Any, Any], path: str, payload: dict[str, Any], key: str) -> tuple[int, Any]:
    """POST a webhook signed with ``key`` to ``path``; (status, JSON body)."""
    body, headers = signed(payload, key=key)
    async with client.post(path, data=body, headers=headers) as response:
        return response.status, await response.json()


def sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float:
    """A metric sample's value (0 when absent)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    """The listener with the single path (SIGNING_KEY) and two workspaces."""
    return await make_client(workspace_keys=WORKSPACE_KEYS)


@pytest.mark.parametrize(
    ("workspace", "key"), [("us-brand", US_KEY), ("eu-brand", EU_OLD_KEY), ("eu-brand", EU_NEW_KEY)]
)
async def test_a_workspace_path_accepts_its_own_keys_and_names_the_workspace(
    client: TestClient[Any, Any], fake_producer: FakeProducer, metrics: Metrics, workspace: str, key: str
) -> None:
    """Signed with one of the workspace's keys (rotation: any of them) → 200; the event names the workspace."""
    status, body = await post(client, f"{PATH}/{workspace}", webhook("email", "opened", event_id="evt-ws"), key)
    assert (status, body) == (200, {"message": "accepted"})
    [(_topic, key_bytes, value, headers)] = fake_producer.records
    event = orjson.loads(value)
    assert event["context"]["workspace"] == workspace
    assert event["context"]["traits"] == {"email": "ana@example.com", "cioId": "a10b000001"}
    assert key_bytes == b"user-1042"
    assert headers == (
        ("event_id", b"evt-ws"),
        ("object_type", b"email"),
        ("metric", b"opened"),
        ("workspace", workspace.encode()),
    )
    labels = {"workspace": workspace}
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "accepted", **labels}) == 1
    assert (
        sample(metrics, "connector_webhook_events_total", {"object_type": "email", "metric": "opened", **labels}) == 1
    )
    assert sample(metrics, "connector_webhook_produce_duration_seconds_count", labels) == 1
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "accepted", "workspace": ""}) == 0


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (f"{PATH}/eu-brand", US_KEY),  # another workspace's key
        (f"{PATH}/us-brand", EU_NEW_KEY),
        (f"{PATH}/us-brand", SIGNING_KEY),  # the single path's key
        (PATH, US_KEY),  # a workspace's key on the single path
    ],
)
async def test_a_key_is_valid_only_on_its_own_path(
    client: TestClient[Any, Any], fake_producer: FakeProducer, metrics: Metrics, path: str, key: str
) -> None:
    """A genuine signature of one workspace is refused (401) on every other path; nothing is produced."""
    status, body = await post(client, path, webhook("email", "sent"), key)
    assert (status, body) == (401, {"message": "invalid signature"})
    assert fake_producer.records == []
    workspace = path.removeprefix(PATH).removeprefix("/")
    labels = {"reason": "mismatch", "workspace": workspace}
    assert sample(metrics, "connector_webhook_signature_failures_total", labels) == 1
    assert (
        sample(metrics, "connector_webhook_requests_total", {"outcome": "bad_signature", "workspace": workspace}) == 1
    )


@pytest.mark.parametrize("name", ["mars", "US-BRAND", "us-brand%20", "x" * 300])
async def test_an_unknown_workspace_gets_404_without_any_key_being_tried(
    client: TestClient[Any, Any], fake_producer: FakeProducer, metrics: Metrics, name: str
) -> None:
    """404 with a message, even for a body validly signed with a configured workspace's key; counted under ""."""
    for key in (US_KEY, EU_NEW_KEY, SIGNING_KEY):
        status, body = await post(client, f"{PATH}/{name}", webhook("email", "sent"), key)
        assert status == 404
        assert "no workspace named" in body["message"]
        assert len(body["message"]) < 200  # the name is cut short, not echoed whole
    assert fake_producer.records == []
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "unknown_workspace", "workspace": ""}) == 3
    # Not a signature failure of any path: the keys were never tried.
    for workspace in ("", "us-brand", "eu-brand"):
        assert (
            sample(metrics, "connector_webhook_requests_total", {"outcome": "bad_signature", "workspace": workspace})
            == 0
        )
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "unknown_workspace", "workspace": name}) == 0


async def test_a_workspace_without_webhook_keys_is_unknown(
    make_client: MakeClient, fake_producer: FakeProducer
) -> None:
    """A workspace declared without webhook_signing_keys has no webhook path."""
    client = await make_client(workspace_keys={"us-brand": (Secret(US_KEY),), "quiet": ()})
    status, _ = await post(client, f"{PATH}/quiet", webhook("email", "sent"), US_KEY)
    assert status == 404
    assert fake_producer.records == []


async def test_the_single_path_is_unchanged_beside_the_workspaces(
    client: TestClient[Any, Any], fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """CIO_WEBHOOK_SIGNING_KEYS still serve <path>: no workspace in the event or its headers, label ""."""
    status, _ = await post(client, PATH, webhook("email", "delivered", event_id="evt-single"), SIGNING_KEY)
    assert status == 200
    [(_topic, _key, value, headers)] = fake_producer.records
    assert "workspace" not in orjson.loads(value)["context"]
    assert headers == (("event_id", b"evt-single"), ("object_type", b"email"), ("metric", b"delivered"))
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "accepted", "workspace": ""}) == 1


async def test_without_single_path_keys_only_workspace_paths_are_served(
    make_client: MakeClient, fake_producer: FakeProducer
) -> None:
    """No CIO_WEBHOOK_SIGNING_KEYS: <path> answers 404 saying where webhooks go; the workspaces' paths work."""
    client = await make_client(signing_keys=(), workspace_keys=WORKSPACE_KEYS)
    status, body = await post(client, PATH, webhook("email", "sent"), SIGNING_KEY)
    assert status == 404
    assert "<path>/<workspace>" in body["message"]
    status, _ = await post(client, f"{PATH}/us-brand", webhook("email", "sent"), US_KEY)
    assert status == 200
    assert len(fake_producer.records) == 1


async def test_duplicates_are_counted_per_workspace(
    client: TestClient[Any, Any], fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """A retry on a workspace's path is a duplicate of that workspace."""
    payload = webhook("push", "opened", event_id="evt-dup")
    for _ in range(2):
        status, _ = await post(client, f"{PATH}/us-brand", payload, US_KEY)
        assert status == 200
    assert len(fake_producer.records) == 1
    assert sample(metrics, "connector_webhook_duplicates_total", {"workspace": "us-brand"}) == 1
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "duplicate", "workspace": "us-brand"}) == 1


async def test_other_methods_on_a_workspace_path_get_405(client: TestClient[Any, Any]) -> None:
    """GET on a workspace's path: 405 with Allow, like the single path."""
    async with client.get(f"{PATH}/us-brand") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"


async def test_probes_are_not_workspaces_when_the_path_is_root(make_client: MakeClient) -> None:
    """With CONNECTOR_WEBHOOK_PATH=/ the probes still answer: /healthz is not a workspace named healthz."""
    client = await make_client(path="/", workspace_keys=WORKSPACE_KEYS)
    async with client.get("/healthz") as response:
        assert response.status == 200
    status, _ = await post(client, "/us-brand", webhook("email", "sent"), US_KEY)
    assert status == 200


@pytest.mark.parametrize(
    "path", [f"{PATH}/", f"{PATH}/us-brand/", f"{PATH}/us-brand/extra", "/healthz/us-brand", "/webhooks"]
)
async def test_paths_that_are_not_one_workspace_segment_are_plain_404s(
    client: TestClient[Any, Any], fake_producer: FakeProducer, metrics: Metrics, path: str
) -> None:
    """An empty or multi-segment name after the path is no workspace route: the generic 404, nothing counted."""
    status, body = await post(client, path, webhook("email", "sent"), US_KEY)
    assert (status, body) == (404, {"message": "Not Found"})
    assert fake_producer.records == []
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "unknown_workspace", "workspace": ""}) == 0


async def test_an_encoded_slash_stays_inside_the_workspace_name(
    client: TestClient[Any, Any], fake_producer: FakeProducer
) -> None:
    """``%2F`` does not split the segment (aiohttp's routing): the name is "us/brand", an unknown workspace."""
    status, body = await post(client, f"{PATH}/us%2Fbrand", webhook("email", "sent"), US_KEY)
    assert status == 404
    assert body["message"] == "no workspace named 'us/brand' accepts webhooks here"
    assert fake_producer.records == []


async def test_the_customerio_preset_names_events(make_client: MakeClient, fake_producer: FakeProducer) -> None:
    """CONNECTOR_WEBHOOK_EVENT_NAMES=customerio: Customer.io's own names, on every path."""
    client = await make_client(event_names="customerio", workspace_keys=WORKSPACE_KEYS)
    assert (await post(client, PATH, webhook("email", "dropped", event_id="e1"), SIGNING_KEY))[0] == 200
    assert (await post(client, f"{PATH}/us-brand", webhook("in_app", "clicked", event_id="e2"), US_KEY))[0] == 200
    names = [orjson.loads(value)["event"] for _topic, _key, value, _headers in fake_producer.records]
    assert names == ["Email Suppressed", "In-App Clicked"]
