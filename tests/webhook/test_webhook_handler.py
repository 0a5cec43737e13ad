"""The webhook listener over a real socket, with an in-memory producer."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from connector.config import Secret
from connector.errors import BrokerUnavailableError
from connector.metrics import Metrics
from connector.webhook.listener import WebhookListener
from tests.webhook.cio_payloads import SIGNING_KEY, TIMESTAMP, signed, webhook
from tests.webhook.webhook_support import Clock, FakeProducer, MakeClient, until, webhook_settings

PATH = "/webhooks/customerio"


async def post(
    client: TestClient[Any, Any] | aiohttp.ClientSession, payload: dict[str, Any] | bytes, **sign_kw: Any
) -> tuple[int, Any]:
    """POST a signed webhook; return (status, JSON body)."""
    body, headers = signed(payload, **sign_kw)
    async with client.post(PATH, data=body, headers=headers) as response:
        return response.status, await response.json()


def sample(name: str, labels: dict[str, str] | None, metrics: Metrics) -> float:
    """A metric sample's value (0 when absent)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_accepted_event_is_produced_with_key_and_headers(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """A signed webhook is produced to the topic (key = person id, headers) before the 200."""
    client = await make_client()
    status, body = await post(client, webhook("email", "delivered", event_id="evt-1"))
    assert (status, body) == (200, {"message": "accepted"})
    [(topic, key, value, headers)] = fake_producer.records
    assert topic == "cio-reporting-events"
    assert key == b"user-1042"
    assert headers == (("event_id", b"evt-1"), ("object_type", b"email"), ("metric", b"delivered"))
    event = orjson.loads(value)
    assert (event["event"], event["messageId"], event["userId"]) == ("Email Delivered", "evt-1", "user-1042")
    assert sample("connector_webhook_requests_total", {"outcome": "accepted", "workspace": ""}, metrics) == 1
    assert (
        sample(
            "connector_webhook_events_total", {"object_type": "email", "metric": "delivered", "workspace": ""}, metrics
        )
        == 1
    )
    assert sample("connector_webhook_produce_duration_seconds_count", {"workspace": ""}, metrics) == 1


async def test_custom_path_and_topic(make_client: MakeClient, fake_producer: FakeProducer) -> None:
    """The route and the topic come from the settings."""
    client = await make_client(path="/hooks/cio", topic="custom")
    body, headers = signed(webhook("sms", "sent"))
    async with client.post("/hooks/cio", data=body, headers=headers) as response:
        assert response.status == 200
    async with client.post(PATH, data=body, headers=headers) as response:
        assert response.status == 404
    assert fake_producer.records[0][0] == "custom"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-CIO-Signature": "0" * 64}, "mismatch"),
        ({"X-CIO-Signature": None}, "missing_headers"),
        ({"X-CIO-Timestamp": None}, "missing_headers"),
        ({"X-CIO-Timestamp": "noon"}, "bad_timestamp"),
        ({"X-CIO-Timestamp": str(TIMESTAMP + 1)}, "mismatch"),
    ],
)
async def test_bad_signature_is_401_and_nothing_is_produced(
    make_client: MakeClient,
    fake_producer: FakeProducer,
    metrics: Metrics,
    headers: dict[str, str | None],
    reason: str,
) -> None:
    """Missing or wrong signature headers → 401 with a reason metric; nothing reaches Kafka."""
    client = await make_client()
    body, good = signed(webhook("email", "sent"))
    sent = {k: v for k, v in {**good, **headers}.items() if v is not None}
    async with client.post(PATH, data=body, headers=sent) as response:
        assert response.status == 401
        assert await response.json() == {"message": "invalid signature"}
    assert fake_producer.calls == 0
    assert sample("connector_webhook_signature_failures_total", {"reason": reason, "workspace": ""}, metrics) == 1
    assert sample("connector_webhook_requests_total", {"outcome": "bad_signature", "workspace": ""}, metrics) == 1


async def test_signature_is_checked_before_parsing(make_client: MakeClient, fake_producer: FakeProducer) -> None:
    """An unsigned non-JSON body is a 401, not a 400: nothing about the body is revealed to forgers."""
    client = await make_client()
    async with client.post(PATH, data=b"not json") as response:
        assert response.status == 401
    assert fake_producer.calls == 0


async def test_stale_timestamp_when_max_age_set(make_client: MakeClient, clock: Clock, metrics: Metrics) -> None:
    """With a max age, an old signature is 401 'stale'; without one (max age off) it is accepted."""
    strict = await make_client(max_timestamp_age_seconds=300)
    lax = await make_client(max_timestamp_age_seconds=None)
    clock.now = TIMESTAMP + 301
    assert (await post(strict, webhook("email", "sent", event_id="a")))[0] == 401
    assert sample("connector_webhook_signature_failures_total", {"reason": "stale", "workspace": ""}, metrics) == 1
    assert (await post(lax, webhook("email", "sent", event_id="b")))[0] == 200


