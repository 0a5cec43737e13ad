"""Fuzzing the listener: whatever arrives, the answer is never a 5xx other than the deliberate 503."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from connector.errors import BrokerUnavailableError
from connector.webhook.signature import sign
from tests.webhook.cio_payloads import EXPECTED_NAMES, SIGNING_KEY, TIMESTAMP, webhook
from tests.webhook.webhook_support import FakeProducer, MakeClient

PATH = "/webhooks/customerio"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
pairs = st.sampled_from(sorted(EXPECTED_NAMES))


@st.composite
def payload_bodies(draw: st.DrawFn) -> bytes:
    """Bodies from plausible to absurd: documented payloads with fields replaced, JSON values, raw bytes."""
    kind = draw(st.sampled_from(["documented", "mutated", "mutated", "json", "bytes", "large"]))
    if kind == "large":
        return draw(st.binary(min_size=2049, max_size=3000))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()  # stdlib: integers beyond 64 bits too
    object_type, metric = draw(pairs)
    payload: dict[str, Any] = webhook(object_type, metric, event_id=draw(st.text(min_size=1, max_size=30)))
    if kind == "mutated":
        for field in draw(st.lists(st.sampled_from([*payload, "data.identifiers", "data.recipient"]), max_size=3)):
            value = draw(json_values)
            if field.startswith("data."):
                if isinstance(payload["data"], dict):
                    payload["data"][field[5:]] = value
            else:
                payload[field] = value
    return json.dumps(payload).encode()


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@st.composite
def signature_headers(draw: st.DrawFn, body: bytes) -> tuple[dict[str, str], bool]:
    """Headers for ``body`` and whether they carry a genuine signature."""
    ts = draw(st.sampled_from([str(TIMESTAMP), str(TIMESTAMP), "0", "9" * 11]) | header_text)
    kind = draw(st.sampled_from(["good", "good", "good", "upper", "garbage", "missing", "other-key"]))
    headers = {"X-CIO-Timestamp": ts, "Content-Type": draw(st.sampled_from(["application/json", "text/plain"]))}
    genuine = False
    if ts.strip().isdigit() and ts.strip().isascii() and len(ts.strip()) <= 12:
        if kind in ("good", "upper"):
            signature = sign(SIGNING_KEY, ts.strip(), body)
            headers["X-CIO-Signature"] = signature.upper() if kind == "upper" else signature
            genuine = True
        elif kind == "other-key":
            headers["X-CIO-Signature"] = sign("not-the-key", ts.strip(), body)
    if kind == "garbage":
        headers["X-CIO-Signature"] = draw(header_text)
    if draw(st.booleans()) and not genuine:
        headers.pop("X-CIO-Timestamp")
    return headers, genuine


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    """One listener for all examples of a test (small body limit to reach 413 too)."""
    return await make_client(max_body_bytes=2048)


@FUZZ
@given(data=st.data(), broker_down=st.booleans())
async def test_fuzzed_requests_never_5xx(
    client: TestClient[Any, Any], fake_producer: FakeProducer, data: st.DataObject, broker_down: bool
) -> None:
    """Random bodies and headers get 200/400/401/413, or 503 only when the broker fails; forgeries produce nothing."""
    body = data.draw(payload_bodies())
    headers, genuine = data.draw(signature_headers(body))
    fake_producer.fail = BrokerUnavailableError("down") if broker_down else None
    calls = fake_producer.calls
    async with client.post(PATH, data=body, headers=headers) as response:
        status = response.status
        reply = await response.json()
    event(f"status {status}")
    assert status in {200, 400, 401, 413, 503}
    assert isinstance(reply["message"], str)
    if status == 503:
        assert broker_down
    if len(body) > 2048:
        assert status == 413
    elif not genuine:
        assert status == 401
        assert fake_producer.calls == calls
    if status == 200:
        assert genuine


@FUZZ
@given(raw=st.binary(max_size=400))
async def test_raw_socket_garbage_never_5xx(client: TestClient[Any, Any], raw: bytes) -> None:
    """Arbitrary bytes on the socket (broken HTTP) are answered 4xx or the connection is closed; never 5xx."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n" + raw)
        writer.write_eof()
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    if status_line:
        code = int(status_line.split()[1])
        assert code < 500 or code == 503, status_line
