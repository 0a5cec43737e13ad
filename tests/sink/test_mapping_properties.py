"""Property tests: no input crashes decoding or mapping, and every operation produced is within the limits."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.config import MappingSettings
from connector.sink.mapping.decode import decode_record
from connector.sink.mapping.mapper import map_message
from connector.sink.mapping.model import FILTER_REASONS, REASONS, Filtered, MessageContext, Operation, Rejection

CTX = MessageContext(topic="events", partition=0, offset=7, index=0, timestamp_ms=1_735_689_600_000)
PROPERTY_SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# ---- strategies ------------------------------------------------------------------------------------------

CHARS = st.characters(exclude_categories=())  # every code point, lone surrogates included
TEXT = st.text(CHARS, max_size=30)
HUGE_TEXT = st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "😀", "\ud800", "€"]), st.integers(0, 45_000))
NUMBERS = st.integers() | st.floats() | st.integers(-(2**63), 2**64 - 1)
DATES = st.sampled_from(["2025-01-01T00:00:00Z", "2025-01-01", "2025-01-01T01:02:03.456+05:30", "1969-07-20"])
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT, DATES, HUGE_TEXT)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5), max_leaves=25
)


def _nest(depth: int, as_list: bool) -> Any:
    value: Any = "2024-01-01T00:00:00Z"
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


def often(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``good``, sometimes ``bad``: enough valid messages to reach the mapping, enough junk to break it."""
    return st.integers(0, 7).flatmap(lambda i: good if i else bad)  # one_of() would dedupe repeated branches


DEEP = st.builds(_nest, st.integers(0, 1100), st.booleans())
VALUES = often(JSON, DEEP)
KEYS = often(st.text(CHARS, min_size=1, max_size=20), TEXT | HUGE_TEXT)
MANY_KEYS = st.integers(0, 400).map(lambda n: {f"key{i}": "v" * (i % 7) for i in range(n)})
OBJECTS = st.one_of(st.dictionaries(KEYS, VALUES, max_size=6), st.dictionaries(KEYS, JSON, max_size=6), MANY_KEYS)
GOOD_IDS = st.sampled_from(["u1", "cio_x", "a@b.io"]) | st.text(CHARS, min_size=1, max_size=20) | st.integers(0, 10**12)
IDS = often(GOOD_IDS, st.sampled_from(["", " ", "cio_", "é" * 80]) | NUMBERS | VALUES)
TIMES = often(DATES | st.integers(0, 2**45) | st.floats(0, 2e12), st.integers(-(2**65), 2**65) | st.floats() | VALUES)
NAMES = st.sampled_from(["Order", "Application Opened", "Application Uninstalled", "User Deleted", "User Suppressed"])
EVENT_NAMES = often(NAMES | st.text(CHARS, min_size=1, max_size=120), VALUES)
DEVICES = st.fixed_dictionaries({}, optional={"token": IDS, "type": often(st.sampled_from(["ios", "android"]), VALUES)})
CONTEXTS = st.fixed_dictionaries(
    {},
    optional={
        "device": often(DEVICES, VALUES),
        "os": st.fixed_dictionaries({}, optional={"name": often(st.sampled_from(["Android", "iOS"]), VALUES)}),
        "traits": often(st.fixed_dictionaries({"email": IDS}), OBJECTS | VALUES),
        "page": often(OBJECTS, VALUES),
        "app": OBJECTS,
        "locale": VALUES,
    },
)
# Every field is present (None standing for absent) so most messages reach the mapping of their type.
SEGMENT = st.fixed_dictionaries(
    {
        "type": often(st.sampled_from(["identify", "track", "page", "screen", "group", "alias"]), VALUES),
        "userId": often(IDS, st.none()),
        "anonymousId": often(IDS, st.none()),
        "previousId": IDS,
        "groupId": IDS,
        "event": EVENT_NAMES,
        "name": often(st.text(CHARS, min_size=1, max_size=120), VALUES),
        "traits": often(OBJECTS, VALUES),
        "properties": often(OBJECTS, VALUES),
        "context": often(CONTEXTS, VALUES),
    },
    optional={
        "timestamp": TIMES,
        "originalTimestamp": TIMES,
        "messageId": IDS,
        "integrations": st.dictionaries(st.sampled_from(["All", "Customer.io"]), st.booleans() | VALUES),
    },
)
V2_ACTIONS = [
    *(("person", a) for a in ("identify", "event", "page", "screen", "merge", "add_device", "delete", "suppress")),
    *(("object", a) for a in ("identify", "identify_anonymous", "delete", "add_relationships")),
    ("delivery", "event"),
]
V2_IDENTIFIERS = {
    "person": st.dictionaries(st.sampled_from(["id", "email", "cio_id", "anonymous_id"]), IDS, min_size=1, max_size=1),
    "object": st.fixed_dictionaries({"object_type_id": IDS, "object_id": IDS}),
    "delivery": st.fixed_dictionaries({"id": IDS}),
}
PERSON = st.dictionaries(st.sampled_from(["id", "email", "cio_id"]), IDS, min_size=1, max_size=1)
RELATIONSHIPS = st.lists(
    st.fixed_dictionaries({"identifiers": PERSON}, optional={"relationship_attributes": OBJECTS}), max_size=2
)


