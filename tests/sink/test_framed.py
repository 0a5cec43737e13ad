"""Schema Registry wire-format records → Segment messages: Avro with logical types, JSON Schema, and every
way a frame can be wrong (pure: schemas are given, not fetched)."""

from __future__ import annotations

import io
import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from connector.sink.framed import (
    RegisteredSchema,
    Schema,
    UnusableSchema,
    decode_framed,
    is_framed,
    parse_registered,
)
from connector.sink.mapping.model import REASONS, Rejection
from connector.sink.mapping.shapes import compile_shape
from connector.sink.mapping.timestamps import iso_ms

ORDER = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "type", "type": "string"},
        {"name": "userId", "type": "string"},
        {"name": "event", "type": "string"},
        {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "properties",
            "type": {
                "type": "record",
                "name": "Props",
                "fields": [
                    {"name": "total", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
                    {"name": "order_id", "type": {"type": "string", "logicalType": "uuid"}},
                    {"name": "shipped_at", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
                    {"name": "items", "type": {"type": "array", "items": "string"}},
                ],
            },
        },
    ],
}
PLAIN = {
    "type": "record",
    "name": "Plain",
    "fields": [{"name": "type", "type": "string"}, {"name": "n", "type": "int"}],
}
ORDER_ID = uuid.UUID("7d9f6c1e-8f1a-4c55-9b8e-2f3a4b5c6d7e")


def avro_schema(schema_id: int, schema: dict[str, Any]) -> Schema:
    return parse_registered(schema_id, {"schema": orjson.dumps(schema).decode()})


def frame(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + payload


def avro_payload(schema: dict[str, Any], value: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), value)
    return out.getvalue()


def order(**props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "u1",
        "event": "Order Completed",
        "timestamp": datetime(2026, 11, 28, 5, 0, 0, 123000, tzinfo=UTC),
        "properties": {"total": Decimal("12.50"), "order_id": ORDER_ID, "shipped_at": None, "items": ["a"], **props},
    }


def test_an_avro_record_decodes_with_its_logical_types_as_json_types_the_mapping_takes() -> None:
    shipped = datetime(2026, 11, 29, 8, 30, 0, 250001, tzinfo=UTC)
    value = frame(7, avro_payload(ORDER, order(shipped_at=shipped)))
    decoded = decode_framed(value, avro_schema(7, ORDER))
    assert decoded == [
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Completed",
            "timestamp": "2026-11-28T05:00:00.123Z",
            "properties": {
                "total": 12.5,
                "order_id": str(ORDER_ID),
                "shipped_at": "2026-11-29T08:30:00.250001Z",
                "items": ["a"],
            },
        }
    ]
    assert iso_ms(decoded[0]["timestamp"]) == 1_795_842_000_123  # a time the mapping accepts


def test_an_integral_decimal_becomes_an_integer() -> None:
    value = frame(7, avro_payload(ORDER, order(total=Decimal("40.00"))))
    decoded = decode_framed(value, avro_schema(7, ORDER))
    assert isinstance(decoded, list)
    assert decoded[0]["properties"]["total"] == 40
    assert isinstance(decoded[0]["properties"]["total"], int)


def test_an_avro_schema_without_logical_types_skips_the_conversion_and_still_decodes() -> None:
    schema = avro_schema(3, PLAIN)
    assert isinstance(schema, RegisteredSchema)
    assert schema.convert is None
    assert decode_framed(frame(3, avro_payload(PLAIN, {"type": "identify", "n": -5})), schema) == [
        {"type": "identify", "n": -5}
    ]


def test_an_avro_payload_with_bytes_left_over_does_not_match_its_schema() -> None:
    value = frame(3, avro_payload(PLAIN, {"type": "identify", "n": 1}) + b"\x00\x01")
    assert decode_framed(value, avro_schema(3, PLAIN)) == Rejection(
        "undecodable", "schema id 3: Avro payload has 2 bytes after the value"
    )


