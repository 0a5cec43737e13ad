"""Dead-letter copies always fit the topic's limit, and say what they left out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.kafka import Headers, Partition, Producer, Record
from connector.sink.dlq import (
    HEADERS_DROPPED,
    KEY_DROPPED,
    VALUE_TRUNCATED,
    added_headers,
    fit_dead_letter,
    minimal_dead_letter,
)
from connector.sink.tickets import DeadLetterReason, Ticket


def _record(key: bytes | None, value: bytes | None, headers: Headers = ()) -> Record:
    return Record("events", 3, 41, 1_700_000_000_000, key, value, headers)


def _added(record: Record) -> Headers:
    ticket = Ticket(record, Partition(record.topic, record.partition), 0, lambda _t: None)
    return added_headers(ticket, DeadLetterReason("not_json", "value is not JSON"), 1_700_000_000.0)


def _size(key: bytes | None, value: bytes, headers: Headers) -> int:
    return Producer.record_size(key, value, headers)


def _header(headers: Headers, name: str) -> bytes | None:
    return next((v for k, v in headers if k == name), None)


def test_the_issues_record_gets_a_truncated_copy_within_the_default_limit() -> None:
    """The 1,048,400-byte non-JSON record: its whole copy is over 1 MiB, the copy written is not."""
    record = _record(b"user-1", b"x" * 1_048_400)
    added = _added(record)
    limit = 1_048_588  # the broker's default max.message.bytes
    assert _size(record.key, record.value or b"", added) > limit  # why it used to be refused
    copy = fit_dead_letter(record, added, limit)
    assert copy is not None
    assert copy.form == "value_truncated"
    assert _size(copy.key, copy.value, copy.headers) <= limit
    assert _header(copy.headers, VALUE_TRUNCATED) == b"1048400"
    assert copy.key == b"user-1"
    assert (record.value or b"").startswith(copy.value)
    assert len(copy.value) > 1_047_000  # as much as fits, not an arbitrary cut
    assert _header(copy.headers, "cio-dlq-reason") == b"not_json"


def test_a_record_that_fits_is_copied_whole_without_markers() -> None:
    record = _record(b"k", b"{not json", (("trace", b"abc"),))
    copy = fit_dead_letter(record, _added(record), 1_048_576)
    assert copy is not None
    assert copy.form == "whole"
    assert (copy.key, copy.value) == (b"k", b"{not json")
    assert copy.headers[0] == ("trace", b"abc")
    assert _header(copy.headers, VALUE_TRUNCATED) is None


def test_headers_too_large_for_any_value_leave_only_the_dead_letter_headers() -> None:
    record = _record(b"k" * 3000, b"v" * 10, tuple((f"h{i}", b"y" * 500) for i in range(10)))
    copy = fit_dead_letter(record, _added(record), 2048)
    assert copy is not None
    assert copy.form == "minimal"
    assert copy.key is None
    assert copy.value == b""
    assert _header(copy.headers, VALUE_TRUNCATED) == b"10"
    assert _header(copy.headers, HEADERS_DROPPED) == b"10"
    assert _header(copy.headers, KEY_DROPPED) == b"3000"
    assert _header(copy.headers, "cio-dlq-source-offset") == b"41"


def test_nothing_fits_a_limit_below_the_dead_letter_headers() -> None:
    record = _record(b"k", b"v" * 5000)
    assert fit_dead_letter(record, _added(record), 200) is None


@settings(max_examples=200, deadline=None)
@given(
    key=st.one_of(st.none(), st.binary(max_size=3000)),
    value=st.one_of(st.none(), st.binary(max_size=20_000)),
    headers=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=2000)), max_size=6),
    limit=st.integers(min_value=0, max_value=30_000),
)
def test_a_copy_never_exceeds_the_limit_and_keeps_a_prefix_of_the_value(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], limit: int
) -> None:
    record = _record(key, value, tuple(headers))
    added = _added(record)
    copy = fit_dead_letter(record, added, limit)
    minimal = minimal_dead_letter(record, added)
    if copy is None:
        assert _size(minimal.key, minimal.value, minimal.headers) > limit
        return
    assert _size(copy.key, copy.value, copy.headers) <= limit
    assert (value or b"").startswith(copy.value)
    assert all(h in copy.headers for h in added)
    truncated = _header(copy.headers, VALUE_TRUNCATED)
    if copy.form == "whole":
        assert truncated is None
        assert copy.value == (value or b"")
        assert copy.key == key
    else:
        assert truncated == str(len(value or b"")).encode()
