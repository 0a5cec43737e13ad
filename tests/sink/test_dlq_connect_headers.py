"""Kafka Connect's ``__connect.errors.*`` headers on dead letters (CONNECTOR_DLQ_CONNECT_HEADERS), built purely.

The expected names, order and encodings are those of Kafka Connect's DeadLetterQueueReporter
(``populateContextHeaders``): every value a UTF-8 string, numbers in decimal.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.dlq_replay import replay_headers
from connector.kafka import Headers, Partition, Record
from connector.sink.dlq import VALUE_TRUNCATED, added_headers, connect_stage, fit_dead_letter
from connector.sink.mapping.model import REASONS
from connector.sink.tickets import DeadLetterReason, Ticket

NOT_JSON = DeadLetterReason("not_json", "value is not JSON: unexpected character at 0")
REJECTED = DeadLetterReason("rejected", "Customer.io rejected the operation: email: invalid", "acme", 400)
NOW = 1_700_000_000.0


def _record(value: bytes | None = b"{no", headers: Headers = (), key: bytes | None = b"user-7") -> Record:
    return Record("events", 3, 41, 1_700_000_000_123, key, value, headers)


def _ticket(record: Record) -> Ticket:
    return Ticket(record, Partition(record.topic, record.partition), 0, lambda _t: None)


def _connect(headers: Headers) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in headers if k.startswith("__connect.")]


def test_enabled_dead_letters_carry_kafka_connects_headers_in_its_order_and_encoding() -> None:
    headers = added_headers(_ticket(_record()), NOT_JSON, NOW, connector_name="group-a")
    assert _connect(headers) == [
        ("__connect.errors.topic", b"events"),
        ("__connect.errors.partition", b"3"),
        ("__connect.errors.offset", b"41"),
        ("__connect.errors.connector.name", b"group-a"),
        ("__connect.errors.task.id", b"0"),
        ("__connect.errors.stage", b"VALUE_CONVERTER"),
        ("__connect.errors.class.name", b"connector.sink.mapping.decode"),
        ("__connect.errors.exception.class.name", b"connector.not_json"),
        ("__connect.errors.exception.message", b"value is not JSON: unexpected character at 0"),
        ("__connect.errors.exception.stacktrace", b""),
    ]
    # Ours come first and are unchanged.
    assert headers[0] == ("cio-dlq-reason", b"not_json")
    assert headers[: len(headers) - 10] == added_headers(_ticket(_record()), NOT_JSON, NOW)


def test_disabled_dead_letters_carry_none_of_them() -> None:
    assert _connect(added_headers(_ticket(_record()), REJECTED, NOW)) == []


def test_a_customer_io_rejection_is_the_task_put_stage_with_customer_ios_message() -> None:
    headers = dict(added_headers(_ticket(_record()), REJECTED, NOW, connector_name="g"))
    assert headers["__connect.errors.stage"] == b"TASK_PUT"
    assert headers["__connect.errors.class.name"] == b"connector.sink.delivery"
    assert headers["__connect.errors.exception.class.name"] == b"connector.rejected"
    assert headers["__connect.errors.exception.message"] == REJECTED.message.encode()


def test_every_reason_has_the_stage_in_which_it_fails() -> None:
    decoding = {"empty_record", "invalid_utf8", "not_json", "not_an_object", "invalid_batch"}
    decoding |= {"invalid_frame", "schema_not_found", "unsupported_schema_type", "undecodable"}  # wire format
    expected = {
        reason: "VALUE_CONVERTER" if reason in decoding else "TASK_PUT" if reason == "rejected" else "TRANSFORMATION"
        for reason in REASONS
    }
    assert {reason: connect_stage(reason) for reason in REASONS} == expected
    assert decoding <= REASONS  # the vocabulary has not drifted away from the stages


def test_a_reduced_copy_keeps_the_connect_headers() -> None:
    """They are dead-letter headers: a value-truncated and a minimal copy still carry all ten."""
    record = _record(b"x" * 5000, (("trace", b"y" * 3000),), key=b"k" * 500)
    added = added_headers(_ticket(record), NOT_JSON, NOW, connector_name="group-a")
    for limit, form in ((6000, "value_truncated"), (2048, "minimal")):
        copy = fit_dead_letter(record, added, limit)
        assert copy is not None
        assert copy.form == form
        assert _connect(copy.headers) == _connect(added)
        assert dict(copy.headers)[VALUE_TRUNCATED] == b"5000"


def test_a_record_dead_lettered_again_carries_only_the_new_connect_headers() -> None:
    """A replayed dead letter that fails again: its earlier __connect.errors.* are not kept beside the new ones."""
    earlier = (("__connect.errors.topic", b"old-topic"), ("__connect.errors.stage", b"TASK_PUT"), ("trace", b"t"))
    record = _record(headers=earlier)
    added = added_headers(_ticket(record), NOT_JSON, NOW, connector_name="group-a")
    copy = fit_dead_letter(record, added, 1_048_576)
    assert copy is not None
    assert copy.headers[0] == ("trace", b"t")
    assert [v for k, v in copy.headers if k == "__connect.errors.topic"] == [b"events"]
    assert [v for k, v in copy.headers if k == "__connect.errors.stage"] == [b"VALUE_CONVERTER"]


def test_a_replayed_record_goes_back_without_the_connect_headers() -> None:
    record = _record()
    dead = Record(
        "dlq",
        0,
        5,
        record.timestamp_ms,
        record.key,
        record.value,
        (("trace", b"t"), *added_headers(_ticket(record), NOT_JSON, NOW, connector_name="group-a")),
    )
    replayed = replay_headers(dead)
    assert _connect(replayed) == []
    assert ("trace", b"t") in replayed
    assert ("cio-origin-offset", b"41") in replayed


@settings(max_examples=100, deadline=None)
@given(
    record=st.builds(
        Record,
        topic=st.text(min_size=1, max_size=40),
        partition=st.integers(min_value=0, max_value=10_000),
        offset=st.integers(min_value=0, max_value=2**62),
        timestamp_ms=st.just(0),
        key=st.none(),
        value=st.just(b""),
        headers=st.just(()),
    ),
    reason=st.sampled_from(sorted(REASONS)),
    message=st.text(max_size=300),
    group=st.text(min_size=1, max_size=60),
)
def test_the_source_position_and_message_read_back_from_the_headers(
    record: Record, reason: str, message: str, group: str
) -> None:
    headers = dict(added_headers(_ticket(record), DeadLetterReason(reason, message), NOW, connector_name=group))
    assert headers["__connect.errors.topic"].decode() == record.topic
    assert int(headers["__connect.errors.partition"]) == record.partition
    assert int(headers["__connect.errors.offset"]) == record.offset
    assert headers["__connect.errors.connector.name"].decode() == group
    assert headers["__connect.errors.exception.message"].decode() == message
    assert headers["__connect.errors.exception.class.name"].decode() == f"connector.{reason}"