def test_a_cut_avro_payload_is_undecodable_naming_the_schema_id() -> None:
    payload = avro_payload(ORDER, order())
    decoded = decode_framed(frame(9, payload[:10]), avro_schema(9, ORDER))
    assert isinstance(decoded, Rejection)
    assert decoded.reason == "undecodable"
    assert decoded.message.startswith("schema id 9: Avro payload does not match its schema")


def test_an_avro_value_that_is_not_a_record_is_not_an_object() -> None:
    schema = avro_schema(4, {"type": "string"})
    decoded = decode_framed(frame(4, avro_payload({"type": "string"}, "hello")), schema)  # type: ignore[arg-type]
    assert isinstance(decoded, Rejection)
    assert decoded.reason == "not_an_object"


def test_a_json_schema_payload_decodes_as_json_including_a_batch_envelope() -> None:
    json_schema = parse_registered(5, {"schema": '{"type":"object"}', "schemaType": "JSON"})
    body = b'{"batch":[{"type":"track","event":"A"}],"context":{"ip":"1"}}'
    assert decode_framed(frame(5, body), json_schema) == [{"type": "track", "event": "A", "context": {"ip": "1"}}]


def test_a_json_schema_payload_that_is_not_json_is_undecodable() -> None:
    json_schema = parse_registered(5, {"schema": '{"type":"object"}', "schemaType": "JSON"})
    decoded = decode_framed(frame(5, b"\x02\x03garbage"), json_schema)
    assert isinstance(decoded, Rejection)
    assert decoded.reason == "undecodable"
    assert decoded.message.startswith("schema id 5 (JSON Schema): payload is not JSON (")


def test_without_a_registry_a_framed_json_payload_decodes_and_anything_else_names_the_setting() -> None:
    assert decode_framed(frame(1, b'{"type":"page"}'), None) == [{"type": "page"}]
    assert decode_framed(frame(1, avro_payload(PLAIN, {"type": "x", "n": 1})), None) == Rejection(
        "undecodable", "schema id 1: payload is not JSON and CONNECTOR_SCHEMA_REGISTRY_URL is not set"
    )


def test_a_frame_shorter_than_its_header_is_an_invalid_frame() -> None:
    assert decode_framed(b"\x00\x00\x01", None) == Rejection(
        "invalid_frame", "record: truncated wire-format frame (3 bytes, header is 5)"
    )


def test_unusable_schemas_give_their_own_reasons() -> None:
    protobuf = parse_registered(8, {"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"})
    assert protobuf == UnusableSchema(
        8, "unsupported_schema_type", "schema id 8: PROTOBUF schemas are not supported (Avro and JSON Schema are)"
    )
    unresolved = parse_registered(
        8, {"schema": '"Other"', "references": [{"name": "Other", "subject": "s", "version": 1}]}
    )
    assert isinstance(unresolved, UnusableSchema)  # its reference's text not given: Other is unknown
    assert unresolved.reason == "undecodable"
    broken = parse_registered(8, {"schema": '{"type":"record","name":"R","fields":[{"name":"a","type":"nope"}]}'})
    assert isinstance(broken, UnusableSchema)
    assert broken.reason == "undecodable"
    assert parse_registered(8, {"no": "schema"}) == UnusableSchema(
        8, "undecodable", "schema id 8: the registry's answer has no schema"
    )
    decoded = decode_framed(frame(8, b"\x08\x01"), protobuf)
    assert decoded == Rejection(protobuf.reason, protobuf.message)


def test_only_the_magic_byte_marks_a_framed_record() -> None:
    assert is_framed(b"\x00")
    assert not is_framed(b'{"type":"track"}')
    assert not is_framed(b" \x00")
    assert not is_framed(b"")
    assert not is_framed(None)


SCHEMAS: list[Schema | None] = [
    None,
    avro_schema(1, ORDER),
    avro_schema(2, PLAIN),
    parse_registered(3, {"schema": "{}", "schemaType": "JSON"}),
    UnusableSchema(4, "schema_not_found", "schema id 4: not found in the registry"),
]


