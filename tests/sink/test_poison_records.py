"""Poison records: whatever a record holds, decode, map, the transactional build and the runner answer.

Inputs are built to hurt: strings up to ~1 MB (of separators, quotes, dots, ``@``), deep nesting, other
scripts' digits, integers past 64 bits, NaN and infinities, invalid UTF-8, odd headers. Each stage must
return a value (operations, Filtered, or a Rejection with a known reason) and never raise; the suite
finishing under a normal run is the bound on time (no clocks are read).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.config import MappingSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import Headers, Partition, Record
from connector.sink.mapping.decode import decode_record
from connector.sink.mapping.mapper import map_message
from connector.sink.mapping.model import (
    FILTER_REASONS,
    REASONS,
    Filtered,
    Message,
    MessageContext,
    Operation,
    Rejection,
)
from connector.sink.mapping.transactional import MAX_BODY_BYTES, build_send_email
from connector.sink.mapping.ulid import record_ulid
from connector.sink.record_path import RecordPath
from connector.sink.routing import Router, Target
from connector.sink.tickets import DeadLetterReason, Ticket
from tests.sink.memory_sink import EVENTS, FAKE, TRANSACTIONAL, record, run_sink, sink_settings

POISON = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
CTX = MessageContext(topic=EVENTS, partition=0, offset=3, index=0, timestamp_ms=1_735_689_600_000)
MAPPING = MappingSettings()

# ---- strategies ------------------------------------------------------------------------------------------

# Characters that make regexes backtrack or int() misread, repeated up to ~1 MB.
BIG_TEXT = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["x", ",", '"', '",', "a@", "a@b.", ".", " ", "é", "٣", "²", "\ud800", "1", "2024-01-0"]),
    st.integers(0, 1_000_000) | st.integers(0, 300),
)
UNICODE_DIGITS = st.sampled_from(["²", "١٢", "٣٤٥", "１２", " 12 ", "1_000", "12\u00a0", "+7", "-3", "٠"]) | st.text(
    st.characters(categories=["Nd", "No"]), min_size=1, max_size=25
)
DIGIT_STRINGS = st.builds(lambda n: "9" * n, st.integers(19, 6000))  # int() refuses past 4300 digits
HUGE_INTS = (
    st.integers(2**63, 2**200) | st.integers(-(2**200), -(2**63)) | st.builds(lambda n: 10**n, st.integers(4300, 5000))
)  # str() refuses these
NUMBERS = st.integers() | st.floats() | HUGE_INTS  # floats include NaN and ±inf
TEXT = st.text(st.characters(exclude_categories=()), max_size=30)  # lone surrogates too
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT, UNICODE_DIGITS, DIGIT_STRINGS, BIG_TEXT)


def _nest(depth: int, as_list: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


DEEP = st.builds(_nest, st.integers(200, 1100), st.booleans())
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12
)
ANY = st.one_of(JSON, DEEP)


def often(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``good`` (so later fields are reached), sometimes ``bad``."""
    return st.integers(0, 3).flatmap(lambda i: good if i else bad)


