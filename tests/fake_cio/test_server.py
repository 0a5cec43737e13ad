"""The fake Customer.io over real sockets: auth, regions, v2/v1 rules, App API, faults, control API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace

US = Workspace("us-ws", "us-site", "us-key", "us", "us-app", environment_id=11)
EU = Workspace("eu-ws", "eu-site", "eu-key", "eu", "eu-app", environment_id=22)
TS = 1735689000
ULID = "01JGD8S8Z6Q0R1W4K7M2T9B3XH"


def basic(ws: Workspace, key: str | None = None) -> dict[str, str]:
    """Track API Basic auth headers for a workspace (optionally with another key)."""
    return {"Authorization": aiohttp.encode_basic_auth(ws.site_id, key or ws.api_key)}


def bearer(key: str) -> dict[str, str]:
    """App API Bearer auth headers."""
    return {"Authorization": f"Bearer {key}"}


def identify(user: str, **fields: Any) -> dict[str, Any]:
    """A valid person identify operation."""
    return {
        "type": "person",
        "action": "identify",
        "identifiers": {"id": user},
        "attributes": {"plan": "pro"},
        **fields,
    }


def event(user: str, **fields: Any) -> dict[str, Any]:
    """A valid person event operation."""
    return {"type": "person", "action": "event", "identifiers": {"id": user}, "name": "shipped", **fields}


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    """A running fake with one US and one EU workspace."""
    async with FakeCustomerIO([US, EU], seed=3) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that never follows redirects on its own."""
    async with aiohttp.ClientSession() as session:
        yield session


