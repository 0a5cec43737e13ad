"""`check`: per-workspace credential and region validation against the fake Customer.io, and its table."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator

import pytest

from connector.check import CheckResult, check_workspaces, format_check_table, run_check
from connector.cio.client import CustomerIOClient
from connector.config import EndpointSettings, Region, Secret, Settings, WorkspaceSettings
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.metrics import Metrics

FAKE_US = Workspace("us-ws", "us-site", "us-track-key-123", "us", app_api_key="us-app-key-123")
FAKE_EU = Workspace("eu-ws", "eu-site", "eu-track-key-456", "eu", app_api_key="eu-app-key-456")
KEYS = ("us-track-key-123", "us-app-key-123", "eu-track-key-456", "eu-app-key-456", "wrong-key-789")


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE_US, FAKE_EU]) as server:
        yield server


def workspace(name: str, site: str, key: str, app_key: str | None = None, region: Region = "auto") -> WorkspaceSettings:
    return WorkspaceSettings(
        name=name,
        site_id=site,
        api_key=Secret(key),
        app_api_key=Secret(app_key) if app_key else None,
        region=region,
    )


def settings_for(us_url: str, eu_url: str, *workspaces: WorkspaceSettings) -> Settings:
    endpoints = EndpointSettings(track_url_us=us_url, track_url_eu=eu_url, app_url_us=us_url, app_url_eu=eu_url)
    return Settings(endpoints=endpoints, workspaces=workspaces)


def on_fake(fake: FakeCustomerIO, *workspaces: WorkspaceSettings) -> Settings:
    return settings_for(fake.us_url, fake.eu_url, *workspaces)


def closed_url() -> str:
    """A URL on a local port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def check(settings: Settings) -> list[CheckResult]:
    async with CustomerIOClient(5.0, Metrics()) as client:
        return await check_workspaces(settings, client)


async def test_one_good_and_one_rejected_workspace(fake: FakeCustomerIO) -> None:
    """Two workspaces, one with a wrong key: one ok line, one failed line, exit status 1, no key printed."""
    settings = on_fake(
        fake,
        workspace("us-ws", "us-site", "us-track-key-123", "us-app-key-123"),
        workspace("eu-ws", "eu-site", "wrong-key-789"),
    )
    out = io.StringIO()
    metrics = Metrics()
    assert await run_check(settings, metrics, out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["WORKSPACE", "REGION", "STATUS"]
    assert lines[1].split() == ["us-ws", "us", "ok"]
    assert lines[2].split(maxsplit=2) == ["eu-ws", "-", "FAILED: Track API key rejected (401)"]
    assert not any(key in out.getvalue() for key in KEYS)
    assert metrics.registry.get_sample_value("connector_workspace_ready", {"workspace": "us-ws"}) == 1
    assert metrics.registry.get_sample_value("connector_workspace_ready", {"workspace": "eu-ws"}) == 0


async def test_all_ok_exits_zero(fake: FakeCustomerIO) -> None:
    """Auto and explicit regions with valid Track and App keys: every line ok, exit status 0."""
    settings = on_fake(
        fake,
        workspace("us-ws", "us-site", "us-track-key-123", "us-app-key-123", region="us"),
        workspace("eu-ws", "eu-site", "eu-track-key-456", "eu-app-key-456"),
    )
    out = io.StringIO()
    assert await run_check(settings, Metrics(), out) == 0
    assert [line.split() for line in out.getvalue().splitlines()[1:]] == [["us-ws", "us", "ok"], ["eu-ws", "eu", "ok"]]
    assert not any(key in out.getvalue() for key in KEYS)
    # The EU workspace's App key was checked on the EU host; the US host saw only its region lookup.
    assert fake.state.stats()["requests"]["eu-ws"] == {"us": {"200": 1}, "eu": {"200": 1}}


async def test_app_key_of_the_other_region(fake: FakeCustomerIO) -> None:
    """An EU App key on a US workspace gets the App API's 301 and is reported as the wrong region."""
    settings = on_fake(fake, workspace("us-ws", "us-site", "us-track-key-123", "eu-app-key-456"))
    assert await check(settings) == [CheckResult("us-ws", "us", False, "App API key belongs to the other region")]


async def test_rejected_app_key(fake: FakeCustomerIO) -> None:
    """An unknown App key is reported as rejected with its status."""
    settings = on_fake(fake, workspace("us-ws", "us-site", "us-track-key-123", "wrong-key-789"))
    assert await check(settings) == [CheckResult("us-ws", "us", False, "App API key rejected (401)")]


async def test_explicit_region_is_verified(fake: FakeCustomerIO) -> None:
    """An EU account configured as us fails the check instead of sending EU data to the US host."""
    settings = on_fake(fake, workspace("eu-ws", "eu-site", "eu-track-key-456", region="us"))
    [result] = await check(settings)
    assert (result.region, result.ok) == ("us", False)
    assert result.reason == "Track API: the account is in region eu, not us"


async def test_explicit_region_with_a_wrong_key_fails(fake: FakeCustomerIO) -> None:
    """An explicit region makes resolving request-free, so check validates the Track key separately."""
    settings = on_fake(fake, workspace("eu-ws", "eu-site", "wrong-key-789", region="eu"))
    assert await check(settings) == [CheckResult("eu-ws", "eu", False, "Track API key rejected (401)")]


async def test_server_error_is_reported_with_its_status(fake: FakeCustomerIO) -> None:
    """A 503 from the region lookup is reported as the status the Track API answered."""
    fake.state.add_burst(1, status=503, retry_after=None)
    settings = on_fake(fake, workspace("us-ws", "us-site", "us-track-key-123"))
    assert await check(settings) == [CheckResult("us-ws", None, False, "Track API answered 503")]


async def test_connection_refused() -> None:
    """Unreachable hosts are reported as a refused connection, and run_check exits 1."""
    url = closed_url()
    settings = settings_for(url, url, workspace("us-ws", "us-site", "us-track-key-123"))
    out = io.StringIO()
    assert await run_check(settings, Metrics(), out) == 1
    assert out.getvalue().splitlines()[1].split(maxsplit=2) == ["us-ws", "-", "FAILED: network: connection refused"]


def test_table_is_aligned() -> None:
    """Columns line up whatever the lengths of names and regions."""
    table = format_check_table(
        [
            CheckResult("a", "us", True, "ok"),
            CheckResult("a-much-longer-name", None, False, "App API key rejected (401)"),
        ]
    )
    assert table.splitlines() == [
        "WORKSPACE           REGION  STATUS",
        "a                   us      ok",
        "a-much-longer-name  -       FAILED: App API key rejected (401)",
    ]


async def test_no_workspaces_is_a_failure() -> None:
    """With nothing to check, run_check says so and exits 1."""
    out = io.StringIO()
    assert await run_check(Settings(), Metrics(), out) == 1
    assert out.getvalue() == "no workspaces configured\n"
