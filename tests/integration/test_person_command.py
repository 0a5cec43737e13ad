"""`cio-connector person`: the real command line against the fake App API over real sockets."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from connector.fake_cio.people import made_up_cio_id
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.person_tool import SEGMENTS_NOTE
from tests.integration.harness import run_cli

US = Workspace("demo", "demo-site", "demo-track-key", "us", "demo-app-key-us")
EU = Workspace("euro", "euro-site", "euro-track-key", "eu", "euro-app-key-eu")
PERSON_OPS: list[dict[str, Any]] = [
    {"type": "person", "action": "identify", "identifiers": {"id": "42"}, "attributes": {"plan": "pro", "email": "ana@example.com"}},
    {"type": "person", "action": "add_device", "identifiers": {"id": "42"}, "device": {"token": "tok-1", "platform": "ios"}},
]  # fmt: skip


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    """A fake with a US and an EU workspace, each knowing person 42."""
    async with FakeCustomerIO([US, EU]) as running:
        for ws in (US, EU):
            running.state.record_operations(ws, "v2", [orjson.dumps(op) for op in PERSON_OPS], running.state.clock())
        yield running


def env_for(fake: FakeCustomerIO, ws: Workspace, **changes: str) -> dict[str, str]:
    """A one-workspace environment for ``ws`` against the fake."""
    env = {
        "CIO_SITE_ID": ws.site_id,
        "CIO_API_KEY": ws.api_key,
        "CIO_APP_API_KEY": ws.app_api_key or "",
        "CIO_REGION": ws.region,
        "CIO_TRACK_URL_US": fake.us_url,
        "CIO_TRACK_URL_EU": fake.eu_url,
        "CIO_APP_URL_US": fake.us_url,
        "CIO_APP_URL_EU": fake.eu_url,
    }
    return {k: v for k, v in (env | changes).items() if v}


async def person(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`cio-connector person ARGS` in a subprocess (the fake keeps answering in this loop meanwhile)."""
    return await asyncio.to_thread(run_cli, env, "person", *args)


def assert_no_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


async def test_a_person_is_shown_with_attributes_devices_and_the_segments_note(fake: FakeCustomerIO) -> None:
    result = await person(env_for(fake, US), "42")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "workspace default (region us), looked up by id" in out
    assert re.search(r"^  plan +pro$", out, re.MULTILINE)
    assert "devices (1)" in out
    assert "tok-1  ios" in out
    assert f"segments: {SEGMENTS_NOTE}" in out
    assert_no_secret(result, US.app_api_key or "", US.api_key)


@pytest.mark.parametrize(
    ("identifier", "id_type"), [("ana@example.com", "email"), (f"cio_{made_up_cio_id(('id', '42'))}", "cio_id")]
)
async def test_the_identifier_kind_is_read_from_its_shape(fake: FakeCustomerIO, identifier: str, id_type: str) -> None:
    result = await person(env_for(fake, US), identifier, "--json")
    assert result.returncode == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert (doc["id_type"], doc["customer"]["id"], doc["segments"]) == (id_type, "42", None)
    assert doc["customer"]["attributes"] == {"plan": "pro", "email": "ana@example.com"}


async def test_an_unknown_person_exits_1_with_not_found(fake: FakeCustomerIO) -> None:
    result = await person(env_for(fake, US), "nobody")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "not found" in line
    assert "'nobody'" in line
    assert result.stdout == ""


async def test_without_an_app_key_one_config_line(fake: FakeCustomerIO) -> None:
    result = await person(env_for(fake, US, CIO_APP_API_KEY=""), "42")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "CIO_APP_API_KEY" in line
    assert fake.state.stats()["requests"] == {}  # nothing was asked


async def test_a_rejected_app_key_is_one_line_without_the_key(fake: FakeCustomerIO) -> None:
    result = await person(env_for(fake, US, CIO_APP_API_KEY="wrong-app-key"), "42")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "App API key rejected (401)" in line
    assert_no_secret(result, "wrong-app-key", US.api_key)


async def test_region_auto_asks_the_pinned_regions_app_host(fake: FakeCustomerIO) -> None:
    """An EU workspace with region auto is pinned through the region lookup; the App call goes to the EU host."""
    result = await person(env_for(fake, EU, CIO_REGION="auto"), "42")
    assert result.returncode == 0, result.stderr
    assert "region eu" in result.stdout
    assert fake.state.stats()["requests"]["euro"]["eu"] == {"200": 1}  # the App API call, on the EU host
    assert "301" not in fake.state.stats()["requests"]["euro"].get("us", {})


async def test_a_workspace_pinned_to_the_wrong_region_is_one_line(fake: FakeCustomerIO) -> None:
    result = await person(env_for(fake, EU, CIO_REGION="us"), "42")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "redirected to another region" in line
