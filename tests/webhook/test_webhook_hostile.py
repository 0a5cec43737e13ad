"""Hostile and broken clients over raw sockets: the listener answers without buffering what it need not.

Each test drives the listener with a hand-written HTTP/1.1 client so it can send the headers and then
stall, send half a body, or hang up, and waits on what the listener does (its answer, its counters, its
log lines), never on sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from connector.metrics import Metrics
from connector.webhook.handler import WebhookApp, WebhookState
from connector.webhook.listener import WebhookListener
from tests.webhook.cio_payloads import signed, webhook
from tests.webhook.webhook_support import Clock, FakeProducer, MakeClient, webhook_settings

PATH = "/webhooks/customerio"
WAIT = 30.0  # generous: the machine is busy; a passing test never waits this long


class RawResponse:
    """A response read off the socket: status, headers (lower-case names), JSON body."""

    def __init__(self, status: int, headers: dict[str, str], body: Any) -> None:
        self.status = status
        self.headers = headers
        self.body = body


@asynccontextmanager
async def raw_connection(
    client: TestClient[Any, Any],
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A plain TCP connection to the test server on 127.0.0.1."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


def request_head(headers: dict[str, str], content_length: int) -> bytes:
    """The request line and headers of a POST to the webhook path announcing ``content_length``."""
    lines = [f"POST {PATH} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {content_length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    """One HTTP response (status, headers, Content-Length body), waiting at most ``WAIT`` seconds."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), WAIT)
    return RawResponse(int(status_line.split()[1]), headers, orjson.loads(body) if body else None)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (checked on every loop turn a little apart), at most ``WAIT`` s."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)


