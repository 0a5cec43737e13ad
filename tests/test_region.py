"""Region pinning against the in-process fake Customer.io (US and EU listeners over real sockets)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from connector.cio.client import CustomerIOClient
from connector.cio.region import resolve_workspace
from connector.config import EndpointSettings, Secret, WorkspaceSettings
from connector.errors import AuthError, TransientDeliveryError
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.metrics import Metrics

FAKE_US = Workspace("us-ws", "us-site", "us-track-key", "us", app_api_key="us-app-key")
FAKE_EU = Workspace("eu-ws", "eu-site", "eu-track-key", "eu", app_api_key="eu-app-key")
EU_SETTINGS = WorkspaceSettings(
    name="eu-ws", site_id="eu-site", api_key=Secret("eu-track-key"), app_api_key=Secret("eu-app-key")
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE_US, FAKE_EU]) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[CustomerIOClient]:
    async with CustomerIOClient(5.0, Metrics()) as c:
        yield c


def closed_url() -> str:
    """A URL on a local port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def endpoints(fake: FakeCustomerIO, *, us: str | None = None) -> EndpointSettings:
    us_url = us or fake.us_url
    return EndpointSettings(
        track_url_us=us_url, track_url_eu=fake.eu_url, app_url_us=us_url + "/", app_url_eu=fake.eu_url + "/"
    )


def requests_by_region(fake: FakeCustomerIO, workspace: str) -> dict[str, dict[str, int]]:
    stats: dict[str, dict[str, dict[str, int]]] = fake.state.stats()["requests"]
    return stats.get(workspace, {})


async def test_auto_eu_workspace_pins_the_eu_hosts_and_all_traffic_goes_there(
    fake: FakeCustomerIO, client: CustomerIOClient
) -> None:
    """An EU workspace on auto is pinned to the EU pair; the US host sees only the region lookup."""
    resolved = await resolve_workspace(client, endpoints(fake), EU_SETTINGS)
    assert (resolved.region, resolved.track_url, resolved.app_url) == ("eu", fake.eu_url, fake.eu_url)
    assert resolved.environment_id == FAKE_EU.environment_id
    assert resolved.name == "eu-ws"

    await client.post_batch(resolved.track_url, resolved.track_auth, b'{"batch": []}', resolved.labels)
    assert resolved.app_auth is not None
    await client.get_app(resolved.app_url, "/v1/workspaces", resolved.app_auth, labels=resolved.labels, endpoint="ws")

    assert requests_by_region(fake, "eu-ws") == {"us": {"200": 1}, "eu": {"200": 2}}


async def test_auto_us_workspace_pins_the_us_hosts(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """A US workspace on auto is pinned to the US pair after one lookup on the US host."""
    ws = WorkspaceSettings(name="us-ws", site_id="us-site", api_key=Secret("us-track-key"))
    resolved = await resolve_workspace(client, endpoints(fake), ws)
    assert (resolved.region, resolved.track_url, resolved.app_url) == ("us", fake.us_url, fake.us_url)
    assert resolved.app_auth is None
    assert requests_by_region(fake, "us-ws") == {"us": {"200": 1}}


@pytest.mark.parametrize("region", ["us", "eu"])
async def test_explicit_region_makes_no_call(fake: FakeCustomerIO, client: CustomerIOClient, region: str) -> None:
    """region us/eu pins the configured pair without any request."""
    ws = WorkspaceSettings(name="x", site_id="nobody", api_key=Secret("wrong"), region=region)  # type: ignore[arg-type]
    resolved = await resolve_workspace(client, endpoints(fake), ws)
    assert resolved.region == region
    assert resolved.track_url == fake.url(region)  # type: ignore[arg-type]
    assert resolved.environment_id is None
    assert fake.state.stats()["requests"] == {}


async def test_unreachable_us_host_falls_back_to_the_eu_host(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """A refused connection on the US host sends the lookup to the EU host."""
    resolved = await resolve_workspace(client, endpoints(fake, us=closed_url()), EU_SETTINGS)
    assert (resolved.region, resolved.track_url) == ("eu", fake.eu_url)
    assert requests_by_region(fake, "eu-ws") == {"eu": {"200": 1}}


async def test_http_error_on_the_us_host_does_not_fall_back(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """A 503 from the US host is an answer, not an unreachable host: it is raised, the EU host is not asked."""
    fake.state.add_burst(1, status=503, retry_after=None)
    with pytest.raises(TransientDeliveryError) as caught:
        await resolve_workspace(client, endpoints(fake), EU_SETTINGS)
    assert caught.value.status == 503
    assert requests_by_region(fake, "eu-ws") == {"us": {"503": 1}}


async def test_rejected_track_key_raises_auth_error(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """401 from the region lookup is an AuthError."""
    ws = WorkspaceSettings(name="eu-ws", site_id="eu-site", api_key=Secret("not-the-key"))
    with pytest.raises(AuthError) as caught:
        await resolve_workspace(client, endpoints(fake), ws)
    assert caught.value.status == 401


async def test_missing_track_key_raises_auth_error(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """A workspace without a Track key cannot be resolved (and no request is made)."""
    with pytest.raises(AuthError, match="no Track API key"):
        await resolve_workspace(client, endpoints(fake), WorkspaceSettings(name="x", site_id="s"))
    assert fake.state.stats()["requests"] == {}


async def test_auth_headers_are_not_in_the_repr(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """A printed ResolvedWorkspace shows neither header value nor any key."""
    resolved = await resolve_workspace(client, endpoints(fake), EU_SETTINGS)
    text = repr(resolved)
    assert resolved.track_auth not in text
    assert resolved.app_auth is not None
    assert resolved.app_auth not in text
    assert "eu-track-key" not in text
    assert "eu-app-key" not in text