def _v2(kind: str, action: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "type": st.just(kind),
            "action": often(st.just(action), VALUES),
            "identifiers": often(V2_IDENTIFIERS[kind], VALUES),
            "name": EVENT_NAMES,
            "primary": often(PERSON, VALUES),
            "secondary": often(PERSON, VALUES),
        },
        optional={
            "attributes": often(OBJECTS, VALUES),
            "device": often(st.fixed_dictionaries({"token": IDS}, optional={"attributes": OBJECTS}), VALUES),
            "cio_relationships": often(RELATIONSHIPS, VALUES),
            "timestamp": TIMES,
            "id": IDS,
        },
    )


V2 = st.sampled_from(V2_ACTIONS).flatmap(lambda pair: _v2(*pair))
MESSAGES = st.integers(0, 9).flatmap(lambda i: SEGMENT if i < 6 else V2 if i < 9 else OBJECTS | VALUES)
MAPPING_SETTINGS = st.builds(
    MappingSettings,
    convert_iso_timestamps=st.booleans(),
    omit_empty_values=st.booleans(),
    attribute_prefix=st.sampled_from(["", "app_", "p" * 149]),
    oversize_policy=st.sampled_from(["dead_letter", "truncate"]),
)
MAX_BYTES = st.sampled_from([32_000, 1_000, 5_000, 200_000])

# ---- an independent checker of Customer.io's Track API limits -------------------------------------


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _identifier(value: Any) -> None:
    assert isinstance(value, str)
    assert value.strip()
    assert _bytes(value) <= 150


def _person(identifiers: Any) -> None:
    assert isinstance(identifiers, dict)
    assert len(identifiers) == 1
    ((kind, value),) = identifiers.items()
    assert kind in {"id", "email", "cio_id", "phone", "anonymous_id"}
    _identifier(value)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _stored(attributes: Any) -> None:
    assert isinstance(attributes, dict)
    assert len(attributes) <= 300
    for name, value in attributes.items():
        assert 0 < _bytes(name) <= 150
        assert all(_bytes(s) <= 1000 for s in _strings(value))


def check_operation(operation: Operation, max_bytes: int) -> None:
    """Everything Customer.io limits, checked on the bytes that would be sent."""
    assert isinstance(operation.body, bytes)
    assert len(operation.body) <= max_bytes
    op = orjson.loads(operation.body)
    kind, action = op["type"], op["action"]
    assert operation.action == f"{kind}.{action}"
    assert operation.order_key
    if action == "merge":
        _person(op["primary"])
        _person(op["secondary"])
    elif kind == "person":
        _person(op["identifiers"])
    elif kind == "object":
        assert isinstance(op["identifiers"], dict)
        for value in op["identifiers"].values():
            _identifier(value)
    if action in {"event", "page", "screen"}:
        assert 0 < _bytes(op["name"]) <= 100
        assert len(orjson.dumps(op.get("attributes", {}))) <= 100_000
        if kind == "person":
            assert isinstance(op["id"], str)
            assert op["id"]
    if action in {"identify", "identify_anonymous"} and "attributes" in op:
        _stored(op["attributes"])
    device = op.get("device")
    if isinstance(device, dict) and "attributes" in device:
        _stored(device["attributes"])
    for relationship in op.get("cio_relationships") or []:
        if isinstance(relationship, dict) and "relationship_attributes" in relationship:
            _stored(relationship["relationship_attributes"])
    if "timestamp" in op and kind == "person" and action != "merge":
        assert isinstance(op["timestamp"], int)
        assert op["timestamp"] >= 0


