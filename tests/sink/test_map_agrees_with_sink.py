"""``cio-connector map`` answers what the sink does: the same operations reach Customer.io, the same
records are dead-lettered with the same reason, over the poison corpus's hostile records and plain ones.

The sink runs against the in-memory consumer and the fake Customer.io; ``map`` is its ``RecordMapper``
over the very same Record values and settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import Record
from connector.map_tool import InputError, RecordMapper, parse_line
from tests.integration.poison_corpus import NEAR_BROKER_LIMIT, extremes
from tests.sink.memory_sink import FAKE, TRANSACTIONAL, record, run_sink, sink_settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE]) as fake:
        yield fake


def corpus() -> list[Record]:
    plain: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": "u1",
            "traits": {"email": "a@example.com", "created_at": "2025-01-02T03:04:05Z"},
        },
        {"type": "track", "userId": "u1", "event": "Visited", "properties": {"n": 1}},
        {"type": "page", "anonymousId": "a1", "name": "Home"},
        {"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "Acme"}},
        {"batch": [{"type": "track", "userId": f"b{i}", "event": "E"} for i in range(3)]},
        {"type": "identify", "traits": {}},
    ]
    values: list[bytes | None] = [orjson.dumps(message) for message in plain]
    values += [value for _key, value, _headers in extremes() if value is None or len(value) < NEAR_BROKER_LIMIT // 2]
    return [record(offset, value) for offset, value in enumerate(values)]


def canonical(operations: list[dict[str, Any]]) -> list[bytes]:
    """Operations as sorted canonical JSON: lanes deliver different people in any order."""
    return sorted(orjson.dumps(op, option=orjson.OPT_SORT_KEYS) for op in operations)


async def test_map_predicts_the_sinks_operations_and_dead_letters(fake: FakeCustomerIO) -> None:
    records = corpus()
    outcome = await run_sink(fake, records)
    sent = [item["operation"] for item in fake.state.operations_for()]
    dead = {offset: headers["cio-dlq-reason"].decode() for (_topic, offset), headers in outcome.dead_letters.items()}

    mapper = RecordMapper(sink_settings(fake))
    answers = [mapper.map(r) for r in records]
    predicted = [op["body"] for answer in answers for op in answer.get("operations", [])]
    predicted_dead = {a["offset"]: a["dead_letter"]["reason"] for a in answers if "dead_letter" in a}

    assert canonical(predicted) == canonical(sent)
    assert predicted_dead == dead
    assert len(sent) > 10  # the corpus does deliver (not only dead letters)
    assert {"not_json", "missing_identifier", "invalid_utf8", "empty_record"} <= set(dead.values())


def test_map_builds_the_same_transactional_body_for_the_transactional_topic(fake: FakeCustomerIO) -> None:
    message = {
        "type": "track",
        "userId": "u1",
        "event": "Transactional Email Requested",
        "properties": {"transactional_message_id": 7, "to": "a@example.com"},
    }
    answer = RecordMapper(sink_settings(fake)).map(record(0, orjson.dumps(message), topic=TRANSACTIONAL))
    (send,) = answer["transactional"]
    assert send["body"]["transactional_message_id"] == 7
    assert answer["outcome"] == "delivered"


@settings(max_examples=200)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_input_line_is_a_record_or_a_named_input_error(line: bytes) -> None:
    """Whatever the line, parse_line returns a Record or raises InputError naming the field (no crash)."""
    named = ("value", "value_base64", "topic", "key", "timestamp", "headers", "give value or value_base64")
    problem = ""
    try:
        parsed = parse_line(line, "events", 0, 0)
    except InputError as exc:
        problem = str(exc)
    else:
        assert parsed.topic
    assert not problem or problem.startswith(named)


@settings(max_examples=200)
@given(
    st.fixed_dictionaries(
        {
            "value": st.none()
            | st.text(max_size=20)
            | st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=3)
        },
        optional={
            "headers": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
            "key": st.text(max_size=5),
        },
    )
)
def test_a_record_object_keeps_its_value_headers_and_key(doc: dict[str, Any]) -> None:
    parsed = parse_line(orjson.dumps(doc), "events", 3, 0)
    value = doc["value"]
    expected = None if value is None else value.encode() if isinstance(value, str) else orjson.dumps(value)
    assert parsed.value == expected
    assert dict(parsed.headers) == {k: v.encode() for k, v in doc.get("headers", {}).items()}
    assert parsed.key == (doc["key"].encode() if "key" in doc else None)
    assert parsed.offset == 3


def as_received(operation: dict[str, Any]) -> dict[str, Any]:
    """A ``map`` v1 operation as the fake records the request it names (path and body)."""
    path, _, query = operation["api"].partition("?")
    if path == "/api/v1/metrics":
        return {"type": "metric", **operation["body"]}
    _, _, segment_id, action = path.rsplit("/", 3)
    id_type = query.removeprefix("id_type=")
    return {"type": "segment", "action": action, "segment_id": int(segment_id), "id_type": id_type, **operation["body"]}


async def test_map_shows_each_v1_call_with_the_path_and_body_the_sink_sends(fake: FakeCustomerIO) -> None:
    """Segment membership and delivery metrics are Track API v1 calls: map names their path and request body."""
    messages: list[dict[str, Any]] = [
        {"type": "track", "userId": "u1", "event": "Added to Segment", "properties": {"segmentId": 12}},
        {
            "type": "track",
            "userId": "a@example.com",
            "event": "Removed from Segment",
            "properties": {"segmentId": "13"},
        },
        {
            "type": "track",
            "userId": "u1",
            "event": "Report Delivery Event",
            "properties": {"deliveryId": "dlv-1", "metric": "opened", "recipient": "a@example.com"},
        },
    ]
    records = [record(offset, orjson.dumps(message)) for offset, message in enumerate(messages)]
    await run_sink(fake, records)
    received = [item["operation"] for item in fake.state.operations_for()]

    answers = [RecordMapper(sink_settings(fake)).map(r) for r in records]
    operations = [op for answer in answers for op in answer["operations"]]
    assert [op["api"] for op in operations] == [
        "/api/v1/segments/12/add_customers?id_type=id",
        "/api/v1/segments/13/remove_customers?id_type=email",
        "/api/v1/metrics",
    ]
    assert canonical([as_received(op) for op in operations]) == canonical(received)
    assert len(received) == 3
