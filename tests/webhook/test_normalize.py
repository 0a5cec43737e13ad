"""Payload → Segment track event, Kafka key and headers (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import __version__
from connector.errors import DecodeError
from connector.webhook.normalize import (
    DOCUMENTED_PAIRS,
    GENERIC_EVENT,
    MAX_RECORD_BYTES,
    NormalizedEvent,
    event_name,
    normalize,
    parse,
)
from tests.webhook.cio_payloads import EXPECTED_NAMES, TIMESTAMP, webhook

RECEIVED = 1_735_689_846.25
RECEIVED_ISO = "2025-01-01T00:04:06.250Z"
TIMESTAMP_ISO = "2025-01-01T00:04:05.000Z"


def test_every_documented_pair_has_its_name() -> None:
    """The name table covers exactly the reference's (object_type, metric) table, (c) pairs included."""
    assert set(EXPECTED_NAMES) == DOCUMENTED_PAIRS
    for (object_type, metric), name in EXPECTED_NAMES.items():
        assert event_name(object_type, metric) == name


@pytest.mark.parametrize(
    ("object_type", "metric", "name"),
    [
        ("email", "subscribed", "Email Subscribed"),  # RudderStack's name; not in the payload table
        ("sms", "unsubscribed", "SMS Unsubscribed"),  # subscription change caused by an SMS
        ("email", "cio_subscription_preferences_changed", "Email Subscription Preferences Changed"),
        ("slack", "opened", "Slack Message Opened"),  # known words, undocumented pair: still named
        ("carrier_pigeon", "sent", GENERIC_EVENT),
        ("email", "teleported", GENERIC_EVENT),
        ("", "", GENERIC_EVENT),
        ("Email", "Sent", GENERIC_EVENT),  # values are case-sensitive, as Customer.io sends them
    ],
)
def test_names_outside_the_table(object_type: str, metric: str, name: str) -> None:
    """Known channel + known metric → derived name; anything unknown → the generic name."""
    assert event_name(object_type, metric) == name


def test_email_delivered_field_by_field() -> None:
    """The reference's example 1 (campaign email delivered) becomes exactly this event."""
    payload = {
        "event_id": "01JGD9A1B2C3D4E5F6G7H8J9KM",
        "object_type": "email",
        "metric": "delivered",
        "timestamp": 1735689845,
        "data": {
            "campaign_id": 12,
            "action_id": 87,
            "journey_id": "01JGD8ZZ0Y1X2W3V4T5S6R7Q8P",
            "trigger_event_id": "01JGD8ZYAB12CD34EF56GH78JK",
            "delivery_id": "dgOg4AUBAAAAAAGRn9bX3Lq0QcGfMQ==",
            "customer_id": "user-1042",
            "identifiers": {"id": "user-1042", "email": "ana@example.com", "cio_id": "a10b000001"},
            "recipient": "ana@example.com",
            "subject": "Your order has shipped",
        },
    }
    result = normalize(payload, RECEIVED)
    assert result.event == {
        "type": "track",
        "event": "Email Delivered",
        "messageId": "01JGD9A1B2C3D4E5F6G7H8J9KM",
        "userId": "user-1042",
        "timestamp": TIMESTAMP_ISO,
        "originalTimestamp": TIMESTAMP_ISO,
        "receivedAt": RECEIVED_ISO,
        "context": {
            "integration": {"name": "Customer.io", "version": __version__},
            "library": {"name": "cio-connector", "version": __version__},
            "traits": {"email": "ana@example.com", "cioId": "a10b000001"},
        },
        "integrations": {"Customer.io": False},
        "properties": {
            "campaignId": 12,
            "actionId": 87,
            "journeyId": "01JGD8ZZ0Y1X2W3V4T5S6R7Q8P",
            "triggerEventId": "01JGD8ZYAB12CD34EF56GH78JK",
            "deliveryId": "dgOg4AUBAAAAAAGRn9bX3Lq0QcGfMQ==",
            "recipient": "ana@example.com",
            "emailSubject": "Your order has shipped",
            "eventId": "01JGD9A1B2C3D4E5F6G7H8J9KM",
            "objectType": "email",
            "metric": "delivered",
        },
    }
    assert result.key == b"user-1042"
    assert result.headers == (
        ("event_id", b"01JGD9A1B2C3D4E5F6G7H8J9KM"),
        ("object_type", b"email"),
        ("metric", b"delivered"),
    )
    assert (result.object_type_label, result.metric_label) == ("email", "delivered")
    assert orjson.loads(result.value) == result.event