def state_of(client: TestClient[Any, Any]) -> WebhookState:
    """The listener's shared state (its counters)."""
    runner = client.server.runner
    assert runner is not None
    assert runner.server is not None
    handler = runner.server.request_handler
    assert isinstance(handler, WebhookApp)
    return handler.state


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    """A metric sample's value (0 when absent)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"X-CIO-Signature": None}, "missing_headers"),
        ({"X-CIO-Timestamp": None}, "missing_headers"),
        ({"X-CIO-Signature": "not-a-hex-signature"}, "mismatch"),
        ({"X-CIO-Timestamp": "noon"}, "bad_timestamp"),
    ],
)
async def test_unsigned_request_is_answered_401_before_its_body_arrives(
    make_client: MakeClient,
    fake_producer: FakeProducer,
    metrics: Metrics,
    change: dict[str, str | None],
    reason: str,
) -> None:
    """Missing or malformed signature headers → 401 while the client still owes almost all its body."""
    client = await make_client(read_timeout_seconds=600.0)
    body, headers = signed(webhook("email", "sent", padding="x" * 900_000))
    headers = {k: v for k, v in {**headers, **change}.items() if v is not None}
    async with raw_connection(client) as (reader, writer):
        writer.write(request_head(headers, len(body)) + body[:100])  # then stall: the rest never comes
        await writer.drain()
        response = await read_response(reader)
    assert response.status == 401
    assert response.body == {"message": "invalid signature"}
    assert response.headers["connection"] == "close"
    assert sample(metrics, "connector_webhook_signature_failures_total", {"reason": reason, "workspace": ""}) == 1
    assert fake_producer.calls == 0


async def test_announced_body_over_the_limit_is_413_before_it_is_read(make_client: MakeClient) -> None:
    """A Content-Length over max_body_bytes → 413 at once, even if the body never comes."""
    client = await make_client(max_body_bytes=2048, read_timeout_seconds=600.0)
    body, headers = signed(webhook("email", "sent", padding="x" * 3000))
    async with raw_connection(client) as (reader, writer):
        writer.write(request_head(headers, len(body)))
        await writer.drain()
        response = await read_response(reader)
    assert response.status == 413
    assert response.body == {"message": "body larger than 2048 bytes"}


async def test_signed_chunked_body_over_the_limit_sent_at_once_is_413(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """A chunked body over the limit that arrives whole with its headers (no Content-Length to refuse it
    by) → 413, even though its signature is valid: nothing is produced."""
    client = await make_client(max_body_bytes=2048)
    body, headers = signed(webhook("email", "sent", padding="x" * 3000))
    head = request_head(headers, len(body)).replace(
        f"Content-Length: {len(body)}".encode(), b"Transfer-Encoding: chunked"
    )
    async with raw_connection(client) as (reader, writer):
        writer.write(head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        await writer.drain()
        response = await read_response(reader)
    assert response.status == 413
    assert response.body == {"message": "body larger than 2048 bytes"}
    assert fake_producer.calls == 0
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "too_large", "workspace": ""}) == 1


async def test_slow_body_gets_408_and_the_connection_is_closed(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """A signed request whose body stops half-way → 408 after the read timeout, then the server hangs up."""
    client = await make_client(read_timeout_seconds=0.5)
    body, headers = signed(webhook("email", "sent", padding="x" * 10_000))
    async with raw_connection(client) as (reader, writer):
        writer.write(request_head(headers, len(body)) + body[: len(body) // 2])
        await writer.drain()
        response = await read_response(reader)
        assert response.status == 408
        assert response.body == {"message": "body not received within 0.5 s"}
        assert response.headers["connection"] == "close"
        assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed by the server
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "timeout", "workspace": ""}) == 1
    assert fake_producer.calls == 0
    assert state_of(client).reading == 0


async def test_reads_beyond_the_cap_get_503_with_retry_after(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics
) -> None:
    """With max_concurrent_reads bodies being read, one more request → 503 + Retry-After; a freed slot serves."""
    client = await make_client(max_concurrent_reads=2, read_timeout_seconds=600.0)
    state = state_of(client)
    stalled = [signed(webhook("email", "sent", event_id=f"slow-{i}")) for i in range(2)]
    async with raw_connection(client) as (reader0, writer0), raw_connection(client) as (_reader1, writer1):
        for (body, headers), writer in zip(stalled, (writer0, writer1), strict=True):
            writer.write(request_head(headers, len(body)) + body[:10])
            await writer.drain()
        await wait_until(lambda: state.reading == 2, "both bodies are being read")

        body, headers = signed(webhook("email", "sent", event_id="over-the-cap"))
        async with client.post(PATH, data=body, headers=headers) as response:
            assert response.status == 503
            assert response.headers["Retry-After"].isdigit()
            assert await response.json() == {"message": "too many webhook bodies being read, retry later"}
        assert sample(metrics, "connector_webhook_requests_total", {"outcome": "busy", "workspace": ""}) == 1

        first_body, _ = stalled[0]
        writer0.write(first_body[10:])  # the first stalled client finishes: its slot frees
        await writer0.drain()
        assert (await read_response(reader0)).status == 200
        await wait_until(lambda: state.reading == 1, "the finished read released its slot")
        async with client.post(PATH, data=body, headers=headers) as response:
            assert response.status == 200
    assert [record[3][0][1] for record in fake_producer.records] == [b"slow-0", b"over-the-cap"]


def nested(depth: int) -> bytes:
    """A webhook whose ``data.deep`` is ``depth`` nested lists."""
    return (
        b'{"event_id":"deep","object_type":"email","metric":"sent","data":{"deep":'
        + b"[" * depth
        + b"]" * depth
        + b"}}"
    )


async def test_expect_100_continue_gets_the_interim_answer_before_the_body_is_sent(
    make_client: MakeClient, fake_producer: FakeProducer
) -> None:
    """A client that waits for ``100 Continue`` (curl does, for bodies over 1 KiB) gets it, then its 200."""
    client = await make_client()
    body, headers = signed(webhook("email", "sent", event_id="expecting"))
    async with raw_connection(client) as (reader, writer):
        writer.write(request_head({**headers, "Expect": "100-continue"}, len(body)))
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        response = await read_response(reader)
    assert (response.status, response.body) == (200, {"message": "accepted"})
    assert [r[3][0][1] for r in fake_producer.records] == [b"expecting"]


async def test_an_unknown_expectation_is_417(make_client: MakeClient, fake_producer: FakeProducer) -> None:
    """``Expect`` other than ``100-continue`` cannot be met: 417, and nothing is produced."""
    client = await make_client()
    body, headers = signed(webhook("email", "sent"))
    async with raw_connection(client) as (reader, writer):
        writer.write(request_head({**headers, "Expect": "something-else"}, len(body)) + body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 417 ")
    assert fake_producer.records == []


async def test_an_unknown_expectation_gets_a_json_message(make_client: MakeClient) -> None:
    """The 417 body is a JSON object naming the expectation, like every other answer of the listener."""
    client = await make_client()
    body, headers = signed(webhook("email", "sent"))
    async with raw_connection(client) as (reader, writer):
        writer.write(request_head({**headers, "Expect": "something-else"}, len(body)) + body)
        response = await read_response(reader)
    assert (response.status, response.body) == (417, {"message": "unknown Expect: something-else"})


@pytest.mark.parametrize(
    ("settings", "extra_headers", "status"),
    [
        ({"max_body_bytes": 2048}, {}, 413),
        ({}, {"X-CIO-Signature": "not-hex"}, 401),
    ],
    ids=["too-large", "bad-signature-header"],
)
async def test_a_webhook_refused_from_its_headers_is_refused_instead_of_inviting_the_body(
    make_client: MakeClient, settings: dict[str, Any], extra_headers: dict[str, str], status: int
) -> None:
    """curl sends ``Expect: 100-continue`` for bodies over 1 KiB: a refusal comes instead of ``100 Continue``."""
    client = await make_client(read_timeout_seconds=600.0, **settings)
    body, headers = signed(webhook("email", "sent", padding="x" * 3000))
    async with raw_connection(client) as (reader, writer):
        writer.write(request_head({**headers, **extra_headers, "Expect": "100-continue"}, len(body)))
        await writer.drain()
        response = await read_response(reader)  # the body is never sent: only the refusal can come
    assert response.status == status


@pytest.mark.parametrize(
    "body",
    [nested(1000), b'{"event_id":"x","object_type":' + b"[" * 300 + b"]" * 300 + b"}"],
    ids=["nested-data", "nested-object-type"],
)
async def test_signed_body_that_cannot_be_re_encoded_is_400(
    make_client: MakeClient, fake_producer: FakeProducer, metrics: Metrics, body: bytes
) -> None:
    """A genuine body that parses but cannot be produced as JSON → 400 with a one-line message, never 500."""
    client = await make_client()
    data, headers = signed(body)
    async with client.post(PATH, data=data, headers=headers) as response:
        assert response.status == 400
        message = (await response.json())["message"]
    assert message.startswith("body cannot be re-encoded as JSON")
    assert "\n" not in message
    assert fake_producer.calls == 0
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "bad_request", "workspace": ""}) == 1


async def test_aborted_request_is_one_info_line_without_traceback(
    fake_producer: FakeProducer, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that hangs up mid-body is logged once at info level, with no traceback, and nothing else.

    This uses the production listener: aiohttp's test server cancels the handler of a lost connection
    instead, which would hide what production does.
    """
    caplog.set_level(logging.DEBUG)
    listener = WebhookListener(webhook_settings(read_timeout_seconds=600.0), fake_producer, metrics, clock=Clock())
    await listener.start()
    try:
        state = listener.state
        body, headers = signed(webhook("email", "sent", padding="x" * 10_000))
        _reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(request_head(headers, len(body)) + body[:100])
        await writer.drain()
        await wait_until(lambda: state.active == 1, "the request is being handled")
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(state.idle.wait(), WAIT)

        # The listener still serves afterwards (and any late log line of the aborted request is out by now).
        async with aiohttp.ClientSession() as session:
            body, headers = signed(webhook("email", "sent", event_id="after"))
            async with session.post(f"http://127.0.0.1:{listener.port}{PATH}", data=body, headers=headers) as response:
                assert response.status == 200
    finally:
        await listener.stop()

    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert ("connector.webhook", "INFO", "Webhook request aborted by the client.") in lines
    assert [line for line in lines if "listener" not in line[2]] == [
        ("connector.webhook", "INFO", "Webhook request aborted by the client.")
    ]
    assert not any(r.exc_info or r.exc_text for r in caplog.records)  # no traceback anywhere
    assert sample(metrics, "connector_webhook_requests_total", {"outcome": "aborted", "workspace": ""}) == 1
    assert fake_producer.calls == 1


