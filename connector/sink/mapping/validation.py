"""Customer.io's Track API payload limits and the error every mapping step raises (pure).

Limits applied: identifiers ≤ 150 bytes (never truncated: a cut id is another person); event names
≤ 100 bytes; *stored* attributes — of people, objects and devices, which Customer.io keeps — at most
300 per call, names ≤ 150 bytes, string values ≤ 1000 bytes (every string leaf of nested values too);
event data ≤ 100,000 bytes; one serialized operation ≤ ``max_operation_bytes``. Event, page and
screen attributes are not stored on the person, so only the event-data and operation limits apply.

Byte lengths are measured only when a string's length in characters could exceed the limit (a
character is at most 4 UTF-8 bytes), and ``str.isascii()`` is O(1), so the common case costs a len().
"""

from __future__ import annotations

from typing import Any, Final

import orjson

MAX_IDENTIFIER_BYTES: Final = 150
MAX_NAME_BYTES: Final = 100
MAX_ATTRIBUTE_NAME_BYTES: Final = 150
MAX_VALUE_BYTES: Final = 1000
MAX_ATTRIBUTES: Final = 300
MAX_EVENT_DATA_BYTES: Final = 100_000
MAX_DEPTH: Final = 64  # nesting of attribute values; orjson refuses to serialize deeper than 254 levels


class Invalid(Exception):  # noqa: N818 - an outcome ("this message is invalid"), not a program error
    """A message that cannot be sent; ``map_message`` turns it into ``Rejection(reason, message)``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def json_type(value: object) -> str:
    """The JSON name of a value's type, for error messages: ``object``, ``array``, ``number``…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def label(key: str) -> str:
    """A key as shown in an error message: at most 40 characters, control characters and lone surrogates
    escaped, so the message stays one line of valid UTF-8 (it travels in a Kafka header)."""
    text = key if len(key) <= 40 else key[:40] + "…"
    return text if text.isprintable() else repr(text)[1:-1]


def utf8_len(text: str) -> int:
    """Length of ``text`` in UTF-8 bytes (lone surrogates count 3, as orjson would refuse them anyway)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def over(text: str, limit: int) -> bool:
    """Whether ``text`` is longer than ``limit`` UTF-8 bytes; encodes only when it could be."""
    return len(text) * 4 > limit and (len(text) > limit or utf8_len(text) > limit)


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, at a character boundary."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def too_long(field: str, text: str, limit: int) -> Invalid:
    """The ``limit_exceeded`` error for a string over ``limit`` bytes."""
    return Invalid("limit_exceeded", f"{field}: {utf8_len(text)} bytes, limit {limit}")


def check_identifier(value: str, field: str) -> str:
    """``value`` if it fits Customer.io's identifier limit; never truncated, whatever the policy."""
    if over(value, MAX_IDENTIFIER_BYTES):
        raise too_long(field, value, MAX_IDENTIFIER_BYTES)
    return value


def check_name(name: str, field: str, truncate: bool) -> str:
    """An event/page/screen name within 100 bytes: cut when ``truncate``, else ``limit_exceeded``."""
    if not over(name, MAX_NAME_BYTES):
        return name
    if truncate:
        return truncate_utf8(name, MAX_NAME_BYTES)
    raise too_long(field, name, MAX_NAME_BYTES)


def serialize(value: Any, field: str) -> bytes:
    """``orjson.dumps(value)``; what it refuses (lone surrogates, huge ints, too deep) is ``invalid_field``."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise Invalid("invalid_field", f"{field}: cannot be serialized ({exc})") from None


def get_object(container: dict[str, Any], key: str, field: str) -> dict[str, Any] | None:
    """``container[key]`` if it is an object or absent (None); ``invalid_field`` otherwise."""
    value = container.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise Invalid("invalid_field", f"{field}: must be an object (got {json_type(value)})")


def get_string(container: dict[str, Any], key: str, field: str) -> str | None:
    """``container[key]`` if it is a string or absent (None); ``invalid_field`` otherwise."""
    value = container.get(key)
    if value is None or isinstance(value, str):
        return value
    raise Invalid("invalid_field", f"{field}: must be a string (got {json_type(value)})")


def show(value: Any) -> str:
    """A value as quoted in an error message: short strings quoted, anything else by its JSON type."""
    return repr(label(value)) if isinstance(value, str) else json_type(value)
