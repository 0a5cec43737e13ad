"""Records in the Confluent wire format → Segment-spec messages (pure: no I/O, the schema is given).

The frame is a magic byte 0, the writer schema's registry id (4 bytes, big-endian), then the payload:
Avro binary (fastavro, with the writer schema) or JSON (JSON Schema: decoded as JSON, not validated; the
producer's serializer validated it). Plain JSON never starts with byte 0 (it starts with ``{``, ``[``, a
byte-order mark or whitespace), so ``is_framed`` tests one byte and the JSON path pays nothing more.

Invariants:
- whatever the bytes, ``decode_framed`` returns messages or a ``Rejection``; it never raises;
- Avro values come out as JSON types only: timestamps as ISO-8601 strings in UTC (what the mapping takes
  as a time), dates and times as ISO strings, decimals as numbers, UUIDs as strings, bytes and fixed as
  base64 strings;
- a float or double that JSON cannot carry (NaN, ±Infinity) is refused (``invalid_field``, naming the field),
  never passed on: orjson would write it as null, which erases an object's attribute;
- an Avro payload must be read exactly: bytes left over mean it does not match its schema (``undecodable``).
"""

from __future__ import annotations

import base64
import io
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final

import orjson
from fastavro import parse_schema, schemaless_reader

from connector.sink.mapping.decode import decode_document
from connector.sink.mapping.model import Message, Rejection

MAGIC: Final = 0
HEADER_BYTES: Final = 5
_JSON_PRIMITIVES: Final = frozenset({"null", "boolean", "int", "long", "string", "enum"})
_FLOATS: Final = frozenset({"float", "double"})

Convert = Callable[[Any], Any]


class NonFiniteNumberError(ValueError):
    """A decoded float JSON has no form for; ``path``: the record fields leading to it."""

    def __init__(self, value: float, path: tuple[str, ...] = ()) -> None:
        super().__init__(value, path)
        self.value = value
        self.path = path


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A writer schema from the registry, parsed once: ``kind`` AVRO or JSON."""

    schema_id: int
    kind: str
    avro: Any = None  # fastavro's parsed schema (AVRO only)
    convert: Convert | None = None  # turns decoded values into JSON types; None: they already are


@dataclass(frozen=True, slots=True)
class UnusableSchema:
    """The registry's answer for an id that no record can be decoded with: the dead-letter reason to give."""

    schema_id: int
    reason: str  # from model.REASONS: schema_not_found, unsupported_schema_type, undecodable
    message: str


Schema = RegisteredSchema | UnusableSchema


def is_framed(value: bytes | bytearray | memoryview | None) -> bool:
    """Whether a record value starts with the wire format's magic byte."""
    return bool(value) and value[0] == MAGIC  # type: ignore[index]


def frame_id(value: bytes | bytearray | memoryview) -> int | None:
    """The schema id of a framed value, or None when the frame is truncated (shorter than its header)."""
    if len(value) < HEADER_BYTES:
        return None
    return int.from_bytes(value[1:HEADER_BYTES], "big")