TEMPLATE_IDS = often(st.sampled_from([7, "7", "welcome"]), UNICODE_DIGITS | DIGIT_STRINGS | NUMBERS | ANY)
RECIPIENTS = often(st.sampled_from(["ana@example.com", '"Doe, A" <a@example.com>']), BIG_TEXT | ANY)
USER_IDS = often(st.sampled_from(["u-1", "cio_x", "ana@example.com", 42]), BIG_TEXT | UNICODE_DIGITS | ANY)
TRANSACTIONAL_PROPERTIES = st.fixed_dictionaries(
    {"transactional_message_id": TEMPLATE_IDS, "to": RECIPIENTS},
    optional={
        "identifiers": often(st.fixed_dictionaries({"id": USER_IDS}), ANY),
        "message_data": often(st.dictionaries(TEXT, ANY, max_size=3), ANY),
        "subject": often(TEXT, ANY),
        "tracked": often(st.booleans(), ANY),
        "send_at": often(st.integers(0, 2**40), UNICODE_DIGITS | DIGIT_STRINGS | NUMBERS | BIG_TEXT),
    },
)
TRANSACTIONAL_MESSAGES = st.fixed_dictionaries(
    {"type": st.just("track"), "event": st.just("Transactional Email Requested"), "userId": USER_IDS},
    optional={"properties": often(TRANSACTIONAL_PROPERTIES, ANY)},
)
SEGMENT_MESSAGES = st.fixed_dictionaries(
    {"type": often(st.sampled_from(["identify", "track", "page", "screen", "group", "alias"]), ANY)},
    optional={
        "userId": USER_IDS,
        "anonymousId": USER_IDS,
        "previousId": USER_IDS,
        "groupId": USER_IDS,
        "event": often(st.just("Order"), ANY),
        "name": often(st.just("Home"), ANY),
        "messageId": often(TEXT, NUMBERS | BIG_TEXT),
        "timestamp": often(st.just("2025-01-01T00:00:00Z"), UNICODE_DIGITS | DIGIT_STRINGS | NUMBERS | BIG_TEXT),
        "traits": often(st.dictionaries(TEXT, ANY, max_size=3), ANY),
        "properties": often(st.dictionaries(TEXT, ANY, max_size=3), ANY),
        "context": often(st.fixed_dictionaries({}, optional={"traits": ANY, "device": ANY, "page": ANY}), ANY),
    },
)
MESSAGES = SEGMENT_MESSAGES | TRANSACTIONAL_MESSAGES


def _encode(message: Any) -> bytes:
    """JSON bytes of ``message``; the stdlib's encoder for what orjson refuses (huge ints, NaN, depth)."""
    try:
        return orjson.dumps(message)
    except orjson.JSONEncodeError:
        try:
            return json.dumps(message).encode("utf-8", "surrogatepass")  # NaN, 10**5000, lone surrogates
        except (RecursionError, ValueError):
            return b'{"type": "track"'  # not JSON: still a record


RECORD_VALUES = st.one_of(
    MESSAGES.map(_encode),
    st.lists(MESSAGES, max_size=3).map(lambda batch: _encode({"batch": batch, "context": {"ip": "1"}})),
    st.binary(max_size=200),  # mostly invalid UTF-8 / not JSON
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(0, 2000)),
    st.builds(lambda n: b'{"a":' * n + b"1" + b"}" * n, st.integers(0, 2000)),
    st.builds(lambda n: b"\xef\xbb\xbf" + b"\xff" * n, st.integers(0, 1_000_000)),
    st.builds(lambda n: b'{"type":"identify","userId":' + b"9" * n + b"}", st.integers(1, 6000)),
    st.sampled_from([b"", b"NaN", b'{"type":"track","timestamp":NaN}', b'{"a":1e400}', b'{"batch":{}}']),
)


def _check(result: object) -> None:
    """A stage's answer: a Rejection with a known reason and a one-line message, Filtered, or a value."""
    if isinstance(result, Rejection):
        assert result.reason in REASONS, result
        assert result.reason != "internal_error", result  # a bug caught by a safety net
        assert result.message
        assert "\n" not in result.message
        assert len(result.message) < 1000, result.reason  # never the value itself
    elif isinstance(result, Filtered):
        assert result.reason in FILTER_REASONS


# ---- the pure stages -------------------------------------------------------------------------------------


@POISON
@given(RECORD_VALUES)
def test_decode_and_map_answer_any_record(value: bytes) -> None:
    """Every record decodes to messages or a Rejection, and every message maps to an answer."""
    decoded = decode_record(value)
    _check(decoded)
    if isinstance(decoded, list):
        for message in decoded:
            assert isinstance(message, dict)
            _check(map_message(message, CTX, MAPPING))


@POISON
@given(MESSAGES)
def test_map_message_answers_any_message(message: Message) -> None:
    """Messages straight from Python (ints past 64 bits, NaN, 1100 levels): never raises, never a bug."""
    _check(map_message(message, CTX, MAPPING))


@POISON
@given(TRANSACTIONAL_MESSAGES)
def test_build_send_email_answers_any_message(message: Message) -> None:
    """A body orjson wrote (so valid JSON) within the limit, or a Rejection naming the field."""
    result = build_send_email(message)
    _check(result)
    if isinstance(result, bytes):
        assert len(result) <= MAX_BODY_BYTES
        body = orjson.loads(result)
        assert set(body) >= {"transactional_message_id", "to", "identifiers", "message_data"}