def test_clicked_link_and_broadcast_ids() -> None:
    """href/link_id become properties.link; broadcast ids are camelCased; machine is kept."""
    payload = webhook(
        "email",
        "clicked",
        campaign_id=None,
        broadcast_id=9,
        trigger_id=1534,
        href="https://shop.example.com/sale",
        link_id=3,
        machine=False,
    )
    props = normalize(payload, RECEIVED).event["properties"]
    assert props["link"] == {"url": "https://shop.example.com/sale", "id": 3}
    assert "href" not in props
    assert "linkId" not in props
    assert (props["broadcastId"], props["triggerId"], props["machine"]) == (9, 1534, False)
    assert "campaignId" not in props  # null values are left out


def test_every_id_field_is_carried() -> None:
    """All message ids of the four variants appear in properties under camelCase names."""
    ids: dict[str, Any] = {
        "delivery_id": "d",
        "campaign_id": 1,
        "action_id": 2,
        "journey_id": "j",
        "broadcast_id": 3,
        "newsletter_id": 4,
        "transactional_message_id": 5,
        "parent_action_id": 6,
        "trigger_id": 7,
        "content_id": 8,
        "trigger_event_id": "t",
        "inbound_event_id": "i",
    }
    props = normalize(webhook("sms", "replied", **ids), RECEIVED).event["properties"]
    expected = {
        "deliveryId": "d",
        "campaignId": 1,
        "actionId": 2,
        "journeyId": "j",
        "broadcastId": 3,
        "newsletterId": 4,
        "transactionalMessageId": 5,
        "parentActionId": 6,
        "triggerId": 7,
        "contentId": 8,
        "triggerEventId": "t",
        "inboundEventId": "i",
    }
    assert {k: props[k] for k in expected} == expected
    assert props["to"] == "+15555550199"


def test_failure_reason_recipients_and_content() -> None:
    """failure_message → reason; push recipients kept whole; content kept."""
    bounced = normalize(webhook("email", "bounced"), RECEIVED).event["properties"]
    assert bounced["reason"] == "550 5.1.1 no such user"
    push = normalize(webhook("push", "sent"), RECEIVED).event["properties"]
    assert push["recipients"][1] == {
        "device_id": "5f2c9eapns",
        "device_platform": "ios",
        "failure_message": "BadDeviceToken",
    }
    assert push["content"] == "<p>Hello</p>"


def test_unknown_fields_are_kept_camel_cased() -> None:
    """Fields Customer.io adds later are not lost."""
    props = normalize(webhook("in_app", "clicked", tracked_response="ok", brand_new_field={"a": 1}), RECEIVED).event[
        "properties"
    ]
    assert props["trackedResponse"] == "ok"
    assert props["brandNewField"] == {"a": 1}


@pytest.mark.parametrize(
    ("data", "user_id", "anonymous_id", "key"),
    [
        ({"identifiers": {"id": "u1", "email": "a@x.io", "cio_id": "c1"}, "customer_id": "old"}, "u1", None, b"u1"),
        ({"identifiers": {"id": None, "email": "a@x.io", "cio_id": "c1"}, "customer_id": "u2"}, "u2", None, b"u2"),
        (
            {"identifiers": {"id": None, "email": "a@x.io", "cio_id": "c1"}, "customer_id": ""},
            None,
            "a@x.io",
            b"a@x.io",
        ),
        ({"customer_id": "", "email_address": "b@x.io"}, None, "b@x.io", b"b@x.io"),
        ({"identifiers": {"id": None, "cio_id": "c1"}}, None, "c1", b"c1"),
        ({"identifiers": {"id": 42}}, "42", None, b"42"),
        ({}, None, None, b"evt-1"),
        ({"identifiers": "garbage", "customer_id": ["x"]}, None, None, b"evt-1"),
    ],
)
def test_person_identity(data: dict[str, Any], user_id: str | None, anonymous_id: str | None, key: bytes) -> None:
    """userId from identifiers.id or customer_id; anonymousId from the email when there is no id; key follows."""
    result = normalize({"event_id": "evt-1", "object_type": "email", "metric": "sent", "data": data}, RECEIVED)
    assert result.event.get("userId") == user_id
    assert result.event.get("anonymousId") == anonymous_id
    assert result.key == key


