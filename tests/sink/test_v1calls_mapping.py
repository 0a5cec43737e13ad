"""Segment membership and delivery-metric track events map to Track API v1 calls, or to a dead letter naming
the field; never to a plain custom event (Customer.io would answer 200 and do nothing)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config import load_settings
from connector.sink.mapping.mapper import Mapper
from connector.sink.mapping.model import MessageContext, Operation, Rejection, V1Call

CTX = MessageContext("events", 0, 7, 0, 1_735_689_600_000)
MAPPER = Mapper(load_settings({}).mapping)


def one(message: dict[str, Any], mapper: Mapper = MAPPER) -> Operation | Rejection:
    """The single operation of ``message``, or its rejection."""
    result = mapper.map(message, CTX)
    if isinstance(result, Rejection):
        return result
    assert isinstance(result, tuple), result
    (operation,) = result
    return operation


def segment_event(segment_id: Any, user: str | None = "42", name: str = "Added to Segment") -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "event": name, "properties": {"segmentId": segment_id}}
    if user is not None:
        message["userId"] = user
    return message


@pytest.mark.parametrize(
    ("user", "id_type", "body"),
    [("42", "id", b'"42"'), ("ann@example.com", "email", b'"ann@example.com"'), ("cio_abc", "cio_id", b'"abc"')],
)
def test_segment_add_is_an_add_customers_call_with_the_persons_id_type(user: str, id_type: str, body: bytes) -> None:
    """id_type follows the person's identifier (id, email or cio_id); the id is the call's one item."""
    operation = one(segment_event(12, user))
    assert isinstance(operation, Operation)
    assert operation.v1 == V1Call(f"/api/v1/segments/12/add_customers?id_type={id_type}", 1000, "segments")
    assert operation.body == body
    assert operation.action == "segment.add_customers"


def test_segment_remove_and_a_segment_id_given_as_digits() -> None:
    """``Removed from Segment`` → remove_customers; ``"12"`` is the integer 12."""
    operation = one(segment_event("12", name="Removed from Segment"))
    assert isinstance(operation, Operation)
    assert operation.v1 is not None
    assert operation.v1.path == "/api/v1/segments/12/remove_customers?id_type=id"


def test_the_order_key_is_the_persons_so_the_call_keeps_their_order() -> None:
    """Same lane as the person's identify: the same order key."""
    add = one(segment_event(12, "42"))
    identify = one({"type": "identify", "userId": "42", "traits": {}})
    assert isinstance(add, Operation)
    assert isinstance(identify, Operation)
    assert add.order_key == identify.order_key


def test_a_person_known_by_email_only_joins_by_email() -> None:
    """No userId: context.traits.email is the identifier."""
    message = segment_event(5, None)
    message["context"] = {"traits": {"email": "bo@example.com"}}
    operation = one(message)
    assert isinstance(operation, Operation)
    assert operation.v1 is not None
    assert operation.v1.path.endswith("?id_type=email")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "abc", "", "-3", 2**31, "12a", [], {}])
def test_a_segment_id_that_is_not_a_positive_integer_is_dead_lettered(bad: Any) -> None:
    """invalid_field naming properties.segmentId."""
    rejection = one(segment_event(bad))
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "invalid_field"
    assert rejection.message.startswith("properties.segmentId: must be a positive integer")


def test_a_missing_segment_id_or_person_is_dead_lettered_naming_it() -> None:
    """missing_field for the segment id; missing_identifier for an anonymous person."""
    missing = one({"type": "track", "userId": "42", "event": "Added to Segment"})
    assert missing == Rejection("missing_field", "properties.segmentId: required for 'Added to Segment'")
    anonymous = one({**segment_event(3, None), "anonymousId": "anon-1"})
    assert isinstance(anonymous, Rejection)
    assert anonymous.reason == "missing_identifier"