# ---- the runner's per-record path ------------------------------------------------------------------------

HEADER_VALUES = st.one_of(
    st.binary(max_size=30),
    UNICODE_DIGITS.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"12", b"-1", b" 12", b"1_000", b"9" * 40, b"\xff\xfe"]),
)
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(
            ["cio-origin-topic", "cio-origin-partition", "cio-origin-offset", "cio-origin-timestamp", "cio-workspace"]
        )
        | st.text(max_size=10),
        HEADER_VALUES,
    ),
    max_size=5,
).map(tuple)
RECORDS = st.lists(
    st.tuples(st.sampled_from([EVENTS, TRANSACTIONAL]), RECORD_VALUES | TRANSACTIONAL_MESSAGES.map(_encode), HEADERS),
    min_size=1,
    max_size=6,
)


@settings(
    POISON, max_examples=15, suppress_health_check=[*POISON.suppress_health_check, HealthCheck.function_scoped_fixture]
)
@given(RECORDS)
async def test_runner_resolves_every_poison_record(
    fake: FakeCustomerIO, drawn: list[tuple[str, bytes, Headers]]
) -> None:
    """Through the real runner: the sink keeps running, every offset is committed, and each record is
    delivered, filtered, or dead-lettered with a known reason (never the internal_error safety net)."""
    records: list[Record] = []
    ends: dict[Partition, int] = {}
    for topic, value, headers in drawn:
        offset = ends.get(Partition(topic, 0), 0)
        records.append(record(offset, value, topic, headers))
        ends[Partition(topic, 0)] = offset + 1
    outcome = await run_sink(fake, records)
    assert outcome.committed == ends
    for written in outcome.dead_letters.values():
        reason = written["cio-dlq-reason"].decode()
        assert reason in REASONS, reason
        assert reason != "internal_error", written["cio-dlq-message"]


class _BrokenRouter(Router):
    """A router with a bug on one kind of message: it raises, quoting the message's secret."""

    def route(self, topic: str, workspace_header: bytes | None, message: Message) -> Target | Rejection:
        if message.get("event") == "boom":
            raise ValueError(f"cannot route {message.get('userId')}")
        return super().route(topic, workspace_header, message)

    def fixed(self, topic: str) -> Target | None:  # noqa: ARG002 - the same answer for every topic
        return None  # every message goes through route(), where the bug is


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE]) as server:
        yield server


async def test_an_exception_from_a_record_is_dead_lettered_as_internal_error(fake: FakeCustomerIO) -> None:
    """A bug on one record dead-letters it (internal_error, the class named, the text not), counts it in
    connector_dead_letters_total, and the records around it are delivered and everything is committed."""
    good = {"type": "track", "event": "Order", "userId": "u-1", "messageId": "m-1"}
    bad = {"type": "track", "event": "boom", "userId": "secret-user-7"}
    records = [record(0, orjson.dumps(good)), record(1, orjson.dumps(bad)), record(2, orjson.dumps(good))]
    outcome = await run_sink(fake, records, router=_BrokenRouter(sink_settings(fake)))

    assert set(outcome.committed.values()) == {3}
    assert list(outcome.dead_letters) == [(EVENTS, 1)]
    headers = outcome.dead_letters[EVENTS, 1]
    assert headers["cio-dlq-reason"] == b"internal_error"
    assert headers["cio-dlq-message"] == b"internal_error: ValueError"
    assert not any(b"secret-user-7" in value for name, value in headers.items() if name.startswith("cio-dlq-"))
    count = outcome.metrics.registry.get_sample_value(
        "connector_dead_letters_total", {"workspace": "none", "reason": "internal_error"}
    )
    assert count == 1
    assert len(fake.state.operations_for(FAKE.name)) == 2


