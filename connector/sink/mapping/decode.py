"""Kafka record bytes → Segment-spec messages (pure).

A record holds one message (a JSON object) or a ``{"batch": [...]}`` envelope of messages, as the
Segment HTTP API and the analytics SDKs send them. The envelope's ``context`` and ``integrations``
objects apply to every message that lacks its own. An empty envelope decodes to no messages. A UTF-8
byte-order mark is skipped. Whatever the bytes, ``decode_record`` returns; it never raises.

A topic with a declarative mapping (``connector.sink.mapping.shapes``) is decoded by ``decode_shaped``
instead: the JSON document, whatever its shape, is handed to the mapping, which builds the message.
"""

from __future__ import annotations

from typing import Final

import orjson

from connector.sink.mapping.model import Message, Rejection
from connector.sink.mapping.shapes import RecordShape
from connector.sink.mapping.validation import json_type

_BOM: Final = b"\xef\xbb\xbf"
_SHARED: Final = ("context", "integrations")


def decode_record(value: bytes | bytearray | memoryview | None) -> list[Message] | Rejection:
    """The messages of one record, or the reason it cannot be decoded."""
    if not value:
        return Rejection("empty_record", "record: empty value")
    if value[:3] == _BOM:
        value = value[3:]
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return _undecodable(value, exc)
    return decode_document(doc)


def decode_document(doc: object) -> list[Message] | Rejection:
    """The messages of an already decoded record value (JSON, or Avro converted to JSON types)."""
    if not isinstance(doc, dict):
        return Rejection("not_an_object", f"record: must be a JSON object (got {json_type(doc)})")
    if "batch" in doc and "type" not in doc:
        return _envelope(doc)
    return [doc]


def decode_shaped(value: bytes | bytearray | memoryview | None, shape: RecordShape) -> list[Message] | Rejection:
    """The message(s) ``shape`` builds from one record's JSON document, or why there are none."""
    if not value:
        return Rejection("empty_record", "record: empty value")
    if value[:3] == _BOM:
        value = value[3:]
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return _undecodable(value, exc)
    return shape.messages(doc)


def _undecodable(value: bytes | bytearray | memoryview, exc: orjson.JSONDecodeError) -> Rejection:
    try:
        bytes(value).decode("utf-8")
    except UnicodeDecodeError as error:
        return Rejection("invalid_utf8", f"record: invalid UTF-8 at byte {error.start}")
    return Rejection("not_json", f"record: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")


def _envelope(doc: Message) -> list[Message] | Rejection:
    batch = doc["batch"]
    if not isinstance(batch, list):
        return Rejection("invalid_batch", f"batch: must be an array (got {json_type(batch)})")
    shared = [(key, doc[key]) for key in _SHARED if isinstance(doc.get(key), dict)]
    for i, message in enumerate(batch):
        if not isinstance(message, dict):
            return Rejection("invalid_batch", f"batch[{i}]: must be an object (got {json_type(message)})")
        for key, value in shared:
            if message.get(key) is None:
                message[key] = value  # freshly decoded: ours to fill in
    return batch