def check_result(result: Any, max_bytes: int) -> None:
    """A result is operations within the limits, or a Rejection/Filtered with a known reason."""
    if isinstance(result, Rejection):
        assert result.reason in REASONS
        assert result.message
        assert "\n" not in result.message
        assert result.message.encode("utf-8")  # no lone surrogates: it becomes a Kafka header
        assert result.reason != "internal_error", result  # the safety net stayed unused
    elif isinstance(result, Filtered):
        assert result.reason in FILTER_REASONS
    else:
        assert isinstance(result, tuple)
        assert result
        for operation in result:
            check_operation(operation, max_bytes)


# ---- properties -------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(message=MESSAGES, config=MAPPING_SETTINGS, max_bytes=MAX_BYTES)
def test_any_message_maps_within_limits_or_is_rejected(message: Any, config: MappingSettings, max_bytes: int) -> None:
    """Whatever the message, map_message returns valid operations, a Rejection or Filtered, never raises."""
    result = map_message(message, CTX, config, max_bytes)
    check_result(result, max_bytes)
    assert map_message(message, CTX, config, max_bytes) == result  # deterministic


@PROPERTY_SETTINGS
@given(message=SEGMENT | V2 | VALUES, config=MAPPING_SETTINGS)
def test_decoded_records_map_within_limits(message: Any, config: MappingSettings) -> None:
    """A record serialized from any JSON value decodes and maps without raising."""
    try:
        record = orjson.dumps(message)
    except orjson.JSONEncodeError:
        record = repr(message).encode("utf-8", "surrogatepass")  # not JSON at all: still must not raise
    decoded = decode_record(record)
    if isinstance(decoded, Rejection):
        assert decoded.reason in REASONS
        return
    for item in decoded:
        check_result(map_message(item, CTX, config), 32_000)


@PROPERTY_SETTINGS
@given(st.binary(max_size=2_000) | st.none())
def test_random_bytes_never_raise(record: bytes | None) -> None:
    """Arbitrary bytes decode to messages or a Rejection with a decoding reason."""
    result = decode_record(record)
    if isinstance(result, Rejection):
        assert result.reason in {"empty_record", "invalid_utf8", "not_json", "not_an_object", "invalid_batch"}
    else:
        assert all(isinstance(m, dict) for m in result)


@PROPERTY_SETTINGS
@given(st.lists(SEGMENT, max_size=5), st.dictionaries(st.sampled_from(["context", "integrations"]), OBJECTS))
def test_batch_envelopes_decode_to_their_messages(batch: list[Any], shared: dict[str, Any]) -> None:
    """A {"batch": [...]} envelope decodes to as many messages as it holds."""
    try:
        record = orjson.dumps({"batch": batch, **shared})
    except orjson.JSONEncodeError:
        return
    decoded = decode_record(record)
    assert isinstance(decoded, list)
    assert len(decoded) == len(batch)


@PROPERTY_SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=253_402_300_799))
def test_epoch_seconds_and_their_iso_form_agree(seconds: float) -> None:
    """A timestamp given as epoch seconds and as ISO-8601 maps to the same Unix second."""
    from datetime import UTC, datetime

    iso = datetime.fromtimestamp(math.floor(seconds), UTC).isoformat()
    event_time = MappingSettings(identify_timestamp="event")
    a = map_message({"type": "identify", "userId": "u", "timestamp": math.floor(seconds)}, CTX, event_time)
    b = map_message({"type": "identify", "userId": "u", "timestamp": iso}, CTX, event_time)
    assert isinstance(a, tuple)
    assert isinstance(b, tuple)
    if seconds < 100_000_000_000:  # larger numbers are read as milliseconds
        assert orjson.loads(a[0].body)["timestamp"] == orjson.loads(b[0].body)["timestamp"] == math.floor(seconds)
