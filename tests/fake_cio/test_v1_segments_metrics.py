"""The fake's manual segment and delivery-metric endpoints (reference D.1, D.2): their rules and recorded state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connector.fake_cio.rules_v1 import check_v1_metric, check_v1_segment
from connector.fake_cio.server import FakeCustomerIO
from tests.fake_cio.test_server import US, basic


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    """A running fake with one US workspace."""
    async with FakeCustomerIO([US], seed=3) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session."""
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with http.post(url, json=body, headers=basic(US) if headers is None else headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_add_and_remove_customers_change_the_segment(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """200 {}; members are kept per id_type (default id); removal takes them out; calls are recorded in order."""
    base = f"{fake.us_url}/api/v1/segments/7"
    assert await post(http, f"{base}/add_customers", {"ids": ["1", "2"]}) == (200, {})
    assert await post(http, f"{base}/add_customers?id_type=email", {"ids": ["a@b.c"]}) == (200, {})
    assert await post(http, f"{base}/remove_customers?id_type=id", {"ids": ["1"]}) == (200, {})
    assert fake.state.segment_members(US.name, 7) == {("id", "2"), ("email", "a@b.c")}
    assert [r["operation"]["action"] for r in fake.state.operations_for(US.name)] == [
        "add_customers",
        "add_customers",
        "remove_customers",
    ]
    async with http.get(f"{fake.us_url}/_fake/segments") as resp:
        assert (await resp.json())["segments"] == {US.name: {"7": [["email", "a@b.c"], ["id", "2"]]}}


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("0/add_customers", {"ids": ["1"]}, "segment_id: must be a positive integer"),
        ("abc/add_customers", {"ids": ["1"]}, "segment_id: must be a positive integer"),
        ("2147483648/add_customers", {"ids": ["1"]}, "segment_id: must be a positive integer"),
        ("7/add_customers?id_type=phone", {"ids": ["1"]}, "id_type: must be id, email or cio_id"),
        ("7/add_customers", {}, "ids: ids array is required"),
        ("7/add_customers", {"ids": []}, "ids: must hold 1 to 1000 ids"),
        ("7/remove_customers", {"ids": [str(i) for i in range(1001)]}, "ids: must hold 1 to 1000 ids"),
        ("7/add_customers", {"ids": ["1", 2]}, "ids[1]: must be a non-empty string"),
        ("7/add_customers", {"ids": ["x" * 151]}, "ids[0]: longer than 150 bytes"),
    ],
)
async def test_segment_calls_breaking_a_rule_get_400_naming_it(
    fake: FakeCustomerIO, http: aiohttp.ClientSession, path: str, body: Any, message: str
) -> None:
    """400 with Customer.io's v1 error shape; membership unchanged."""
    status, answer = await post(http, f"{fake.us_url}/api/v1/segments/{path}", body)
    assert (status, answer) == (400, {"meta": {"errors": [message]}})
    assert fake.state.segment_members(US.name, 7) == set()


async def test_segment_calls_need_track_credentials(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """A wrong key is 401, as on every Track endpoint."""
    status, _ = await post(http, f"{fake.us_url}/api/v1/segments/7/add_customers", {"ids": ["1"]}, basic(US, "bad"))
    assert status == 401


async def test_an_accepted_metric_is_recorded(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """The body is kept with its workspace, and shown by the control API."""
    body = {"delivery_id": "dlv", "metric": "opened", "timestamp": 1735689000, "recipient": "a@b.c"}
    assert await post(http, f"{fake.us_url}/api/v1/metrics", body) == (200, {})
    assert fake.state.metrics == [{"workspace": US.name, "region": "us", **body}]
    async with http.get(f"{fake.us_url}/_fake/segments") as resp:
        assert (await resp.json())["metrics"] == fake.state.metrics


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"metric": "opened"}, "delivery_id: delivery_id is required"),
        ({"delivery_id": "", "metric": "opened"}, "delivery_id: must be a non-empty string"),
        ({"delivery_id": "d"}, "metric: metric is required"),
        (
            {"delivery_id": "d", "metric": "read"},
            "metric: must be one of bounced, clicked, converted, deferred, delivered, dropped, opened, spammed",
        ),
        (
            {"delivery_id": "d", "metric": "opened", "timestamp": 1735689000000},
            "timestamp: 1735689000000 is not Unix seconds (milliseconds?)",
        ),
        ({"delivery_id": "d", "metric": "clicked", "href": 3}, "href: must be a string"),
        ([], "body must be a JSON object"),
    ],
)
async def test_metrics_breaking_a_rule_get_400_naming_it(
    fake: FakeCustomerIO, http: aiohttp.ClientSession, body: Any, message: str
) -> None:
    """400 with the field named; nothing recorded."""
    assert await post(http, f"{fake.us_url}/api/v1/metrics", body) == (400, {"meta": {"errors": [message]}})
    assert fake.state.metrics == []


def test_rules_accept_the_documented_shapes() -> None:
    """Every id_type, 1 and 1,000 ids; every metric of the union of the channels' enums."""
    for id_type in (None, "id", "email", "cio_id"):
        assert check_v1_segment("1", id_type, {"ids": ["a"]}) is None
    assert check_v1_segment("2147483647", "id", {"ids": [str(i) for i in range(1000)]}) is None
    for metric in ("bounced", "clicked", "converted", "deferred", "delivered", "dropped", "opened", "spammed"):
        assert check_v1_metric({"delivery_id": "d", "metric": metric}) is None