@pytest.mark.parametrize(
    ("timestamp", "iso"),
    [
        (TIMESTAMP, TIMESTAMP_ISO),
        (1735689845.5, "2025-01-01T00:04:05.500Z"),
        ("1735689845", TIMESTAMP_ISO),
        (0, "1970-01-01T00:00:00.000Z"),
        (None, RECEIVED_ISO),
        ("soon", RECEIVED_ISO),
        (-5, RECEIVED_ISO),
        (10**20, RECEIVED_ISO),
        (True, RECEIVED_ISO),
        ({"s": 1}, RECEIVED_ISO),
        ("1735689845.5", "2025-01-01T00:04:05.500Z"),
        # Only ASCII decimal strings: float() alone would also take these.
        ("١٧٣٥٦٨٩٨٤٥", RECEIVED_ISO),
        ("1_735_689_845", RECEIVED_ISO),
        (" 1735689845", RECEIVED_ISO),
        ("1.7e9", RECEIVED_ISO),
        ("nan", RECEIVED_ISO),
        ("9" * 5000, RECEIVED_ISO),
    ],
)
def test_timestamp(timestamp: Any, iso: str) -> None:
    """The payload's Unix seconds become ISO-8601; an invalid one falls back to the receive time."""
    payload = {"event_id": "e", "object_type": "email", "metric": "sent", "timestamp": timestamp, "data": {}}
    event = normalize(payload, RECEIVED).event
    assert event["timestamp"] == iso
    assert event["originalTimestamp"] == iso
    assert event["receivedAt"] == RECEIVED_ISO


def test_unknown_object_type_and_metric() -> None:
    """Unknown values produce the generic event with raw values in properties and 'other' labels."""
    payload = {"event_id": "e", "object_type": "carrier_pigeon", "metric": "landed", "data": {"coop": 7}}
    result = normalize(payload, RECEIVED)
    assert result.event["event"] == GENERIC_EVENT
    assert result.event["properties"] == {"coop": 7, "eventId": "e", "objectType": "carrier_pigeon", "metric": "landed"}
    assert (result.object_type_label, result.metric_label) == ("other", "other")
    assert result.headers[1:] == (("object_type", b"carrier_pigeon"), ("metric", b"landed"))


def test_missing_or_odd_shapes_are_tolerated() -> None:
    """No object_type, no metric, non-object data: still an event (only event_id is required)."""
    result = normalize({"event_id": "e", "object_type": 5, "data": [1, 2]}, RECEIVED)
    assert result.event["event"] == GENERIC_EVENT
    assert result.event["properties"] == {"data": [1, 2], "eventId": "e", "objectType": "5", "metric": ""}
    assert (result.object_type_label, result.metric_label) == ("other", "other")


@pytest.mark.parametrize("event_id", [None, "", "   ", True, 1.5, {"id": 1}, ["a"]])
def test_event_id_is_required(event_id: Any) -> None:
    """A missing, empty or non-scalar event_id is a DecodeError (400)."""
    payload = {"object_type": "email", "metric": "sent", "data": {}}
    if event_id is not None:
        payload["event_id"] = event_id
    with pytest.raises(DecodeError) as info:
        normalize(payload, RECEIVED)
    assert info.value.reason == "missing_event_id"


def test_integer_event_id_is_accepted() -> None:
    """An integer event_id is used as its decimal string."""
    assert normalize({"event_id": 123, "data": {}}, RECEIVED).event_id == "123"


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"", "not_json"), (b"{", "not_json"), (b"\xff", "not_json"), (b"[]", "not_object"), (b'"x"', "not_object")],
)
def test_parse_rejects_non_objects(body: bytes, reason: str) -> None:
    """Bodies that are not a JSON object are DecodeErrors with a reason."""
    with pytest.raises(DecodeError) as info:
        parse(body)
    assert info.value.reason == reason


def test_never_loops_back_to_customer_io() -> None:
    """Every event carries integrations {"Customer.io": false} and names Customer.io as its integration."""
    for object_type, metric in EXPECTED_NAMES:
        event = normalize(webhook(object_type, metric), RECEIVED).event
        assert event["integrations"] == {"Customer.io": False}
        assert event["context"]["integration"]["name"] == "Customer.io"
        assert event["timestamp"] == "2025-01-01T00:04:05.000Z"
        assert TIMESTAMP == 1_735_689_845


def test_oversized_message_content_is_dropped() -> None:
    """An event too large for a Kafka record loses its message bodies, not the event."""
    payload = webhook("email", "sent", content="x" * (MAX_RECORD_BYTES + 1), headers={"X-Big": ["y"]})
    result = normalize(payload, RECEIVED)
    assert len(result.value) < MAX_RECORD_BYTES
    props = orjson.loads(result.value)["properties"]
    assert props["contentOmitted"] is True
    assert "content" not in props
    assert "headers" not in props
    assert props["deliveryId"] == "dlv-email-sent"


def test_event_too_large_without_content_is_rejected() -> None:
    """If even without bodies the event cannot be a record, it is a DecodeError (400), not an endless 503."""
    with pytest.raises(DecodeError) as info:
        normalize(webhook("email", "sent", subject="x" * (MAX_RECORD_BYTES + 1)), RECEIVED)
    assert info.value.reason == "too_large"


# --- fuzzing: whatever the body, a result or a DecodeError ---------------------------------------------