def parse_registered(schema_id: int, answer: Any, referenced: Sequence[str] = ()) -> Schema:
    """The registry's ``GET /schemas/ids/{id}`` answer as a usable schema, or why it cannot be used.

    ``referenced``: the texts of the Avro schemas its ``references`` name, dependencies first (the
    registry client fetches them); their named types are known when the schema itself is parsed.
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
        return UnusableSchema(schema_id, "undecodable", f"schema id {schema_id}: the registry's answer has no schema")
    kind = answer.get("schemaType") or "AVRO"  # the registry omits the type of Avro schemas
    if kind == "JSON":
        return RegisteredSchema(schema_id, "JSON")
    if kind != "AVRO":
        return UnusableSchema(
            schema_id,
            "unsupported_schema_type",
            f"schema id {schema_id}: {str(kind)[:40]} schemas are not supported (Avro and JSON Schema are)",
        )
    text: str = answer["schema"]
    named: dict[str, Any] = {}
    try:
        for dependency in referenced:
            parse_schema(orjson.loads(dependency), named_schemas=named)
        parsed = parse_schema(orjson.loads(text), named_schemas=named)
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types for a bad schema; each is one answer
        return UnusableSchema(
            schema_id, "undecodable", f"schema id {schema_id}: the Avro schema does not parse ({type(exc).__name__})"
        )
    return RegisteredSchema(schema_id, "AVRO", parsed, converter(parsed, _named(parsed)))


def decode_framed(
    value: bytes | bytearray | memoryview,
    schema: Schema | None,
    to_messages: Callable[[Any], list[Message] | Rejection] = decode_document,
) -> list[Message] | Rejection:
    """The messages of a framed record (``is_framed``), decoded with its writer schema.

    ``schema`` None: no registry is configured; a JSON payload still decodes, anything else is undecodable.
    ``to_messages`` makes messages of the decoded document: Segment-spec by default, or a topic's
    declarative mapping (``RecordShape.messages``).
    """
    schema_id = frame_id(value)
    if schema_id is None:
        return Rejection("invalid_frame", f"record: truncated wire-format frame ({len(value)} bytes, header is 5)")
    payload = value[HEADER_BYTES:]
    if isinstance(schema, UnusableSchema):
        return Rejection(schema.reason, schema.message)
    if schema is None or schema.kind == "JSON":
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            if schema is None:
                return Rejection(
                    "undecodable",
                    f"schema id {schema_id}: payload is not JSON and CONNECTOR_SCHEMA_REGISTRY_URL is not set",
                )
            return Rejection("undecodable", f"schema id {schema_id} (JSON Schema): payload is not JSON ({exc.msg})")
        return to_messages(doc)
    return _decode_avro(payload, schema, to_messages)


def _decode_avro(
    payload: bytes | bytearray | memoryview,
    schema: RegisteredSchema,
    to_messages: Callable[[Any], list[Message] | Rejection],
) -> list[Message] | Rejection:
    stream = io.BytesIO(payload)
    try:
        doc = schemaless_reader(stream, schema.avro, None)
        if schema.convert is not None:
            doc = schema.convert(doc)
    except NonFiniteNumberError as non_finite:  # its own name: mypyc types a handler's variable once per function
        return Rejection(
            "invalid_field",
            f"schema id {schema.schema_id}: {'.'.join(non_finite.path) or 'value'}: {non_finite.value!r} is a "
            "number JSON cannot carry (NaN or ±Infinity)",
        )
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types on bytes that do not match; one answer
        return Rejection(
            "undecodable",
            f"schema id {schema.schema_id}: Avro payload does not match its schema ({type(exc).__name__})",
        )
    left = len(payload) - stream.tell()
    if left:
        return Rejection("undecodable", f"schema id {schema.schema_id}: Avro payload has {left} bytes after the value")
    return to_messages(doc)


def _named(parsed: Any) -> dict[str, Any]:
    named = parsed.get("__named_schemas") if isinstance(parsed, dict) else None
    return named if isinstance(named, dict) else {}


def converter(schema: Any, named: dict[str, Any], seen: frozenset[str] = frozenset()) -> Convert | None:
    """How to turn the values fastavro decodes for ``schema`` into JSON types; None when they already are.

    Planned once per schema, so a record converts only the fields that need it (walking every value of
    every record costs as much as decoding it). Unions and recursive types take the generic walk.
    """
    if not isinstance(schema, dict):
        return _type_name_or_union_converter(schema, named, seen)
    kind = schema.get("type")
    if "logicalType" in schema or kind in ("bytes", "fixed"):
        return to_json_types
    if kind == "record":
        return _record_converter(schema, named, seen | {str(schema.get("name"))})
    if kind in ("array", "map"):
        return _container_converter(kind, schema, named, seen)
    return converter(kind, named, seen)


def _container_converter(
    kind: str, schema: dict[str, Any], named: dict[str, Any], seen: frozenset[str]
) -> Convert | None:
    if kind == "array":
        items = converter(schema.get("items"), named, seen)
        if items is _finite:
            return _finite_list
        return None if items is None else lambda value: [items(item) for item in value]
    values = converter(schema.get("values"), named, seen)
    if values is _finite:
        return _finite_map
    return None if values is None else lambda value: {key: values(item) for key, item in value.items()}


def _type_name_or_union_converter(schema: Any, named: dict[str, Any], seen: frozenset[str]) -> Convert | None:
    if isinstance(schema, list):
        return to_json_types if any(converter(branch, named, seen) for branch in schema) else None
    if schema in _JSON_PRIMITIVES:
        return None
    if schema in _FLOATS:
        return _finite
    if isinstance(schema, str) and schema in named and schema not in seen:
        return converter(named[schema], named, seen | {schema})
    return to_json_types  # bytes, fixed, a recursive or unknown name: convert whatever comes


def _record_converter(schema: dict[str, Any], named: dict[str, Any], seen: frozenset[str]) -> Convert | None:
    fields = [(f["name"], c) for f in schema.get("fields", ()) if (c := converter(f["type"], named, seen)) is not None]
    if not fields:
        return None
    # Plain float/double fields are checked inline, without a call: ``x - x`` is 0.0 exactly when x is finite.
    floats = tuple(name for name, convert_field in fields if convert_field is _finite)
    fields = [(name, convert_field) for name, convert_field in fields if convert_field is not _finite]

    def convert(value: dict[str, Any]) -> dict[str, Any]:
        for name in floats:
            number = value[name]
            if number - number:
                raise NonFiniteNumberError(number, (name,))
        for name, convert_field in fields:
            try:
                value[name] = convert_field(value[name])  # fastavro's fresh dict: ours to change
            except NonFiniteNumberError as exc:
                raise NonFiniteNumberError(exc.value, (name, *exc.path)) from None
        return value

    return convert


def to_json_types(value: Any) -> Any:
    """An Avro-decoded value with every non-JSON leaf converted (see the module invariants)."""
    if isinstance(value, dict):
        return {key: to_json_types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json_types(item) for item in value]
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, str | int) or value is None:
        return value
    convert = _CONVERTERS.get(type(value))
    return str(value) if convert is None else convert(value)


def _finite(value: float) -> float:
    if math.isfinite(value):
        return value
    raise NonFiniteNumberError(value)


def _finite_list(values: Any) -> Any:
    """``values`` (floats), checked in one C-level sum: a NaN or an infinity makes the sum non-finite."""
    total = sum(values)
    if total - total:  # or finite floats overflowed: find the culprit, if any
        for value in values:
            _finite(value)
    return values


def _finite_map(value: dict[str, Any]) -> dict[str, Any]:
    _finite_list(value.values())
    return value


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _iso(moment: datetime) -> str:
    """ISO-8601 with milliseconds, or microseconds when there are some; ``Z`` for UTC."""
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


_CONVERTERS: Final[dict[type, Callable[[Any], Any]]] = {
    datetime: _iso,
    date: date.isoformat,
    time: time.isoformat,
    Decimal: _number,
    uuid.UUID: str,
    bytes: lambda raw: base64.b64encode(raw).decode("ascii"),
}