def test_report_delivery_event_is_a_metrics_call() -> None:
    """delivery_id, metric, the message time in Unix s, and the optional strings."""
    operation = one(
        {
            "type": "track",
            "event": "Report Delivery Event",
            "timestamp": "2025-01-01T00:00:00Z",
            "properties": {"deliveryId": "dlv-1", "metric": "clicked", "href": "https://x.test/", "recipient": "a@b.c"},
        }
    )
    assert isinstance(operation, Operation)
    assert operation.v1 == V1Call("/api/v1/metrics", 1, "metrics")
    assert orjson.loads(operation.body) == {
        "delivery_id": "dlv-1",
        "metric": "clicked",
        "href": "https://x.test/",
        "recipient": "a@b.c",
        "timestamp": 1_735_689_600,
    }


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (None, Rejection("missing_field", "properties.deliveryId: required for 'Report Delivery Event'")),
        (
            {"metric": "opened"},
            Rejection("missing_field", "properties.deliveryId: required for 'Report Delivery Event'"),
        ),
        ({"deliveryId": "d"}, Rejection("missing_field", "properties.metric: required for 'Report Delivery Event'")),
        ({"deliveryId": "d", "metric": "read"}, "invalid_field"),
        ({"deliveryId": "d", "metric": 3}, "invalid_field"),
        (
            {"deliveryId": "d", "metric": "opened", "href": 5},
            Rejection("invalid_field", "properties.href: must be a string (got number)"),
        ),
    ],
)
def test_a_delivery_event_missing_or_with_a_bad_field_is_dead_lettered(
    properties: dict[str, Any] | None, expected: Rejection | str
) -> None:
    """Never a plain custom event: a rejection naming the field."""
    message: dict[str, Any] = {"type": "track", "userId": "u", "event": "Report Delivery Event"}
    if properties is not None:
        message["properties"] = properties
    result = one(message)
    assert isinstance(result, Rejection)
    if isinstance(expected, Rejection):
        assert result == expected
    else:
        assert result.reason == expected
        assert result.message.startswith("properties.metric: must be one of")


def test_the_event_names_are_settings() -> None:
    """CONNECTOR_SEGMENT_ADD_EVENTS etc. choose the names; the defaults are then plain events."""
    mapper = Mapper(
        load_settings(
            {
                "CONNECTOR_SEGMENT_ADD_EVENTS": "Joined",
                "CONNECTOR_SEGMENT_REMOVE_EVENTS": "Left",
                "CONNECTOR_DELIVERY_METRIC_EVENTS": "Metric",
            }
        ).mapping
    )
    joined, left = one(segment_event(1, name="Joined"), mapper), one(segment_event(1, name="Left"), mapper)
    assert isinstance(joined, Operation)
    assert isinstance(left, Operation)
    assert (joined.action, left.action) == ("segment.add_customers", "segment.remove_customers")
    metric = one({"type": "track", "event": "Metric", "properties": {"deliveryId": "d", "metric": "opened"}}, mapper)
    assert isinstance(metric, Operation)
    assert metric.action == "metrics.report"
    default = one(segment_event(1), mapper)
    assert isinstance(default, Operation)
    assert default.action == "person.event"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@given(segment_id=_JSON | st.integers(min_value=-5, max_value=2**32), user=st.none() | st.text(max_size=20))
def test_any_segment_event_is_a_segment_call_or_a_dead_letter(segment_id: Any, user: str | None) -> None:
    """Whatever the segment id and person: a call to a positive int32 segment, or a rejection naming the field."""
    result = one(segment_event(segment_id, user))
    if isinstance(result, Rejection):
        assert result.message.split(":", 1)[0] in {"properties.segmentId", "userId"}
        return
    assert result.action == "segment.add_customers"
    assert result.v1 is not None
    number = int(result.v1.path.split("/")[4])
    assert 0 < number < 2**31
    assert number == int(segment_id)
    assert isinstance(orjson.loads(result.body), str)


@given(properties=st.dictionaries(st.sampled_from(["deliveryId", "metric", "recipient", "reason", "href", "x"]), _JSON))
def test_any_delivery_event_is_a_metrics_call_or_a_dead_letter(properties: dict[str, Any]) -> None:
    """Never a person event: a metrics call with delivery_id and a known metric, or a rejection naming the field."""
    result = one({"type": "track", "userId": "u", "event": "Report Delivery Event", "properties": properties})
    if isinstance(result, Rejection):
        assert result.message.startswith("properties.")
        return
    assert result.action == "metrics.report"
    body = orjson.loads(result.body)
    assert body["metric"] in {
        "bounced",
        "clicked",
        "converted",
        "deferred",
        "delivered",
        "dropped",
        "opened",
        "spammed",
    }
    assert isinstance(body["delivery_id"], str)
    assert body["delivery_id"]
