"""Fixtures shared by the end-to-end tests (the broker's are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connector.fake_cio.server import FakeCustomerIO
from tests.integration.harness import DEMO


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    """The fake Customer.io serving connector_env's one workspace, `demo` (a module may define its own)."""
    async with FakeCustomerIO([DEMO]) as server:
        yield server