@pytest.mark.parametrize(
    ("age_days", "status"),
    [(7, 200), (-7, 200), (8.1, 401), (-8.1, 401)],
    ids=["7-day-old-retry", "7-days-ahead", "8-days-old", "8-days-ahead"],
)
async def test_default_replay_window_covers_customerio_retries(
    make_client: MakeClient, clock: Clock, age_days: float, status: int
) -> None:
    """By default a genuine signature is accepted for Customer.io's 7-day retry window (plus a day), not beyond."""
    client = await make_client()  # the default max age
    clock.now = TIMESTAMP + age_days * 86_400
    assert (await post(client, webhook("email", "sent", event_id="replayed")))[0] == status


async def test_rotated_keys_both_accepted(make_client: MakeClient) -> None:
    """During rotation webhooks signed with the old or the new key are accepted."""
    client = await make_client(signing_keys=(Secret("old"), Secret(SIGNING_KEY)))
    assert (await post(client, webhook("email", "sent", event_id="a"), key="old"))[0] == 200
    assert (await post(client, webhook("email", "sent", event_id="b"), key=SIGNING_KEY))[0] == 200
    assert (await post(client, webhook("email", "sent", event_id="c"), key="other"))[0] == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not valid JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b'{"object_type": "email", "metric": "sent"}', "event_id is missing or not a non-empty string"),
        (b'{"event_id": ""}', "event_id is missing or not a non-empty string"),
    ],
)
async def test_bad_payload_after_valid_signature_is_400(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics, body: bytes, message: str
) -> None:
    """A genuine but unusable body → 400 with a message; nothing produced."""
    client = await make_client()
    assert await post(client, body) == (400, {"message": message})
    assert fake_producer.calls == 0
    assert sample("connector_webhook_requests_total", {"outcome": "bad_request", "workspace": ""}, metrics) == 1