async def test_a_body_that_does_not_match_its_content_encoding_is_400_without_traceback(
    make_client: MakeClient, fake_producer: FakeProducer, caplog: pytest.LogCaptureFixture
) -> None:
    """``Content-Encoding: gzip`` on a body that is not gzip: a 400 naming the encoding, not a 500 and a traceback."""
    client = await make_client(read_timeout_seconds=600.0)
    body, headers = signed(webhook("email", "sent"))
    with caplog.at_level(logging.INFO):
        async with raw_connection(client) as (reader, writer):
            writer.write(request_head({**headers, "Content-Encoding": "gzip"}, len(body)) + body)
            response = await read_response(reader)
            assert await asyncio.wait_for(reader.read(), WAIT) == b""  # the connection is closed after it
    assert (response.status, response.body) == (
        400,
        {"message": "body cannot be read: Can not decode content-encoding: gzip"},
    )
    assert fake_producer.records == []
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_malformed_request_is_400_and_one_warning_without_traceback(
    fake_producer: FakeProducer, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """A duplicated Content-Length (a request smuggling probe) to the real listener: aiohttp's 400, and a
    warning line instead of an error with a traceback."""
    listener = WebhookListener(webhook_settings(), fake_producer, metrics)
    await listener.start()
    try:
        with caplog.at_level(logging.INFO):
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(request_head({"Content-Length": "5"}, 2) + b"{}")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
            writer.close()
    finally:
        await listener.stop()
    assert head.split(b" ")[1] == b"400"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert [r for r in caplog.records if "Malformed HTTP request" in r.getMessage()]