@given(
    body=st.binary(max_size=64),
    magic=st.booleans(),
    schema=st.sampled_from(SCHEMAS),
)
def test_any_bytes_decode_to_json_messages_or_a_rejection_never_an_exception(
    body: bytes, magic: bool, schema: Schema | None
) -> None:
    value = b"\x00" + body if magic else body
    if not is_framed(value):
        return  # the plain JSON path: fuzzed in test_decode
    decoded = decode_framed(value, schema)
    if isinstance(decoded, Rejection):
        assert decoded.reason in REASONS
        assert "\n" not in decoded.message
    else:
        for message in decoded:
            assert isinstance(message, dict)
            orjson.dumps(message)  # JSON types only: the mapping serializes what it keeps


@given(
    total=st.decimals(min_value=-9_999_999, max_value=9_999_999, places=2, allow_nan=False),
    moment=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)),
    items=st.lists(st.text(max_size=5), max_size=3),
)
def test_any_order_round_trips_through_avro_into_json_types(total: Decimal, moment: datetime, items: list[str]) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    value = order(total=total, items=items)
    value["timestamp"] = moment
    decoded = decode_framed(frame(1, avro_payload(ORDER, value)), SCHEMAS[1])
    assert isinstance(decoded, list)
    (message,) = decoded
    assert iso_ms(message["timestamp"]) == (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert Decimal(str(message["properties"]["total"])) == total
    assert message["properties"]["items"] == items


NESTED = {
    "type": "record",
    "name": "Node",
    "namespace": "shop",
    "fields": [
        {"name": "type", "type": "string"},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [
                        {
                            "name": "price",
                            "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
                        },
                        {"name": "sku", "type": "string"},
                    ],
                },
            },
        },
        {"name": "by_day", "type": {"type": "map", "values": {"type": "int", "logicalType": "date"}}},
        {"name": "raw", "type": {"type": "fixed", "name": "Raw", "size": 2}},
        {"name": "first", "type": ["null", "Line"]},
        {"name": "next", "type": ["null", "Node"]},
    ],
}


def test_nested_logical_types_in_arrays_maps_unions_and_recursive_types_are_converted() -> None:
    line = {"price": Decimal("1.25"), "sku": "A"}
    inner: dict[str, Any] = {
        "type": "track",
        "lines": [],
        "by_day": {},
        "raw": b"\x00\x01",
        "first": None,
        "next": None,
    }
    value = {
        "type": "track",
        "lines": [line],
        "by_day": {"mon": datetime(2026, 11, 23).date()},
        "raw": b"\xff\xfe",
        "first": line,
        "next": inner,
    }
    decoded = decode_framed(frame(6, avro_payload(NESTED, value)), avro_schema(6, NESTED))
    assert decoded == [
        {
            "type": "track",
            "lines": [{"price": 1.25, "sku": "A"}],
            "by_day": {"mon": "2026-11-23"},
            "raw": "//4=",
            "first": {"price": 1.25, "sku": "A"},
            "next": {**inner, "raw": "AAE="},
        }
    ]


