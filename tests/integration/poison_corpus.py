"""Hostile Kafka records for the poison-record suite: hand-picked extremes and a Hypothesis strategy.

Every record is ``(key, value, headers)`` as the producer takes them. Nothing here talks to Kafka.
The extremes are the inputs that once stopped the sink (a dead letter too large to write, ``int()`` on a
Unicode digit, JSON nested past what orjson re-encodes, quadratic regexes) plus their neighbours.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

Headers = tuple[tuple[str, bytes], ...]
KafkaRecord = tuple[bytes | None, bytes | None, Headers]

# Within the broker's default message.max.bytes (1,048,588) with room for the record's own overhead; its
# dead-letter copy with the reason headers added is over the producer's default max_request_size.
NEAR_BROKER_LIMIT = 1_048_400
TRANSACTIONAL_EVENT = "Transactional Email Requested"
ODD_NUMBERS = ("²", "١٢٣", "１２", "1_000", " 7", "7 ", "+7", "-0", "0x1f", "1e3", "", "NaN", "Infinity")


def nested_json_text(depth: int) -> bytes:
    """JSON text nested ``depth`` arrays deep, written by hand (no encoder would write it)."""
    return b'{"type":"track","userId":"u","event":"deep","properties":{"p":' + b"[" * depth + b"]" * depth + b"}}"


def track(user: str, event: str = "Poison Probe", **properties: Any) -> dict[str, Any]:
    """A valid Segment track message."""
    return {"type": "track", "userId": user, "event": event, "properties": properties}


def transactional(**properties: Any) -> dict[str, Any]:
    """A transactional-email track message with the given properties."""
    return {"type": "track", "userId": "txn-user", "event": TRANSACTIONAL_EVENT, "properties": properties}


DEEP = "__deep__"


def _json(message: object, depth: int = 0) -> bytes:
    """``message`` as JSON, with the string DEEP replaced by an object ``depth`` levels deep (past what
    orjson itself writes)."""
    text = orjson.dumps(message)
    return text.replace(b'"' + DEEP.encode() + b'"', b'{"a":' * depth + b"1" + b"}" * depth) if depth else text


ODD_HEADERS: tuple[Headers, ...] = (
    (("cio-origin-topic", b"\xff\xfe"), ("cio-origin-partition", b"0"), ("cio-origin-offset", b"1")),
    (("cio-origin-topic", b"t"), ("cio-origin-partition", "²".encode()), ("cio-origin-offset", "١".encode())),
    (("cio-origin-topic", b"t"), ("cio-origin-offset", b"99999999999999999999999999999")),
    (("cio-origin-timestamp", b"-1"), ("cio-origin-topic", b""), ("cio-origin-partition", b"-5")),
    (("cio-workspace", b"\xff"), ("cio-workspace", b"nope")),
    (("cio-workspace", b"x" * 100_000),),
    (("cio-dlq-reason", b"not_json"), ("cio-dlq-source-offset", b"abc")),
    (("", b""), ("", b"\x00")),
    tuple((f"h{i}", b"v") for i in range(500)),
)


def extremes() -> list[KafkaRecord]:
    """The hand-picked hostile records, each followed in the suite by valid ones."""
    records: list[KafkaRecord] = [
        (b"big-not-json", b"x" * NEAR_BROKER_LIMIT, ()),
        (b"big-json", _json(track("big", blob="y" * (NEAR_BROKER_LIMIT - 200))), ()),
        (b"empty", b"", ()),
        (b"null", None, ()),
        (b"one-byte", b"{", ()),
        (b"deep-2000", nested_json_text(2000), ()),
        (b"deep-300", _json(track("deep", p=DEEP), 300), ()),
        (b"deep-traits", _json({"type": "identify", "userId": "d", "traits": {"t": DEEP}}, 260), ()),
        (b"nan", b'{"type":"track","userId":"n","event":"e","properties":{"x":NaN}}', ()),
        (b"huge-int", b'{"type":"track","userId":"h","event":"e","properties":{"x":' + b"9" * 400 + b"}}", ()),
        (b"int64-edge", _json(track("i", x=2**63 - 1, y=-(2**63))), ()),
        (b"bad-utf8", b'{"type":"track","userId":"\xc3\x28","event":"e"}', ()),
        (b"surrogate", b'{"type":"track","userId":"\\ud800","event":"e"}', ()),
        (b"long-user", _json(track("u" * 200_000)), ()),
        (b"long-email", _json({"type": "identify", "userId": "a@" * 80_000, "traits": {}}), ()),
        (b"long-event", _json(track("e", "E" * 200_000)), ()),
        (b"batch", _json({"type": "batch", "batch": [track(f"b{i}") for i in range(2_000)]}), ()),
        (b"batch-junk", _json({"type": "batch", "batch": [1, None, "x", [], {"type": "nope"}]}), ()),
        (b"not-object", b"[1,2,3]", ()),
        (b"string", b'"track"', ()),
        (b"bom", b"\xef\xbb\xbf" + _json(track("bom")), ()),
        (b"nul", _json(track("nul\x00user", "ev\x00nt")), ()),
    ]
    for odd in ODD_NUMBERS:
        records.append((b"odd-ts", _json({**track("t"), "timestamp": odd}), ()))
        records.append((b"odd-sent", _json({**track("t"), "sentAt": odd, "timestamp": odd}), ()))
        records.append((b"odd-id", _json({"type": "identify", "userId": odd, "traits": {"created_at": odd}}), ()))
    for i, headers in enumerate(ODD_HEADERS):
        records.append((f"headers-{i}".encode(), _json(track(f"h{i}")), headers))
    records.append((b"\xff\xfe", _json(track("badkey")), ()))
    return records


def transactional_extremes() -> list[KafkaRecord]:
    """Hostile transactional-email records (the topic's other records are plain events)."""
    sends: list[dict[str, Any]] = [
        *(transactional(transactional_message_id=odd, to="a@example.com") for odd in ODD_NUMBERS),
        transactional(transactional_message_id=-(2**63), to="a@example.com"),
        transactional(transactional_message_id=1, to="a" * 160_000),
        transactional(transactional_message_id=1, to='"' * 160_000),
        transactional(transactional_message_id=1, to="," * 160_000),
        transactional(transactional_message_id=1, to=["x@example.com"] * 10_000),
        transactional(transactional_message_id=1, to="a@example.com", send_at="²"),
        transactional(transactional_message_id=1, to="a@example.com", identifiers={"id": "x" * 200_000}),
        transactional(transactional_message_id=1, to="a@example.com", identifiers={"email": "@" * 100_000}),
        transactional(transactional_message_id="Welcome", to="ok@example.com", message_data={"n": 1}),
        {**transactional(transactional_message_id=1, to="a@example.com"), "userId": "cio_" + "9" * 100_000},
        {**transactional(transactional_message_id=1, to="a@example.com"), "userId": "a@" * 80_000},
    ]
    records: list[KafkaRecord] = [(b"txn", _json(send), ()) for send in sends]
    deep = transactional(transactional_message_id=1, to="a@example.com", message_data={"d": DEEP})
    records.append((b"txn-deep", _json(deep, 300), ()))
    # Integers past 64 bits, which no JSON encoder here writes: spliced into the text by hand.
    for field in ("transactional_message_id", "send_at"):
        text = _json(transactional(transactional_message_id=1, to="a@example.com", send_at=1)).decode()
        records.append((b"txn-bigint", text.replace(f'"{field}":1', f'"{field}":{2**64}').encode(), ()))
    return records


# --- Hypothesis: arbitrary records -------------------------------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(ODD_NUMBERS),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_field_names = st.sampled_from(
    [
        "type",
        "userId",
        "anonymousId",
        "event",
        "name",
        "traits",
        "properties",
        "context",
        "timestamp",
        "sentAt",
        "messageId",
        "groupId",
        "previousId",
        "batch",
        "integrations",
    ]
)
_message_types = st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "batch", "nope", ""])


