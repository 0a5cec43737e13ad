"""The fake's ``GET /v1/customers/{id}/attributes`` over real sockets: people folded from accepted operations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connector.fake_cio.people import find_person, made_up_cio_id
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from tests.fake_cio.test_server import basic, bearer, post_batch

US = Workspace("us-ws", "us-site", "us-key", "us", "us-app")
EU = Workspace("eu-ws", "eu-site", "eu-key", "eu", "eu-app")


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    """A running fake with one US and one EU workspace."""
    async with FakeCustomerIO([US, EU], seed=5) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that never follows redirects on its own."""
    async with aiohttp.ClientSession() as session:
        yield session


async def get_person(
    http: aiohttp.ClientSession, url: str, path_id: str, key: str, id_type: str | None = None
) -> tuple[int, Any]:
    """GET the attributes of a person; (status, parsed body)."""
    query = f"?id_type={id_type}" if id_type else ""
    async with http.get(
        f"{url}/v1/customers/{path_id}/attributes{query}", headers=bearer(key), allow_redirects=False
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def _seed(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    ops = [
        {"type": "person", "action": "identify", "identifiers": {"id": "42"}, "attributes": {"plan": "pro"}},
        {
            "type": "person",
            "action": "identify",
            "identifiers": {"id": "42"},
            "attributes": {"email": "Ana@Example.com", "seats": 3, "vip": True},
        },
        {"type": "person", "action": "add_device", "identifiers": {"id": "42"}, "device": {"token": "t1", "platform": "ios"}},
        {"type": "person", "action": "add_device", "identifiers": {"id": "42"}, "device": {"token": "t2", "platform": "android"}},
        {"type": "person", "action": "delete_device", "identifiers": {"id": "42"}, "device": {"token": "t1"}},
        {"type": "person", "action": "identify", "identifiers": {"id": "gone"}, "attributes": {"plan": "free"}},
        {"type": "person", "action": "delete", "identifiers": {"id": "gone"}},
    ]  # fmt: skip
    status, body, _ = await post_batch(http, fake.us_url, ops, basic(US))
    assert (status, body) == (200, {})


async def test_person_by_id_has_documented_shape(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """200 {"customer": …}: identifiers, attribute values as strings, devices still registered."""
    await _seed(fake, http)
    status, body = await get_person(http, fake.us_url, "42", "us-app")
    assert status == 200
    customer = body["customer"]
    assert customer["id"] == "42"
    assert customer["identifiers"] == {"id": "42", "email": "Ana@Example.com", "cio_id": made_up_cio_id(("id", "42"))}
    assert customer["attributes"] == {"plan": "pro", "email": "Ana@Example.com", "seats": "3", "vip": "true"}
    assert set(customer["timestamps"]) == {"plan", "email", "seats", "vip"}
    assert customer["unsubscribed"] is False
    assert [(d["id"], d["platform"]) for d in customer["devices"]] == [("t2", "android")]


@pytest.mark.parametrize(
    ("path_id", "id_type"),
    [("ana%40example.com", "email"), ("ANA%40example.com", "email"), (made_up_cio_id(("id", "42")), "cio_id")],
)
async def test_person_by_email_or_cio_id(
    fake: FakeCustomerIO, http: aiohttp.ClientSession, path_id: str, id_type: str
) -> None:
    """An email look-up matches the email attribute case-insensitively; cio_id the id Customer.io gave."""
    await _seed(fake, http)
    status, body = await get_person(http, fake.us_url, path_id, "us-app", id_type)
    assert (status, body["customer"]["id"]) == (200, "42")


@pytest.mark.parametrize(("path_id", "id_type"), [("nobody", None), ("gone", "id"), ("42", "email")])
async def test_unknown_or_deleted_person_is_404(
    fake: FakeCustomerIO, http: aiohttp.ClientSession, path_id: str, id_type: str | None
) -> None:
    """Never identified, deleted, or looked up by the wrong kind: 404."""
    await _seed(fake, http)
    status, _ = await get_person(http, fake.us_url, path_id, "us-app", id_type)
    assert status == 404


async def test_bad_id_type_is_400(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """id_type is one of id, email, phone, cio_id."""
    status, body = await get_person(http, fake.us_url, "42", "us-app", "anonymous_id")
    assert status == 400
    assert "id_type" in body["meta"]["error"]


async def test_person_auth_and_region(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """A wrong key is 401; an EU key on the US host is redirected (301); people of another workspace are not seen."""
    await _seed(fake, http)
    assert (await get_person(http, fake.us_url, "42", "wrong"))[0] == 401
    assert (await get_person(http, fake.us_url, "42", "eu-app"))[0] == 301
    assert (await get_person(http, fake.eu_url, "42", "eu-app"))[0] == 404


def test_find_person_ignores_other_actions_and_non_person_operations() -> None:
    """Events and objects do not make a person: a person only addressed by events is unknown."""
    ops = [
        {"operation": {"type": "person", "action": "event", "identifiers": {"id": "1"}, "name": "x"}},
        {"operation": {"type": "object", "action": "identify", "identifiers": {"object_type_id": "1", "object_id": "a"}}},
    ]  # fmt: skip
    assert find_person(ops, "id", "1") is None
    assert find_person(ops, "id", "a") is None
