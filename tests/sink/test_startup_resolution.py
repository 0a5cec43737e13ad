"""Start-up region resolution (``app.pin_workspaces``) against the fake Customer.io: its retries.

Three attempts at most per workspace, with backoff; rejected credentials are final at once. The backoff
is the real one (under 1.5 s in all); the tests wait on its result, never on time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connector.app import RESOLVE_ATTEMPTS, StartupError, pin_workspaces
from connector.cio.client import CustomerIOClient
from connector.config import Settings
from connector.fake_cio.server import FakeCustomerIO
from connector.metrics import Metrics
from tests.sink.memory_sink import FAKE, sink_settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE]) as server:
        yield server


def auto_region(fake: FakeCustomerIO) -> Settings:
    """One workspace whose region is asked at start-up (the lookup goes to the fake's US listener)."""
    return sink_settings(fake, CIO_REGION="auto", CIO_TRACK_URL_US=fake.us_url, CIO_APP_URL_US=fake.us_url)


def lookups(fake: FakeCustomerIO) -> dict[str, int]:
    """Region lookups the fake's US listener answered, by status."""
    counts: dict[str, int] = fake.state.stats()["requests"].get(FAKE.name, {}).get("us", {})
    return counts


async def test_failed_lookups_are_retried_until_the_region_answers(fake: FakeCustomerIO) -> None:
    """Two 503s, then the answer: the workspace is pinned to its detected region and usable."""
    fake.state.add_burst(RESOLVE_ATTEMPTS - 1, status=503, retry_after=None, workspace=FAKE.name)
    async with CustomerIOClient(10.0, Metrics()) as client:
        [start] = await pin_workspaces(auto_region(fake), client)
    assert (start.workspace.region, start.rejected) == ("eu", None)
    assert lookups(fake) == {"503": RESOLVE_ATTEMPTS - 1, "200": 1}


async def test_lookups_stop_after_the_last_attempt(fake: FakeCustomerIO) -> None:
    """Three 503s: no fourth lookup; the only workspace is unusable, so start-up fails naming why."""
    fake.state.add_burst(RESOLVE_ATTEMPTS + 1, status=503, retry_after=None, workspace=FAKE.name)
    async with CustomerIOClient(10.0, Metrics()) as client:
        with pytest.raises(StartupError, match=r"no workspace is usable .*503"):
            await pin_workspaces(auto_region(fake), client)
    assert lookups(fake) == {"503": RESOLVE_ATTEMPTS}


async def test_rejected_credentials_are_not_retried(fake: FakeCustomerIO) -> None:
    """A 401 is final at once: one lookup, and start-up fails naming the rejection."""
    fake.state.revoke(FAKE.name)
    async with CustomerIOClient(10.0, Metrics()) as client:
        with pytest.raises(StartupError, match="no workspace is usable"):
            await pin_workspaces(auto_region(fake), client)
    assert lookups(fake) == {"401": 1}