FUZZ = settings(max_examples=400, deadline=None)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats()  # NaN and infinities too
    | st.text(max_size=20)
)
_json_like = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
)


def _nest(depth: int, kind: str, leaf: bytes) -> bytes:
    opener, closer = {"list": (b"[", b"]"), "object": (b'{"k":', b"}")}[kind]
    return opener * depth + leaf + closer * depth


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    """Raw bodies: webhooks with a hostile value somewhere, deep nesting, bad numbers, bad bytes."""
    leaf = draw(
        st.sampled_from([b"1", b"NaN", b"-Infinity", b"1e400", b'"\\ud800"', b'"\xff\xfe"', b"null", b'"x"'])
        | st.integers().map(lambda n: str(n).encode())
        | st.binary(max_size=8)
    )
    value = _nest(draw(st.integers(0, 1100)), draw(st.sampled_from(["list", "object"])), leaf)
    field = draw(st.sampled_from(["event_id", "object_type", "metric", "timestamp", "data", "data.identifiers"]))
    payload = b'{"event_id":"e1","object_type":"email","metric":"sent","timestamp":1735689845,'
    if field.startswith("data."):
        body = payload + b'"data":{"' + field[5:].encode() + b'":' + value + b"}}"
    elif field == "data":
        body = payload + b'"data":' + value + b"}"
    else:
        body = payload + b'"data":{},"' + field.encode() + b'":' + value + b"}"
    if draw(st.booleans()):  # sometimes cut or spliced anywhere
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.binary(max_size=4)) + body[cut:]
    return body


def _event_or_error(make: Callable[[], NormalizedEvent]) -> NormalizedEvent | DecodeError:
    """What ``make`` returns, or the DecodeError it raised (any other exception fails the test)."""
    try:
        return make()
    except DecodeError as exc:
        return exc


def _result_or_decode_error(body: bytes) -> None:
    outcome = _event_or_error(lambda: normalize(parse(body), RECEIVED))
    if isinstance(outcome, DecodeError):
        assert str(outcome)
        assert "\n" not in str(outcome)
        return
    assert orjson.loads(outcome.value) == outcome.event
    assert len(outcome.value) <= MAX_RECORD_BYTES


@FUZZ
@given(body=hostile_bodies())
def test_hostile_bodies_give_an_event_or_a_decode_error(body: bytes) -> None:
    """Deep nesting, huge ints, NaN, invalid UTF-8, lone surrogates: an event or a DecodeError, nothing else."""
    _result_or_decode_error(body)


@FUZZ
@given(body=st.binary(max_size=200))
def test_random_bytes_give_an_event_or_a_decode_error(body: bytes) -> None:
    """Arbitrary bytes: a DecodeError (or, by chance, an event), nothing else."""
    _result_or_decode_error(body)


@FUZZ
@given(extra=st.dictionaries(st.sampled_from(["object_type", "metric", "timestamp", "data"]), _json_like))
def test_any_parsed_values_give_an_event_or_a_decode_error(extra: dict[str, Any]) -> None:
    """normalize() itself, on values a parser might hand it (ints beyond 64 bits, NaN): event or DecodeError."""
    outcome = _event_or_error(lambda: normalize({"event_id": "e1", **extra}, RECEIVED))
    if isinstance(outcome, DecodeError):
        assert "\n" not in str(outcome)
        return
    assert orjson.loads(outcome.value)["messageId"] == "e1"


@pytest.mark.parametrize("depth", [252, 253, 1000, 1021])
def test_nesting_orjson_reads_but_cannot_write_is_a_decode_error(depth: int) -> None:
    """The 1000-level body that used to raise TypeError (a 500): 254 levels in all pass, deeper is unencodable."""
    body = b'{"event_id":"deep","data":{"v":' + b"[" * depth + b"]" * depth + b"}}"
    if depth <= 252:  # data.v becomes properties.v: two levels deep in the event
        assert normalize(parse(body), RECEIVED).event_id == "deep"
        return
    with pytest.raises(DecodeError) as info:
        normalize(parse(body), RECEIVED)
    assert info.value.reason == "unencodable"
    assert str(info.value) == "body cannot be re-encoded as JSON: Recursion limit reached"


@given(seconds=st.integers(min_value=0, max_value=253_402_300_798), fraction=st.sampled_from([0.0, 0.25, 0.5]))
def test_timestamps_are_iso_8601_utc_with_milliseconds(seconds: int, fraction: float) -> None:
    """Any Unix time up to year 9999, whole or not, is written as ISO-8601 UTC with milliseconds."""
    payload = {"event_id": "e", "object_type": "email", "metric": "sent", "timestamp": seconds + fraction}
    expected = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert normalize(payload, RECEIVED).event["timestamp"] == f"{expected}.{round(fraction * 1000):03d}Z"