MONEY = {
    "type": "record",
    "name": "Money",
    "namespace": "shop",
    "fields": [{"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}}],
}
PAID = {
    "type": "record",
    "name": "Paid",
    "namespace": "shop",
    "fields": [{"name": "type", "type": "string"}, {"name": "total", "type": "shop.Money"}],
}


def test_an_avro_schema_decodes_with_the_types_its_references_define() -> None:
    answer = {
        "schema": orjson.dumps(PAID).decode(),
        "references": [{"name": "shop.Money", "subject": "money", "version": 1}],
    }
    schema = parse_registered(11, answer, [orjson.dumps(MONEY).decode()])
    named: dict[str, Any] = {}
    parse_schema(MONEY, named_schemas=named)
    out = io.BytesIO()
    schemaless_writer(
        out, parse_schema(PAID, named_schemas=named), {"type": "track", "total": {"amount": Decimal("3.10")}}
    )
    assert decode_framed(frame(11, out.getvalue()), schema) == [{"type": "track", "total": {"amount": 3.1}}]


PLACED = {
    "type": "record",
    "name": "Placed",
    "fields": [
        {
            "name": "customer",
            "type": {"type": "record", "name": "Customer", "fields": [{"name": "id", "type": "string"}]},
        },
        {"name": "total", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


def test_a_topics_declarative_mapping_builds_the_message_from_an_avro_record() -> None:
    shape = compile_shape(
        {
            "type": "track",
            "user_id": "$.customer.id",
            "event": "Order Completed",
            "properties": {"total": "$.total"},
            "timestamp": "$.placed_at",
            "timestamp_format": "iso",
        },
        "topics.orders.mapping",
    )
    value = {"customer": {"id": "c-9"}, "total": Decimal("99.90"), "placed_at": datetime(2026, 11, 28, 5, tzinfo=UTC)}
    decoded = decode_framed(frame(12, avro_payload(PLACED, value)), avro_schema(12, PLACED), shape.messages)
    assert isinstance(decoded, list)
    (message,) = decoded
    assert message["type"] == "track"
    assert message["userId"] == "c-9"
    assert message["event"] == "Order Completed"
    assert message["properties"] == {"total": 99.9}
    assert message["timestamp"] == "2026-11-28T05:00:00.000Z"  # the mapping checks it is ISO 8601


MEASURES = {
    "type": "record",
    "name": "Measures",
    "fields": [
        {"name": "type", "type": "string"},
        {"name": "userId", "type": "string"},
        {"name": "event", "type": "string"},
        {
            "name": "properties",
            "type": {
                "type": "record",
                "name": "MeasureProps",
                "fields": [
                    {"name": "ratio", "type": "double"},
                    {"name": "score", "type": ["null", "float"]},
                    {"name": "series", "type": {"type": "array", "items": "double"}},
                    {"name": "by_day", "type": {"type": "map", "values": "double"}},
                ],
            },
        },
    ],
}


@given(
    ratio=st.floats(),
    score=st.none() | st.floats(width=32),
    series=st.lists(st.floats(), max_size=3),
    by_day=st.dictionaries(st.text(max_size=3), st.floats(), max_size=3),
)
def test_an_avro_double_json_cannot_carry_is_dead_lettered_never_sent_as_null(
    ratio: float, score: float | None, series: list[float], by_day: dict[str, float]
) -> None:
    """NaN and ±Infinity have no JSON form: orjson would write them as null, which erases an object's attribute."""
    props = {"ratio": ratio, "score": score, "series": series, "by_day": by_day}
    value = {"type": "track", "userId": "u1", "event": "Measured", "properties": props}
    decoded = decode_framed(frame(9, avro_payload(MEASURES, value)), avro_schema(9, MEASURES))
    finite = [ratio, *series, *by_day.values(), *([] if score is None else [score])]
    if all(math.isfinite(number) for number in finite):
        assert isinstance(decoded, list)
        assert orjson.loads(orjson.dumps(decoded[0])) == decoded[0]  # sent as decoded
        return
    assert isinstance(decoded, Rejection)
    assert decoded.reason == "invalid_field"
    assert decoded.message.startswith("schema id 9: properties.")
    assert "JSON" in decoded.message


def test_a_nan_field_is_named_in_the_dead_letter() -> None:
    value = {
        "type": "track",
        "userId": "u1",
        "event": "Measured",
        "properties": {"ratio": math.nan, "score": None, "series": [], "by_day": {}},
    }
    decoded = decode_framed(frame(9, avro_payload(MEASURES, value)), avro_schema(9, MEASURES))
    assert decoded == Rejection(
        "invalid_field", "schema id 9: properties.ratio: nan is a number JSON cannot carry (NaN or ±Infinity)"
    )