async def test_unknown_object_type_and_metric_are_accepted(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """Unknown values are produced under the generic name and answered 200 (never 4xx)."""
    client = await make_client()
    payload = {"event_id": "u1", "object_type": "fax", "metric": "beeped", "timestamp": TIMESTAMP, "data": {}}
    assert (await post(client, payload))[0] == 200
    event = orjson.loads(fake_producer.records[0][2])
    assert event["event"] == "Customer.io Event"
    assert (event["properties"]["objectType"], event["properties"]["metric"]) == ("fax", "beeped")
    assert (
        sample("connector_webhook_events_total", {"object_type": "other", "metric": "other", "workspace": ""}, metrics)
        == 1
    )


async def test_body_over_the_limit_is_413(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """Bodies larger than max_body_bytes → 413, announced (Content-Length) or streamed (chunked)."""
    client = await make_client(max_body_bytes=2048)
    big, headers = signed(webhook("email", "sent", padding="x" * 3000))
    async with client.post(PATH, data=big, headers=headers) as response:
        assert response.status == 413
        assert "2048" in (await response.json())["message"]

    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 1000

    async with client.post(PATH, data=chunks(), headers=headers) as response:
        assert response.status == 413
    fits, headers = signed(webhook("email", "sent", event_id="small"))
    assert len(fits) < 2048
    async with client.post(PATH, data=fits, headers=headers) as response:
        assert response.status == 200
    assert fake_producer.calls == 1
    assert sample("connector_webhook_requests_total", {"outcome": "too_large", "workspace": ""}, metrics) == 2


async def test_body_exactly_at_the_limit_is_read(make_client: MakeClient) -> None:
    """A body of exactly max_body_bytes is accepted."""
    payload = webhook("email", "sent", event_id="exact")
    raw = orjson.dumps(payload)
    payload["data"]["pad"] = "x" * (2048 - len(raw) - len(b',"pad":""'))
    body, headers = signed(payload)
    assert len(body) == 2048
    client = await make_client(max_body_bytes=2048)
    async with client.post(PATH, data=body, headers=headers) as response:
        assert response.status == 200


async def test_wrong_method_and_unknown_path(make_client: MakeClient) -> None:
    """GET on the webhook path → 405 (with Allow); an unknown path → 404; both small JSON bodies."""
    client = await make_client()
    async with client.get(PATH) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
        assert await response.json() == {"message": "Method Not Allowed"}
    async with client.post("/nope") as response:
        assert response.status == 404
        assert await response.json() == {"message": "Not Found"}


async def test_broker_failure_is_503_and_retry_produces(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """A produce error → 503 (Customer.io retries); the retry is produced once the broker is back."""
    client = await make_client()
    fake_producer.fail = BrokerUnavailableError("down")
    payload = webhook("email", "opened", event_id="r1")
    assert await post(client, payload) == (503, {"message": "event not stored, retry later"})
    assert sample("connector_webhook_requests_total", {"outcome": "unavailable", "workspace": ""}, metrics) == 1
    fake_producer.fail = None
    assert (await post(client, payload))[0] == 200
    assert len(fake_producer.records) == 1


async def test_unexpected_producer_error_is_503_not_500(make_client: MakeClient, fake_producer: FakeProducer) -> None:
    """A bug in the producer path still answers 503 (a 500 would delay Customer.io's retries an hour)."""
    client = await make_client()
    fake_producer.fail = RuntimeError("bug")
    assert (await post(client, webhook("email", "sent")))[0] == 503


async def test_no_ack_in_time_is_503_and_late_ack_is_not_produced_twice(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """No ack within the produce timeout → 503; once the late ack lands, the retry is a duplicate."""
    client = await make_client(produce_timeout_seconds=0.05)
    fake_producer.gate = asyncio.Event()
    payload = webhook("push", "delivered", event_id="slow")
    assert (await post(client, payload))[0] == 503
    assert (await post(client, payload))[0] == 503  # still pending: joins, does not produce again
    assert fake_producer.calls == 1
    fake_producer.gate.set()
    await until(lambda: len(fake_producer.records) == 1)  # the late ack landed
    assert await post(client, payload) == (200, {"message": "duplicate"})
    assert fake_producer.calls == 1
    assert len(fake_producer.records) == 1
    assert sample("connector_webhook_duplicates_total", {"workspace": ""}, metrics) == 1


async def test_every_unacknowledged_webhook_gets_503_after_answered_ones(
    make_client: MakeClient, fake_producer: FakeProducer
) -> None:
    """Produce deadlines share one timer: webhooks answered 200 before do not keep later ones waiting."""
    client = await make_client(produce_timeout_seconds=0.05)
    assert (await post(client, webhook("email", "sent", event_id="acked")))[0] == 200
    fake_producer.gate = asyncio.Event()  # from now on the broker never answers
    async with asyncio.timeout(30):  # generous: a deadline that never fires must fail, not hang
        first = await asyncio.gather(*(post(client, webhook("email", "sent", event_id=f"a{i}")) for i in range(3)))
        second = await asyncio.gather(*(post(client, webhook("email", "sent", event_id=f"b{i}")) for i in range(3)))
    assert [status for status, _ in first + second] == [503] * 6
    assert len(fake_producer.records) == 1


async def test_retry_of_a_produced_event_is_not_produced_again(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """A Customer.io retry of an acknowledged event → 200 without a second record."""
    client = await make_client()
    payload = webhook("email", "clicked", event_id="dup")
    assert (await post(client, payload))[0] == 200
    assert await post(client, payload) == (200, {"message": "duplicate"})
    assert len(fake_producer.records) == 1
    assert sample("connector_webhook_requests_total", {"outcome": "duplicate", "workspace": ""}, metrics) == 1


async def test_retry_after_the_dedup_window_is_produced_again(
    make_client: MakeClient, fake_producer: FakeProducer, clock: Clock
) -> None:
    """Beyond the window the id is forgotten and a retry is produced (at least once)."""
    client = await make_client(dedup_window_seconds=60)
    payload = webhook("email", "clicked", event_id="old")
    assert (await post(client, payload))[0] == 200
    clock.now += 61
    assert await post(client, payload) == (200, {"message": "accepted"})
    assert len(fake_producer.records) == 2


async def test_concurrent_duplicates_share_one_produce(make_client: MakeClient, fake_producer: FakeProducer) -> None:
    """Duplicates arriving while the first is in flight wait for it and share its result."""
    client = await make_client(produce_timeout_seconds=2)
    fake_producer.gate = asyncio.Event()
    payload = webhook("sms", "delivered", event_id="same")
    posts = [asyncio.ensure_future(post(client, payload)) for _ in range(5)]
    await until(lambda: fake_producer.calls >= 1)  # the first one is producing
    assert fake_producer.calls == 1
    fake_producer.gate.set()
    results = await asyncio.gather(*posts)
    assert sorted(body["message"] for _, body in results) == ["accepted"] + ["duplicate"] * 4
    assert {status for status, _ in results} == {200}
    assert len(fake_producer.records) == 1


async def test_concurrent_duplicates_share_a_failure(make_client: MakeClient, fake_producer: FakeProducer) -> None:
    """When the shared produce fails, every waiter gets 503 and a later retry produces."""
    client = await make_client(produce_timeout_seconds=2)
    fake_producer.gate = asyncio.Event()
    fake_producer.fail = BrokerUnavailableError("down")
    payload = webhook("sms", "delivered", event_id="same")
    posts = [asyncio.ensure_future(post(client, payload)) for _ in range(3)]
    await until(lambda: fake_producer.calls >= 1)
    fake_producer.gate.set()
    assert [status for status, _ in await asyncio.gather(*posts)] == [503, 503, 503]
    fake_producer.fail = None
    assert (await post(client, payload))[0] == 200
    assert fake_producer.calls == 2
    assert len(fake_producer.records) == 1


async def test_producer_not_connected(make_client: MakeClient, fake_producer: FakeProducer) -> None:
    """While the producer is not started: /readyz 503 and webhooks 503, nothing produced."""
    client = await make_client()
    fake_producer.started = False
    async with client.get("/readyz") as response:
        assert response.status == 503
        assert await response.json() == {"ready": False, "message": "Kafka producer not connected"}
    assert (await post(client, webhook("email", "sent")))[0] == 503
    assert fake_producer.calls == 0


async def test_too_many_pending_events_is_503(fake_producer: FakeProducer, metrics: Metrics) -> None:
    """The number of events awaiting an ack is bounded; beyond it new events get 503."""
    from aiohttp.test_utils import RawTestServer

    from connector.webhook.handler import make_webhook_app

    app = make_webhook_app(
        webhook_settings(produce_timeout_seconds=0.05), fake_producer, metrics, Clock(), max_pending=2
    )
    fake_producer.gate = asyncio.Event()
    client: TestClient[Any, Any] = TestClient(RawTestServer(app))
    async with client:
        assert [(await post(client, webhook("email", "sent", event_id=str(i))))[0] for i in range(3)] == [503] * 3
        fake_producer.gate.set()  # the first two are produced late (the second behind the first); the third never
        await until(lambda: len(fake_producer.records) == 2)
        assert [orjson.loads(value)["messageId"] for _, _, value, _ in fake_producer.records] == ["0", "1"]
        assert fake_producer.calls == 2


async def test_health_and_readiness(make_client: MakeClient) -> None:
    """/healthz is 200; /readyz is 200 while the producer is up and the listener open."""
    client = await make_client()
    async with client.get("/healthz") as response:
        assert (response.status, await response.json()) == (200, {"status": "ok"})
    async with client.get("/readyz") as response:
        assert (response.status, await response.json()) == (200, {"ready": True, "message": "ok"})


async def test_graceful_shutdown(fake_producer: FakeProducer, metrics: Metrics) -> None:
    """begin_shutdown: readiness false, new webhooks 503, the in-flight one finishes with 200; stop waits."""
    listener = WebhookListener(webhook_settings(produce_timeout_seconds=2), fake_producer, metrics, clock=Clock())
    await listener.start()
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{listener.port}") as client:
        fake_producer.gate = asyncio.Event()
        in_flight = asyncio.ensure_future(post(client, webhook("email", "sent", event_id="in-flight")))
        await until(lambda: fake_producer.calls == 1)  # in flight, held at the gate
        listener.begin_shutdown()
        assert listener.readiness() == (False, "shutting down")
        assert not listener.ready()
        async with client.get("/readyz") as response:
            assert response.status == 503
        assert (await post(client, webhook("email", "sent", event_id="late")))[0] == 503
        assert sample("connector_webhook_requests_total", {"outcome": "closing", "workspace": ""}, metrics) == 1
        stopping = asyncio.ensure_future(listener.stop())
        done, _ = await asyncio.wait({stopping}, timeout=0.2)
        assert not done  # waits for the in-flight webhook (a window can only miss a bug here, not invent one)
        fake_producer.gate.set()
        assert await in_flight == (200, {"message": "accepted"})
        await stopping
    assert [r[3][0][1] for r in fake_producer.records] == [b"in-flight"]
    assert listener.app.state.active == 0


async def test_stop_cancels_produce_tasks_left_after_the_deadline(
    fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """A record never acknowledged does not hold shutdown: after the deadline its task is cancelled."""
    listener = WebhookListener(webhook_settings(produce_timeout_seconds=0.05), fake_producer, metrics, clock=Clock())
    await listener.start()
    fake_producer.gate = asyncio.Event()  # the broker never answers
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{listener.port}") as client:
        assert (await post(client, webhook("email", "sent", event_id="stuck")))[0] == 503
    assert listener.state.delivery.pending == 1
    started = asyncio.get_running_loop().time()
    await listener.stop(timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 2
    assert listener.state.delivery.pending == 0
    assert fake_producer.records == []


def test_state_repr_never_shows_signing_keys(metrics: Metrics, fake_producer: FakeProducer) -> None:
    """Logging the shared state by mistake does not leak a signing key."""
    from connector.webhook.handler import make_webhook_app

    app = make_webhook_app(webhook_settings(), fake_producer, metrics)
    assert SIGNING_KEY not in repr(app.state)
    assert SIGNING_KEY.encode() in app.state.keys
