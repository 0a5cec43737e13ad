"""Record bytes → Segment messages: single objects, batch envelopes, and every way bytes can be wrong (pure)."""

from __future__ import annotations

import pytest

from connector.sink.mapping.decode import decode_record
from connector.sink.mapping.model import Rejection


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(b'{"type":"track","event":"E"}', [{"type": "track", "event": "E"}], id="one message"),
        pytest.param(b'\xef\xbb\xbf{"type":"page"}', [{"type": "page"}], id="UTF-8 BOM skipped"),
        pytest.param(b'{"batch":[{"type":"identify"},{"type":"track"}]}', [{"type": "identify"}, {"type": "track"}],
                     id="batch envelope"),
        pytest.param(b'{"batch":[]}', [], id="empty batch"),
        pytest.param(
            b'{"batch":[{"type":"track"},{"type":"page","context":{"ip":"2"}}],"context":{"ip":"1"},'
            b'"integrations":{"All":false}}',
            [
                {"type": "track", "context": {"ip": "1"}, "integrations": {"All": False}},
                {"type": "page", "context": {"ip": "2"}, "integrations": {"All": False}},
            ],
            id="envelope context and integrations fill in what messages lack",
        ),
        pytest.param(b'{"type":"track","batch":[1]}', [{"type": "track", "batch": [1]}],
                     id="a message with a batch field is a message"),
        pytest.param(bytearray(b'{"type":"track"}'), [{"type": "track"}], id="bytearray"),
    ],
)  # fmt: skip
def test_records_decode_to_messages(record: bytes, expected: list[object]) -> None:
    """A record holds one message or a {"batch": [...]} envelope of them."""
    assert decode_record(record) == expected


@pytest.mark.parametrize(
    ("record", "reason", "message"),
    [
        (None, "empty_record", "record: empty value"),
        (b"", "empty_record", "record: empty value"),
        (b"\xff\xfe{}", "invalid_utf8", "record: invalid UTF-8 at byte 0"),
        (b'{"a":"\xed\xa0\x80"}', "invalid_utf8", "record: invalid UTF-8 at byte 6"),
        (b"{", "not_json", "record: not JSON (unexpected end of data at line 1 column 2)"),
        (b"   ", "not_json", "record: not JSON"),
        (b'{"a":"\\ud800"}', "not_json", "record: not JSON"),
        (b"[" * 2000 + b"]" * 2000, "not_json", "record: not JSON"),
        (b"[1]", "not_an_object", "record: must be a JSON object (got array)"),
        (b'"x"', "not_an_object", "record: must be a JSON object (got string)"),
        (b"null", "not_an_object", "record: must be a JSON object (got null)"),
        (b'{"batch":{}}', "invalid_batch", "batch: must be an array (got object)"),
        (b'{"batch":[{"type":"track"},3]}', "invalid_batch", "batch[1]: must be an object (got number)"),
    ],
)
def test_undecodable_records_are_rejected(record: bytes | None, reason: str, message: str) -> None:
    """Each way a record can be unusable has its reason and a one-line message."""
    result = decode_record(record)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.message.startswith(message)