@st.composite
def segment_like(draw: st.DrawFn) -> dict[str, Any]:
    """A message shaped like Segment's, with any field holding any JSON value."""
    message: dict[str, Any] = draw(st.dictionaries(_field_names, _json_value, max_size=6))
    if draw(st.booleans()):
        message["type"] = draw(_message_types)
    if draw(st.booleans()):
        message["userId"] = draw(st.one_of(st.text(max_size=20), st.sampled_from(ODD_NUMBERS)))
    if message.get("type") == "track" and draw(st.booleans()):
        message["event"] = TRANSACTIONAL_EVENT
        message["properties"] = draw(
            st.dictionaries(
                st.sampled_from(["transactional_message_id", "to", "message_data", "send_at", "identifiers"]),
                _json_value,
                max_size=5,
            )
        )
    return message


_header = st.tuples(
    st.sampled_from(["cio-origin-topic", "cio-origin-partition", "cio-origin-offset", "cio-workspace", "x", ""]),
    st.binary(max_size=30),
)

kafka_values = st.one_of(
    segment_like().map(orjson.dumps),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.none(),
)

kafka_records = st.tuples(
    st.one_of(st.none(), st.binary(max_size=20)),
    kafka_values,
    st.lists(_header, max_size=4).map(tuple),
).filter(lambda record: record[0] is not None or record[1] is not None)  # aiokafka writes no record without both