def test_a_bug_met_by_a_record_of_a_fetched_run_dead_letters_that_record_only() -> None:
    """The usual records (plain JSON, no headers, one workspace's topic) are mapped by ``map_run`` itself,
    not through ``map``: a bug there (here in the workspace's intake) still answers only that record, as
    ``internal_error`` naming the exception's class, and the records after it in the run are mapped."""
    sink = load_settings({"CIO_SITE_ID": "site", "CIO_API_KEY": "key", "CONNECTOR_INPUT_TOPICS": EVENTS})
    workspace = sink.workspaces[0].name
    submitted: list[int] = []

    def submit(operation: Operation, ticket: Ticket) -> None:
        if b"boom" in operation.body:
            raise ValueError("cannot take secret-user-7")
        ticket.hold(workspace)
        submitted.append(ticket.record.offset)

    path = RecordPath(
        sink.sink,
        Router(sink),
        {workspace: submit},
        submit_transactional=None,
        on_filtered=lambda _workspace, _reason: None,
        on_skipped=lambda _topic: None,
    )
    good = {"type": "track", "event": "Order", "userId": "u-1"}
    bad = {"type": "track", "event": "boom", "userId": "secret-user-7"}
    records = [record(0, orjson.dumps(good)), record(1, orjson.dumps(bad)), record(2, orjson.dumps(good))]
    done: list[Ticket] = []

    path.map_run(records, Partition(EVENTS, 0), 1, done.append)

    assert submitted == [0, 2]  # held by the workspace until delivered
    assert [ticket.record.offset for ticket in done] == [1]  # answered at once: to be dead-lettered
    assert done[0].dead_letter == DeadLetterReason("internal_error", "internal_error: ValueError")


async def test_transactional_poison_records_are_dead_lettered_with_their_field(fake: FakeCustomerIO) -> None:
    """The records that crash-looped the process: each one is a dead letter naming the field."""

    def send(**props: Any) -> bytes:
        props = {"transactional_message_id": 7, "to": "ana@example.com", **props}
        message = {"type": "track", "event": "Transactional Email Requested", "userId": "u-1", "properties": props}
        return json.dumps(message).encode()  # orjson writes at most 254 levels, but reads 1024

    records = [
        record(0, send(transactional_message_id="²"), TRANSACTIONAL),  # a name: sent
        record(1, send(transactional_message_id="9" * 25), TRANSACTIONAL),
        record(2, send(message_data=_nest(300, False)), TRANSACTIONAL),
        record(3, send(to="a@b.c," * 30_000), TRANSACTIONAL),
        record(4, send(), TRANSACTIONAL),
    ]
    outcome = await run_sink(fake, records)

    assert set(outcome.committed.values()) == {5}
    reasons = {offset: (h["cio-dlq-reason"], h["cio-dlq-message"]) for (_, offset), h in outcome.dead_letters.items()}
    assert reasons[1][0] == b"invalid_field"
    assert b"transactional_message_id" in reasons[1][1]
    assert reasons[2][0] == b"invalid_field"
    assert b"properties.message_data" in reasons[2][1]
    assert reasons[3][0] == b"limit_exceeded"
    assert b"properties.to" in reasons[3][1]
    assert set(reasons) == {1, 2, 3}
    assert [email["message"]["transactional_message_id"] for email in fake.state.emails] == ["²", 7]


@pytest.mark.parametrize("bad", [b" 12", b"1_000", "١٢".encode(), b"9" * 40, b""])
async def test_origin_headers_with_anything_but_ascii_digits_are_ignored(fake: FakeCustomerIO, bad: bytes) -> None:
    """A replayed record keeps its origin's dedup id only when every origin header is plain digits; int()
    alone took " 12" and "1_000", seeding the id from a position that was never the record's."""
    message = {"type": "track", "event": "Order", "userId": "u-1", "timestamp": "2025-01-01T00:00:00Z"}
    good = (("cio-origin-topic", b"orig"), ("cio-origin-partition", b"3"), ("cio-origin-offset", b"1000"))
    stamp = ("cio-origin-timestamp", b"5")
    records = [
        record(0, orjson.dumps(message), headers=(*good, stamp)),
        record(1, orjson.dumps(message), headers=(*good[:2], ("cio-origin-offset", bad), stamp)),
    ]
    await run_sink(fake, records)

    ids = [entry["operation"]["id"] for entry in fake.state.operations_for(FAKE.name)]
    ms = 1_735_689_600_000
    assert ids == [
        record_ulid(MessageContext("orig", 3, 1000, 0, 5), ms),
        record_ulid(MessageContext(EVENTS, 0, 1, 0, records[1].timestamp_ms), ms),
    ]