async def post_batch(
    http: aiohttp.ClientSession, url: str, ops: list[Any], headers: dict[str, str]
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """POST /api/v2/batch; returns status, parsed body and the response."""
    async with http.post(f"{url}/api/v2/batch", json={"batch": ops}, headers=headers, allow_redirects=False) as resp:
        return resp.status, await resp.json(content_type=None), resp


# --- auth and regions ------------------------------------------------------------------------------------


async def test_valid_batch_recorded(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """A valid batch answers 200 {} and every operation is recorded as received."""
    ops = [identify("1", timestamp=TS), event("1", id=ULID, timestamp=TS)]
    status, body, _ = await post_batch(http, fake.us_url, ops, basic(US))
    assert (status, body) == (200, {})
    records = fake.state.operations_for()
    assert [r["operation"] for r in records] == ops
    assert {(r["workspace"], r["region"], r["api"]) for r in records} == {("us-ws", "us", "v2")}
    assert all(abs(r["received_at"] - time.time()) < 60 for r in records)


@pytest.mark.parametrize(
    "headers",
    [
        basic(US, key="wrong"),
        {"Authorization": aiohttp.encode_basic_auth("no-such-site", "us-key")},
        {},
        bearer("us-app"),
        {"Authorization": "Basic !!!"},
    ],
    ids=["wrong key", "unknown site", "no header", "bearer on track", "garbage"],
)
async def test_bad_credentials_401(fake: FakeCustomerIO, http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    """Wrong or missing Track credentials answer 401 and nothing is recorded."""
    status, _, _ = await post_batch(http, fake.us_url, [identify("1")], headers)
    assert status == 401
    assert fake.state.operations_for() == []


async def test_urlsafe_base64_accepted(http: aiohttp.ClientSession) -> None:
    """Basic credentials in URL-safe base64 (as go-customerio sends them) are accepted."""
    ws = Workspace("x", "s?>", "k?>", "us")  # encodes with '/' and '+' in standard base64
    async with FakeCustomerIO([ws]) as other:
        token = aiohttp.encode_basic_auth(ws.site_id, ws.api_key).split()[1].replace("+", "-").replace("/", "_")
        status, _, _ = await post_batch(http, other.us_url, [identify("1")], {"Authorization": f"Basic {token}"})
    assert status == 200


async def test_eu_workspace_on_us_host_redirected(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """EU credentials on the US host get 301 to the same path on the EU host and are not recorded."""
    status, _, resp = await post_batch(http, fake.us_url, [identify("1")], basic(EU))
    assert status == 301
    assert resp.headers["Location"] == f"{fake.eu_url}/api/v2/batch"
    assert fake.state.operations_for() == []
    stats = fake.state.stats()
    assert stats["redirected"] == {"eu-ws": 1}
    assert stats["requests"]["eu-ws"]["us"] == {"301": 1}
    status, _, _ = await post_batch(http, fake.eu_url, [identify("1")], basic(EU))
    assert status == 200
    assert [(r["workspace"], r["region"]) for r in fake.state.operations_for()] == [("eu-ws", "eu")]


async def test_us_workspace_on_eu_host_401(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """US credentials on the EU host answer 401 and are not recorded."""
    status, _, _ = await post_batch(http, fake.eu_url, [identify("1")], basic(US))
    assert status == 401
    assert fake.state.operations_for() == []


@pytest.mark.parametrize("host", ["us", "eu"])
async def test_region_endpoint_either_host(fake: FakeCustomerIO, http: aiohttp.ClientSession, host: str) -> None:
    """GET /api/v1/accounts/region answers on either host with the workspace's region, URL and id."""
    base = fake.url("us" if host == "us" else "eu")
    for ws, url in ((US, fake.us_url), (EU, fake.eu_url)):
        async with http.get(f"{base}/api/v1/accounts/region", headers=basic(ws)) as resp:
            assert resp.status == 200
            assert await resp.json() == {"url": url, "region": ws.region, "environment_id": ws.environment_id}
    async with http.get(f"{base}/api/v1/accounts/region", headers=basic(US, key="bad")) as resp:
        assert resp.status == 401


# --- v2 rules --------------------------------------------------------------------------------------------


async def test_two_identifiers_207_others_recorded(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """An op with two identifiers is named by batch_index in a 207 while the other ops are recorded."""
    bad = {**identify("2"), "identifiers": {"id": "2", "email": "two@example.com"}}
    status, body, _ = await post_batch(http, fake.us_url, [identify("1"), bad, identify("3")], basic(US))
    assert status == 207
    assert body == {
        "errors": [
            {
                "batch_index": 1,
                "reason": "multiple_identifiers",
                "field": "identifiers",
                "message": "exactly one identifier is allowed",
            }
        ]
    }
    assert [r["operation"]["identifiers"] for r in fake.state.operations_for()] == [{"id": "1"}, {"id": "3"}]
    assert fake.state.stats()["rejected_operations"] == {"us-ws": 1}


@pytest.mark.parametrize(
    ("op", "reason", "field"),
    [
        (identify("1", attributes={f"a{i}": "x" * 900 for i in range(40)}), "too_large", ""),
        (event("1", timestamp=TS * 1000), "invalid_timestamp", "timestamp"),
        (event("1", timestamp="2025-01-01T00:00:00Z"), "invalid_timestamp", "timestamp"),
        (event("1", id="0f8fad5b-d9cb-469f-a165-70867728950e"), "invalid_id", "id"),
    ],
    ids=["over 32 KB", "millisecond timestamp", "ISO timestamp", "non-ULID event id"],
)
async def test_invalid_op_rejected(
    fake: FakeCustomerIO, http: aiohttp.ClientSession, op: dict[str, Any], reason: str, field: str
) -> None:
    """Ops breaking a documented rule are rejected by index, the valid one beside them is kept."""
    status, body, _ = await post_batch(http, fake.us_url, [op, identify("ok")], basic(US))
    assert status == 207
    assert [(e["batch_index"], e["reason"], e["field"]) for e in body["errors"]] == [(0, reason, field)]
    assert [r["operation"]["identifiers"] for r in fake.state.operations_for()] == [{"id": "ok"}]


async def test_batch_over_500kb_rejected_whole(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """A batch body over 500,000 bytes answers 400 and nothing is recorded."""
    ops = [identify(str(i), attributes={"bio": "x" * 900}) for i in range(520)]
    status, body, _ = await post_batch(http, fake.us_url, ops, basic(US))
    assert status == 400
    assert body["errors"][0]["reason"] == "too_large"
    assert fake.state.operations_for() == []


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"operations": []}'])
async def test_malformed_batch_400(fake: FakeCustomerIO, http: aiohttp.ClientSession, raw: bytes) -> None:
    """A body that is not {"batch": [...]} answers 400 with the v2 error shape."""
    async with http.post(f"{fake.us_url}/api/v2/batch", data=raw, headers=basic(US)) as resp:
        assert resp.status == 400
        (problem,) = (await resp.json())["errors"]
    assert set(problem) == {"reason", "field", "message"}


async def test_entity(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """/api/v2/entity takes one op: 200 when valid, 400 when invalid or over 32 KB."""
    url = f"{fake.us_url}/api/v2/entity"
    async with http.post(url, json=event("1", id=ULID), headers=basic(US)) as resp:
        assert (resp.status, await resp.json()) == (200, {})
    async with http.post(url, json=event("1", timestamp=TS * 1000), headers=basic(US)) as resp:
        assert resp.status == 400
        assert (await resp.json())["errors"][0]["reason"] == "invalid_timestamp"
    async with http.post(url, json=identify("1", attributes={"b": "x" * 33_000}), headers=basic(US)) as resp:
        assert resp.status == 400
        assert (await resp.json())["errors"][0]["reason"] == "too_large"
    async with http.post(url, data=b"{", headers=basic(US)) as resp:
        assert resp.status == 400
    assert [r["operation"] for r in fake.state.operations_for()] == [event("1", id=ULID)]


# --- v1 ----------------------------------------------------------------------------------------------------


async def test_v1_calls_recorded_as_operations(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """Accepted v1 calls are recorded in the v2 operation shape with api "v1"."""
    base, h = f"{fake.us_url}/api/v1", basic(US)
    calls: list[tuple[str, str, Any]] = [
        ("PUT", "/customers/42", {"plan": "pro", "created_at": TS}),
        ("PUT", "/customers/ana%40example.com", {"plan": "pro"}),
        ("POST", "/customers/cio_0301/events", {"name": "shipped", "data": {"o": 1}, "timestamp": TS, "id": ULID}),
        ("POST", "/customers/a%2Fb/events", {"name": "/home", "type": "page"}),
        ("POST", "/events", {"name": "browsed", "anonymous_id": "anon-1"}),
        ("PUT", "/customers/42/devices", {"device": {"id": "tok", "platform": "ios", "last_used": TS}}),
        ("DELETE", "/customers/42/devices/tok%2F1", None),
        ("POST", "/customers/42/suppress", None),
        ("POST", "/customers/42/unsuppress", None),
        ("DELETE", "/customers/42", None),
        ("POST", "/merge_customers", {"primary": {"id": "42"}, "secondary": {"email": "dup@example.com"}}),
    ]
    for method, path, body in calls:
        async with http.request(method, base + path, json=body, headers=h) as resp:
            assert (resp.status, await resp.json()) == (200, {}), path
    person = {"type": "person"}
    assert [r["operation"] for r in fake.state.operations_for()] == [
        {**person, "action": "identify", "identifiers": {"id": "42"}, "attributes": {"plan": "pro", "created_at": TS}},
        {**person, "action": "identify", "identifiers": {"email": "ana@example.com"}, "attributes": {"plan": "pro"}},
        {**person, "action": "event", "identifiers": {"cio_id": "0301"}, "name": "shipped", "id": ULID, "timestamp": TS, "attributes": {"o": 1}},
        {**person, "action": "page", "identifiers": {"id": "a/b"}, "name": "/home"},
        {**person, "action": "event", "identifiers": {"anonymous_id": "anon-1"}, "name": "browsed"},
        {**person, "action": "add_device", "identifiers": {"id": "42"}, "device": {"token": "tok", "platform": "ios", "last_used": TS}},
        {**person, "action": "delete_device", "identifiers": {"id": "42"}, "device": {"token": "tok/1"}},
        {**person, "action": "suppress", "identifiers": {"id": "42"}},
        {**person, "action": "unsuppress", "identifiers": {"id": "42"}},
        {**person, "action": "delete", "identifiers": {"id": "42"}},
        {**person, "action": "merge", "primary": {"id": "42"}, "secondary": {"email": "dup@example.com"}},
    ]  # fmt: skip
    assert {r["api"] for r in fake.state.operations_for()} == {"v1"}


@pytest.mark.parametrize(
    ("call", "body", "shape"),
    [
        ("POST /customers/42/events", {"name": "x", "timestamp": TS * 1000}, "errors"),
        ("POST /customers/42/events", {"data": {}}, "errors"),
        ("PUT /customers/42", {f"a{i}": 1 for i in range(301)}, "errors"),
        ("PUT /customers/42/devices", {"device": {"id": "t", "platform": "web"}}, "errors"),
        ("PUT /customers/" + "x" * 151, {"plan": "pro"}, "errors"),
        ("POST /merge_customers", {"primary": {"id": "1", "email": "e"}, "secondary": {"id": "2"}}, "error"),
    ],
    ids=["ms timestamp", "no name", "301 attributes", "web device", "long id", "merge two ids"],
)
async def test_v1_rejections(
    fake: FakeCustomerIO, http: aiohttp.ClientSession, call: str, body: Any, shape: str
) -> None:
    """Invalid v1 calls answer 400 in the v1 error shapes (meta.errors, or meta.error for merge)."""
    method, path = call.split(" ")
    async with http.request(method, f"{fake.us_url}/api/v1{path}", json=body, headers=basic(US)) as resp:
        assert resp.status == 400
        detail = (await resp.json())["meta"][shape]
    assert isinstance(detail, list if shape == "errors" else str)
    assert fake.state.operations_for() == []


async def test_v1_region_and_auth(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """v1 endpoints follow the same credential and region rules."""
    async with http.put(f"{fake.us_url}/api/v1/customers/1", json={}, headers=basic(EU), allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (301, f"{fake.eu_url}/api/v1/customers/1")
    async with http.put(f"{fake.us_url}/api/v1/customers/1", json={}, headers=basic(US, "bad")) as r:
        assert r.status == 401
    assert fake.state.operations_for() == []


# --- App API -----------------------------------------------------------------------------------------------

EMAIL = {"to": "ana@example.com", "identifiers": {"id": "42"}, "transactional_message_id": 7}


async def test_app_workspaces(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """GET /v1/workspaces with the app key lists its workspace; a Track key is refused."""
    async with http.get(f"{fake.us_url}/v1/workspaces", headers=bearer("us-app")) as resp:
        assert (resp.status, await resp.json()) == (200, {"workspaces": [{"id": "11", "name": "us-ws"}]})
    async with http.get(f"{fake.us_url}/v1/workspaces", headers=bearer("us-key")) as resp:
        assert resp.status == 401


async def test_transactional_send_ok(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """A valid send answers a unique delivery_id and queued_at, visible in /_fake/transactional."""
    answers = []
    for _ in range(2):
        async with http.post(f"{fake.us_url}/v1/send/email", json=EMAIL, headers=bearer("us-app")) as resp:
            assert resp.status == 200
            answers.append(await resp.json())
    assert answers[0]["delivery_id"] != answers[1]["delivery_id"]
    assert all(type(a["queued_at"]) is int for a in answers)
    async with http.get(f"{fake.us_url}/_fake/transactional") as resp:
        sent = await resp.json()
    assert [(s["workspace"], s["delivery_id"], s["message"]) for s in sent] == [
        ("us-ws", a["delivery_id"], EMAIL) for a in answers
    ]


async def test_transactional_send_400(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """A send without `to` answers 400 {"meta": {"error": ...}} and is not kept."""
    body = {k: v for k, v in EMAIL.items() if k != "to"}
    async with http.post(f"{fake.us_url}/v1/send/email", json=body, headers=bearer("us-app")) as resp:
        assert resp.status == 400
        assert "to" in (await resp.json())["meta"]["error"]
    assert fake.state.emails == []


async def test_transactional_send_at_past_90_days_is_400(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """send_at more than 90 days after the fake's clock answers 400 naming send_at; 89 days is sent."""
    now = int(fake.state.clock())
    late = {**EMAIL, "send_at": now + 91 * 86_400}
    async with http.post(f"{fake.us_url}/v1/send/email", json=late, headers=bearer("us-app")) as resp:
        assert resp.status == 400
        assert (await resp.json())["meta"]["error"].startswith("send_at:")
    assert fake.state.emails == []
    soon = {**EMAIL, "send_at": now + 89 * 86_400}
    async with http.post(f"{fake.us_url}/v1/send/email", json=soon, headers=bearer("us-app")) as resp:
        assert resp.status == 200


async def test_transactional_send_401(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """A wrong app key answers 401; so does a US key on the EU host."""
    async with http.post(f"{fake.us_url}/v1/send/email", json=EMAIL, headers=bearer("nope")) as resp:
        assert resp.status == 401
    async with http.post(f"{fake.eu_url}/v1/send/email", json=EMAIL, headers=bearer("us-app")) as resp:
        assert resp.status == 401
    assert fake.state.emails == []


async def test_app_eu_key_on_us_host_301(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """An EU app key on the US host answers 301 with the observed "wrong datacenter" body."""
    url = f"{fake.us_url}/v1/send/email"
    async with http.post(url, json=EMAIL, headers=bearer("eu-app"), allow_redirects=False) as resp:
        assert resp.status == 301
        assert await resp.json() == {"errors": [{"detail": "wrong datacenter", "status": "301"}]}
    assert fake.state.emails == []


async def test_app_rate_limit_429(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """The App API's own rate limit answers 429 with Retry-After; the Track API is unaffected."""
    fake.state.set_faults(app_rate_limit_per_second=1.0)
    statuses = []
    for _ in range(2):
        async with http.get(f"{fake.us_url}/v1/workspaces", headers=bearer("us-app")) as resp:
            statuses.append(resp.status)
            retry_after = resp.headers.get("Retry-After")
    assert (statuses, retry_after) == ([200, 429], "1")
    status, _, _ = await post_batch(http, fake.us_url, [identify("1")], basic(US))
    assert status == 200


# --- faults --------------------------------------------------------------------------------------------------


async def test_error_ratio_one_gives_5xx(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """With error_ratio 1.0 every request answers 500, 502 or 503 and nothing is recorded."""
    fake.state.set_faults(error_ratio=1.0)
    for _ in range(5):
        status, _, _ = await post_batch(http, fake.us_url, [identify("1")], basic(US))
        assert status in {500, 502, 503}
    assert fake.state.operations_for() == []


async def test_reset_gives_connection_error(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """With reset_ratio 1.0 the client sees a connection error, counted as "reset"."""
    fake.state.set_faults(reset_ratio=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await post_batch(http, fake.us_url, [identify("1")], basic(US))
    assert fake.state.operations_for() == []
    assert fake.state.stats()["requests"]["us-ws"]["us"] == {"reset": 1}
    fake.state.set_faults(reset_ratio=0.0)
    status, _, _ = await post_batch(http, fake.us_url, [identify("1")], basic(US))
    assert status == 200


async def test_burst_429_with_retry_after(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """A scripted burst answers the next N requests 429 with Retry-After, then requests succeed again."""
    async with http.post(
        f"{fake.us_url}/_fake/faults",
        json={"burst": {"workspace": "us-ws", "count": 2, "status": 429, "retry_after": 1}},
    ) as resp:
        assert resp.status == 200
    for _ in range(2):
        status, _, resp = await post_batch(http, fake.us_url, [identify("1")], basic(US))
        assert (status, resp.headers["Retry-After"]) == (429, "1")
    status, _, _ = await post_batch(http, fake.us_url, [identify("1")], basic(US))
    assert status == 200
    assert len(fake.state.operations_for()) == 1


async def test_throttle_timeline_shows_wait(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """Stats log each 429 with its Retry-After and when the workspace's next request arrived."""
    fake.state.add_burst(1, retry_after=0, workspace="us-ws")
    status, _, resp = await post_batch(http, fake.us_url, [identify("1")], basic(US))
    assert (status, resp.headers["Retry-After"]) == (429, "0")
    await asyncio.sleep(0.05)
    await post_batch(http, fake.us_url, [identify("1")], basic(US))
    async with http.get(f"{fake.eu_url}/_fake/stats") as resp:
        (entry,) = (await resp.json())["throttled"]["us-ws"]
    assert (entry["status"], entry["retry_after"]) == (429, 0)
    assert entry["next_request_at"] - entry["at"] >= 0.05


async def test_rate_limit_429(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """Over the Track rate limit requests answer 429 with Retry-After in whole seconds."""
    fake.state.set_faults(rate_limit_per_second=2.0)
    results = [await post_batch(http, fake.us_url, [identify("1")], basic(US)) for _ in range(3)]
    assert [s for s, _, _ in results] == [200, 200, 429]
    assert results[2][2].headers["Retry-After"] == "1"


async def test_revoke_then_restore(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """A revoked workspace answers 401 until restored, then 200 again."""
    async with http.post(f"{fake.eu_url}/_fake/workspaces/us-ws/revoke") as resp:
        assert resp.status == 200
    status, _, _ = await post_batch(http, fake.us_url, [identify("1")], basic(US))
    assert status == 401
    async with http.get(f"{fake.us_url}/v1/workspaces", headers=bearer("us-app")) as resp:
        assert resp.status == 401
    async with http.post(f"{fake.us_url}/_fake/workspaces/us-ws/restore") as resp:
        assert resp.status == 200
    status, _, _ = await post_batch(http, fake.us_url, [identify("1")], basic(US))
    assert status == 200
    async with http.post(f"{fake.us_url}/_fake/workspaces/nope/revoke") as resp:
        assert resp.status == 404


async def test_latency_added(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """latency_ms delays every answer."""
    fake.state.set_faults(latency_ms=150)
    started = time.perf_counter()
    status, _, _ = await post_batch(http, fake.us_url, [identify("1")], basic(US))
    assert status == 200
    assert time.perf_counter() - started >= 0.15


# --- control API -----------------------------------------------------------------------------------------------


async def test_control_faults_roundtrip(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """POST /_fake/faults changes only the given fields, rejects bad values with 400 and reads back."""
    async with http.post(f"{fake.us_url}/_fake/faults", json={"latency_ms": 0, "error_ratio": 0.25}) as resp:
        assert resp.status == 200
        assert (await resp.json())["error_ratio"] == 0.25
    for bad in ({"error_ratio": 2}, {"nope": 1}, [1]):
        async with http.post(f"{fake.us_url}/_fake/faults", json=bad) as resp:
            assert resp.status == 400
    async with http.post(f"{fake.us_url}/_fake/faults", data=b"{") as resp:
        assert resp.status == 400
    async with http.get(f"{fake.eu_url}/_fake/faults") as resp:
        assert await resp.json() == {
            "error_ratio": 0.25,
            "reset_ratio": 0.0,
            "latency_ms": 0,
            "rate_limit_per_second": None,
            "app_rate_limit_per_second": None,
            "poison_names": [],
            "poison_status": 207,
            "ignore_stale_identifies": False,
            "bursts": [],
            "revoked": [],
        }


async def test_control_operations_and_stats(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """Operations read back per workspace and reset; stats count answers per workspace, region and status."""
    await post_batch(http, fake.us_url, [identify("1")], basic(US))
    await post_batch(http, fake.eu_url, [identify("2")], basic(EU))
    await post_batch(http, fake.us_url, [identify("3")], basic(US, "bad"))
    async with http.get(f"{fake.us_url}/_fake/operations", params={"workspace": "eu-ws"}) as resp:
        records = await resp.json()
    assert [(r["workspace"], r["region"], r["api"], r["operation"]) for r in records] == [
        ("eu-ws", "eu", "v2", identify("2"))
    ]
    async with http.get(f"{fake.us_url}/_fake/stats") as resp:
        stats = await resp.json()
    assert stats["requests"] == {
        "(unknown)": {"us": {"401": 1}},
        "eu-ws": {"eu": {"200": 1}},
        "us-ws": {"us": {"200": 1}},
    }
    assert stats["accepted_operations"] == {"us-ws": 1, "eu-ws": 1}
    async with http.delete(f"{fake.us_url}/_fake/operations") as resp:
        assert resp.status == 200
    async with http.delete(f"{fake.us_url}/_fake/stats") as resp:
        assert resp.status == 200
    async with http.get(f"{fake.us_url}/_fake/operations") as resp:
        assert await resp.json() == []
    assert fake.state.stats()["requests"] == {}


# --- lifecycle ---------------------------------------------------------------------------------------------------


async def test_urls_need_start() -> None:
    """URLs exist only while the fake is running."""
    fake = FakeCustomerIO([US])
    with pytest.raises(RuntimeError):
        _ = fake.us_url
    await fake.start()
    assert fake.us_url.startswith("http://127.0.0.1:")
    assert fake.us_url != fake.eu_url
    await fake.stop()
    with pytest.raises(RuntimeError):
        _ = fake.eu_url


async def test_port_taken_leaves_nothing_listening(fake: FakeCustomerIO) -> None:
    """If the EU port is taken, start fails and the US listener it opened is closed again."""
    eu_port = int(fake.eu_url.rsplit(":", 1)[1])
    other = FakeCustomerIO([US], eu_port=eu_port)
    with pytest.raises(OSError, match="address already in use"):
        await other.start()
    assert other._runners == []


async def test_stale_identify_answered_200_but_not_applied(fake: FakeCustomerIO, http: aiohttp.ClientSession) -> None:
    """With ignore_stale_identifies (set over the control API) an older identify gets 200 and is not recorded."""
    async with http.post(f"{fake.us_url}/_fake/faults", json={"ignore_stale_identifies": True}) as resp:
        assert resp.status == 200
    newer, older = identify("1", timestamp=TS), identify("1", timestamp=TS - 60, attributes={"plan": "old"})
    status, body, _ = await post_batch(http, fake.us_url, [newer, older], basic(US))
    assert (status, body) == (200, {})
    async with http.post(f"{fake.us_url}/api/v2/entity", json=older, headers=basic(US)) as resp:
        assert resp.status == 200
    assert [r["operation"] for r in fake.state.operations_for()] == [newer]
    assert fake.state.stats()["ignored_operations"] == {"us-ws": 2}
