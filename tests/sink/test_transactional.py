"""Transactional email: building /v1/send/email bodies (pure) and sending them to the fake App API."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.cio.client import CustomerIOClient
from connector.cio.region import ResolvedWorkspace, resolve_workspace
from connector.config import EndpointSettings, Secret, WorkspaceSettings
from connector.errors import AuthError, BrokerUnavailableError, PermanentDeliveryError
from connector.fake_cio.rules_v1 import check_transactional_email, count_recipients
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.metrics import Metrics
from connector.sink.mapping.model import Message, Rejection
from connector.sink.mapping.transactional import MAX_RECIPIENTS, _count_recipients, build_send_email
from connector.sink.retry import RetryPolicy
from connector.sink.transactional_sender import TransactionalSender


def _event(userId: Any = "u-1", **props: Any) -> Message:  # noqa: N803 - Segment's field name
    base: dict[str, Any] = {"transactional_message_id": 7, "to": "ana@example.com"}
    base.update(props)
    message: Message = {"type": "track", "event": "Transactional Email Requested", "properties": base}
    if userId is not None:
        message["userId"] = userId
    return message


def _addresses(n: int, prefix: str = "p") -> str:
    return ", ".join(f"{prefix}{i}@example.com" for i in range(n))


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"k": value}
    return value


def _body(message: Message) -> dict[str, Any]:
    built = build_send_email(message)
    assert isinstance(built, bytes), built
    doc: dict[str, Any] = orjson.loads(built)
    return doc


def test_minimal_event_builds_the_documented_body() -> None:
    """Template id, to, identifiers from userId and an empty message_data."""
    assert _body(_event()) == {
        "transactional_message_id": 7,
        "to": "ana@example.com",
        "identifiers": {"id": "u-1"},
        "message_data": {},
    }


def test_every_optional_field_is_carried() -> None:
    """Optional strings, flags, send_at and message_data are copied; other properties are not."""
    body = _body(
        _event(
            message_data={"order": {"id": "A-1"}},
            subject="Hi",
            reply_to="help@example.com",
            language="de",
            disable_message_retention=True,
            send_to_unsubscribed=False,
            tracked=True,
            queue_draft=False,
            send_at="2026-01-01T00:00:00Z",
            coupon="SAVE10",
            **{"from": "shop@example.com"},
        )
    )
    assert body == {
        "transactional_message_id": 7,
        "to": "ana@example.com",
        "identifiers": {"id": "u-1"},
        "message_data": {"order": {"id": "A-1"}},
        "from": "shop@example.com",
        "subject": "Hi",
        "reply_to": "help@example.com",
        "language": "de",
        "disable_message_retention": True,
        "send_to_unsubscribed": False,
        "tracked": True,
        "queue_draft": False,
        "send_at": 1767225600,
    }


@pytest.mark.parametrize(
    ("props", "user_id", "field", "expected"),
    [
        ({"transactional_message_id": "42"}, "u", "transactional_message_id", 42),
        ({"transactional_message_id": "welcome"}, "u", "transactional_message_id", "welcome"),
        ({"transactional_message_id": " 18446744073709551615 "}, "u", "transactional_message_id", 2**64 - 1),
        ({"transactional_message_id": "²"}, "u", "transactional_message_id", "²"),  # not ASCII digits: a name
        ({"transactional_message_id": "١٢"}, "u", "transactional_message_id", "١٢"),
        ({"transactional_message_id": None, "transactionalMessageId": 9}, "u", "transactional_message_id", 9),
        ({"to": None, "recipient": "b@example.com"}, "u", "to", "b@example.com"),
        ({"to": None, "email": "c@example.com"}, "u", "to", "c@example.com"),
        ({"to": ["a@example.com", "b@example.com"]}, "u", "to", "a@example.com, b@example.com"),
        ({}, "ana@example.com", "identifiers", {"email": "ana@example.com"}),
        ({}, "cio_03000001", "identifiers", {"cio_id": "03000001"}),
        ({}, 42, "identifiers", {"id": "42"}),
        ({"identifiers": {"email": "x@example.com"}}, "u", "identifiers", {"email": "x@example.com"}),
        ({"identifiers": {"id": 5}}, None, "identifiers", {"id": "5"}),
        ({"messageData": {"a": 1}}, "u", "message_data", {"a": 1}),
        ({"replyTo": "r@example.com"}, "u", "reply_to", "r@example.com"),
        ({"sendToUnsubscribed": True}, "u", "send_to_unsubscribed", True),
        ({"send_at": 1767225600}, "u", "send_at", 1767225600),
        ({"send_at": 1767225600123}, "u", "send_at", 1767225600),
        ({"send_at": "1767225600"}, "u", "send_at", 1767225600),
        ({"send_at": "2026-01-01T01:00:00+01:00"}, "u", "send_at", 1767225600),
        ({"send_at": "2026-01-01T00:00:00"}, "u", "send_at", 1767225600),
        ({"cc": ["c@example.com", "d@example.com"]}, "u", "cc", "c@example.com, d@example.com"),
        ({"bcc": " audit@example.com "}, "u", "bcc", "audit@example.com"),
        ({"attachments": {"r.pdf": "aGVsbG8=", "e.txt": ""}}, "u", "attachments", {"r.pdf": "aGVsbG8=", "e.txt": ""}),
    ],
)
def test_field_variants(props: dict[str, Any], user_id: Any, field: str, expected: Any) -> None:
    """Accepted spellings and shapes of each field, normalized to what the App API expects."""
    assert _body(_event(user_id, **props))[field] == expected


@pytest.mark.parametrize(
    ("props", "user_id", "reason", "names"),
    [
        ({"transactional_message_id": None}, "u", "missing_field", "transactional_message_id"),
        ({"transactional_message_id": True}, "u", "invalid_field", "transactional_message_id"),
        ({"transactional_message_id": 1.5}, "u", "invalid_field", "transactional_message_id"),
        ({"transactional_message_id": ""}, "u", "invalid_field", "transactional_message_id"),
        ({"transactional_message_id": 0}, "u", "invalid_field", "transactional_message_id"),
        ({"transactional_message_id": "  "}, "u", "invalid_field", "transactional_message_id"),
        ({"to": None}, "u", "missing_field", "properties.to"),
        ({"to": ""}, "u", "invalid_field", "properties.to"),
        ({"to": 5}, "u", "invalid_field", "properties.to"),
        ({"to": ",".join(f"p{i}@example.com" for i in range(16))}, "u", "limit_exceeded", "properties.to"),
        ({}, None, "missing_identifier", "identifiers"),
        ({}, "  ", "missing_identifier", "identifiers"),
        ({"identifiers": {"id": "1", "email": "a@example.com"}}, "u", "invalid_identifier", "identifiers"),
        ({"identifiers": {"phone": "+1"}}, "u", "invalid_identifier", "identifiers"),
        ({"identifiers": {}}, "u", "invalid_identifier", "identifiers"),
        ({"identifiers": {"id": ""}}, "u", "invalid_identifier", "identifiers.id"),
        ({"identifiers": "u-1"}, "u", "invalid_identifier", "identifiers"),
        ({"message_data": [1]}, "u", "invalid_field", "message_data"),
        ({"subject": 3}, "u", "invalid_field", "subject"),
        ({"tracked": "yes"}, "u", "invalid_field", "tracked"),
        ({"send_at": "next tuesday"}, "u", "invalid_timestamp", "send_at"),
        ({"send_at": True}, "u", "invalid_timestamp", "send_at"),
        ({"message_data": {"blob": "x" * (2048 * 1024)}}, "u", "too_large", "bytes"),
        ({"transactional_message_id": "9" * 25}, "u", "invalid_field", "transactional_message_id: out of range"),
        ({"transactional_message_id": "9" * 5000}, "u", "invalid_field", "transactional_message_id: out of range"),
        ({"transactional_message_id": 2**64}, "u", "invalid_field", "transactional_message_id: out of range"),
        ({"message_data": _deep(300)}, "u", "invalid_field", "properties.message_data: cannot be serialized"),
        ({"message_data": {"n": 2**70}}, "u", "invalid_field", "properties.message_data: cannot be serialized"),
        ({"subject": "\ud800"}, "u", "invalid_field", "properties.subject: cannot be serialized"),
        ({"identifiers": {"id": 10**5000}}, "u", "invalid_identifier", "identifiers.id: number out of range"),
        ({"identifiers": {"id": "x" * 151}}, "u", "limit_exceeded", "identifiers.id"),
        ({}, "a@" + "." * 200_000 + " ", "limit_exceeded", "userId"),
        ({"to": "a@b.c," * 3000}, "u", "limit_exceeded", "properties.to"),
        (
            {"to": _addresses(10), "cc": _addresses(5, "c"), "bcc": "x@example.com"},
            "u",
            "limit_exceeded",
            "properties.bcc",
        ),
        ({"to": _addresses(14), "cc": _addresses(2, "c")}, "u", "limit_exceeded", "properties.cc: to+cc+bcc"),
        ({"cc": 5}, "u", "invalid_field", "properties.cc"),
        ({"bcc": [""]}, "u", "invalid_field", "properties.bcc"),
        ({"attachments": ["aGVsbG8="]}, "u", "invalid_field", "properties.attachments"),
        ({"attachments": {"a.pdf": 5}}, "u", "invalid_field", "properties.attachments['a.pdf']"),
        ({"attachments": {"a.pdf": "not base64!"}}, "u", "invalid_field", "properties.attachments['a.pdf']: not valid"),
        ({"attachments": {"a.pdf": "aGVsbG8"}}, "u", "invalid_field", "properties.attachments['a.pdf']: not valid"),
        ({"attachments": {"a.pdf": "aGVs\nbG8="}}, "u", "invalid_field", "properties.attachments['a.pdf']: not valid"),
        ({"attachments": {" ": "aGVsbG8="}}, "u", "invalid_field", "properties.attachments: file name"),
        (
            {"attachments": {"a": "A" * (1024 * 1024), "b": "A" * (1024 * 1024)}},
            "u",
            "too_large",
            "properties.attachments",
        ),
    ],
)
def test_invalid_events_are_rejected(props: dict[str, Any], user_id: Any, reason: str, names: str) -> None:
    """Each bad field gives a Rejection with a reason from the vocabulary and a message naming the field."""
    result = build_send_email(_event(user_id, **props))
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert names in result.message


def test_fifteen_recipients_with_quoted_commas_are_allowed() -> None:
    """Commas inside quoted display names do not count as separators."""
    to = ", ".join(f'"Doe, P{i}" <p{i}@example.com>' for i in range(15))
    assert _body(_event(to=to))["to"] == to


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(',"a @'), max_size=40))
def test_recipients_are_counted_as_the_old_lookahead_regex_counted(to: str) -> None:
    """The linear count splits exactly where ``,(?=(?:[^"]*"[^"]*")*[^"]*$)`` did (commas outside quotes)."""
    regex = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')
    expected = sum(1 for part in regex.split(to) if part.strip())
    assert _count_recipients(to) == expected


@settings(max_examples=200, deadline=None)
@given(
    to=st.integers(1, 12),
    cc=st.one_of(st.none(), st.integers(1, 6)),
    bcc=st.one_of(st.none(), st.integers(1, 6)),
    as_list=st.booleans(),
    files=st.dictionaries(st.text(min_size=1, max_size=20).filter(str.strip), st.binary(max_size=300), max_size=4),
)
def test_recipients_and_attachments_built_are_accepted_by_the_fake(
    to: int, cc: int | None, bcc: int | None, as_list: bool, files: dict[str, bytes]
) -> None:
    """Whatever the split of addresses over to/cc/bcc and whatever the files: the body is built exactly when
    to+cc+bcc hold at most 15 addresses, it carries each of them once, and the fake's App API rules (which
    count recipients and check attachments independently) accept it."""
    counts = {"to": to, "cc": cc, "bcc": bcc}
    props: dict[str, Any] = {}
    for field, n in counts.items():
        if n is not None:
            addresses = [f'"{field.upper()}, {i}" <{field}{i}@example.com>' for i in range(n)]
            props[field] = addresses if as_list else ", ".join(addresses)
    props["attachments"] = {name: base64.b64encode(content).decode() for name, content in files.items()}
    total = sum(n or 0 for n in counts.values())
    built = build_send_email(_event(**props))
    if total > MAX_RECIPIENTS:
        assert isinstance(built, Rejection)
        assert built.reason == "limit_exceeded"
        return
    assert isinstance(built, bytes), built
    body = orjson.loads(built)
    assert check_transactional_email(body, len(built)) is None
    assert {f: count_recipients(body[f]) for f in counts if counts[f] is not None} == {
        f: n for f, n in counts.items() if n is not None
    }
    if files:
        assert {name: base64.b64decode(v) for name, v in body["attachments"].items()} == files
    else:
        assert "attachments" not in body


def test_missing_properties_is_rejected() -> None:
    """A track event without a properties object cannot be a transactional send."""
    assert build_send_email({"type": "track", "event": "x"}) == Rejection(
        "missing_field", "properties: required (an object)"
    )


# --- TransactionalSender against the fake App API -------------------------------------------------

FAKE_EU = Workspace("eu-ws", "eu-site", "eu-track-key", "eu", app_api_key="eu-app-key")
FAKE_US = Workspace("us-ws", "us-site", "us-track-key", "us", app_api_key="us-app-key")
NO_BACKOFF = RetryPolicy(initial_seconds=0.0, max_seconds=0.0, retry_after_cap_seconds=0.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE_EU, FAKE_US]) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[CustomerIOClient]:
    async with CustomerIOClient(5.0, Metrics()) as c:
        yield c


async def pinned(fake: FakeCustomerIO, client: CustomerIOClient, ws: Workspace, **overrides: Any) -> ResolvedWorkspace:
    endpoints = EndpointSettings(
        track_url_us=fake.us_url, track_url_eu=fake.eu_url, app_url_us=fake.us_url, app_url_eu=fake.eu_url
    )
    settings = WorkspaceSettings(
        name=ws.name,
        site_id=ws.site_id,
        api_key=Secret(ws.api_key),
        app_api_key=Secret(overrides.get("app_api_key", ws.app_api_key)) if ws.app_api_key else None,
    )
    return await resolve_workspace(client, endpoints, settings)


class DeliveryRecorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any], bytes]] = []

    async def __call__(self, delivery_id: str, value: bytes, key: bytes) -> None:
        self.records.append((delivery_id, orjson.loads(value), key))


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_send_posts_one_email_and_reports_the_delivery_id(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """One POST /v1/send/email at the EU fake with the built body; the delivery id goes to the sink."""
    ws = await pinned(fake, client, FAKE_EU)
    metrics, recorder = Metrics(), DeliveryRecorder()
    sender = TransactionalSender(client, NO_BACKOFF, 10.0, metrics, recorder)
    body = build_send_email(_event(message_data={"order": "A-1"}))
    assert isinstance(body, bytes)

    delivery_id = await sender.send(ws, body, b"user-key", message_id="m-1")

    [email] = fake.state.emails
    assert (email["workspace"], email["region"], email["delivery_id"]) == ("eu-ws", "eu", delivery_id)
    assert email["message"] == {
        "transactional_message_id": 7,
        "to": "ana@example.com",
        "identifiers": {"id": "u-1"},
        "message_data": {"order": "A-1"},
    }
    assert recorder.records == [
        (
            delivery_id,
            {
                "delivery_id": delivery_id,
                "workspace": "eu-ws",
                "queued_at": email["queued_at"],
                "transactional_message_id": 7,
                "messageId": "m-1",
            },
            b"user-key",
        )
    ]
    assert sample(metrics, "connector_transactional_sends_total", workspace="eu-ws", outcome="sent") == 1
    # All of the EU workspace's traffic went to the EU listener (the lookup included).
    assert fake.state.stats()["requests"]["eu-ws"] == {"us": {"200": 1}, "eu": {"200": 1}}


async def test_record_without_key_is_keyed_by_delivery_id(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """An input record without a key gives a delivery record keyed by the delivery id."""
    ws = await pinned(fake, client, FAKE_US)
    recorder = DeliveryRecorder()
    sender = TransactionalSender(client, NO_BACKOFF, 10.0, Metrics(), recorder)
    body = build_send_email(_event())
    assert isinstance(body, bytes)
    delivery_id = await sender.send(ws, body, None)
    assert [(d, k) for d, _, k in recorder.records] == [(delivery_id, delivery_id.encode())]


async def test_rejected_send_raises_with_customerio_message(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """A 400 is a PermanentDeliveryError carrying the App API's message; it is not retried."""
    ws = await pinned(fake, client, FAKE_EU)
    metrics = Metrics()
    sender = TransactionalSender(client, NO_BACKOFF, 10.0, metrics)
    body = orjson.dumps({"to": "ana@example.com", "identifiers": {"id": "u-1"}})
    with pytest.raises(PermanentDeliveryError, match="transactional_message_id") as caught:
        await sender.send(ws, body, None)
    assert caught.value.status == 400
    assert fake.state.emails == []
    assert sample(metrics, "connector_transactional_sends_total", workspace="eu-ws", outcome="rejected") == 1
    assert fake.state.stats()["requests"]["eu-ws"]["eu"] == {"400": 1}


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_transient_failures_are_retried_until_success(
    fake: FakeCustomerIO, client: CustomerIOClient, status: int
) -> None:
    """A burst of 5xx/429 answers is retried with the policy; the email is sent once."""
    ws = await pinned(fake, client, FAKE_EU)
    metrics, recorder = Metrics(), DeliveryRecorder()
    sender = TransactionalSender(client, NO_BACKOFF, 1000.0, metrics, recorder)
    fake.state.add_burst(3, status=status, workspace="eu-ws")
    body = build_send_email(_event())
    assert isinstance(body, bytes)

    delivery_id = await sender.send(ws, body, b"k")

    assert [e["delivery_id"] for e in fake.state.emails] == [delivery_id]
    assert len(recorder.records) == 1
    assert fake.state.stats()["requests"]["eu-ws"]["eu"] == {str(status): 3, "200": 1}
    cause = "429" if status == 429 else "5xx"
    assert sample(metrics, "connector_retries_total", workspace="eu-ws", cause=cause) == 3
    assert sample(metrics, "connector_transactional_sends_total", workspace="eu-ws", outcome="sent") == 1


async def test_rejected_app_key_raises_auth_error(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """A revoked App key is an AuthError, counted as an auth failure; nothing reaches the delivery sink."""
    ws = await pinned(fake, client, FAKE_EU)
    metrics, recorder = Metrics(), DeliveryRecorder()
    sender = TransactionalSender(client, NO_BACKOFF, 10.0, metrics, recorder)
    fake.state.revoke("eu-ws")
    body = build_send_email(_event())
    assert isinstance(body, bytes)
    with pytest.raises(AuthError):
        await sender.send(ws, body, None)
    assert recorder.records == []
    assert sample(metrics, "connector_auth_failures_total", workspace="eu-ws", api="app") == 1
    assert sample(metrics, "connector_transactional_sends_total", workspace="eu-ws", outcome="auth_failed") == 1


async def test_workspace_without_app_key_raises_auth_error(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """Without an App API key nothing is sent and the caller gets an AuthError."""
    ws = await pinned(fake, client, Workspace("us-ws", "us-site", "us-track-key", "us"))
    sender = TransactionalSender(client, NO_BACKOFF, 10.0, Metrics())
    with pytest.raises(AuthError, match="no App API key"):
        await sender.send(ws, b"{}", None)
    assert fake.state.emails == []


async def test_broken_delivery_sink_does_not_fail_the_send(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """The email is queued even if the delivery record cannot be produced: the id is still returned."""
    ws = await pinned(fake, client, FAKE_EU)

    async def unavailable(_delivery_id: str, _value: bytes, _key: bytes) -> None:
        raise BrokerUnavailableError("broker down")

    sender = TransactionalSender(client, NO_BACKOFF, 10.0, Metrics(), unavailable)
    body = build_send_email(_event())
    assert isinstance(body, bytes)
    delivery_id = await sender.send(ws, body, None)
    assert [e["delivery_id"] for e in fake.state.emails] == [delivery_id]


async def test_rate_limiter_is_per_workspace(fake: FakeCustomerIO, client: CustomerIOClient) -> None:
    """One workspace exceeding the App API rate waits; another workspace does not."""
    eu, us = await pinned(fake, client, FAKE_EU), await pinned(fake, client, FAKE_US)
    metrics = Metrics()
    # One send a second, burst 1: the second send waits unless the first took over a second. (At 20/s with
    # 21 sends, a machine slow enough, e.g. under coverage and load, refilled the bucket and never waited.)
    sender = TransactionalSender(client, NO_BACKOFF, 1.0, metrics)
    body = build_send_email(_event())
    assert isinstance(body, bytes)
    for _ in range(2):
        await sender.send(eu, body, None)
    await sender.send(us, body, None)
    assert sample(metrics, "connector_rate_limit_waits_total", workspace="eu-ws", api="app") >= 1
    assert sample(metrics, "connector_rate_limit_waits_total", workspace="us-ws", api="app") == 0
    assert len(fake.state.emails) == 3
