"""Identifier kinds read from a value's shape, and the order keys derived from them (pure)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import MappingSettings
from connector.sink.mapping.decode import decode_record
from connector.sink.mapping.identifiers import anonymous, identifier_value, looks_like_email, person
from connector.sink.mapping.mapper import map_message
from connector.sink.mapping.model import MessageContext, Rejection
from connector.sink.mapping.validation import Invalid

CTX = MessageContext(topic="events", partition=0, offset=7, index=0, timestamp_ms=1_735_689_600_000)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("42", ({"id": "42"}, "id:42")),
        ("Ana@Example.COM", ({"email": "Ana@Example.COM"}, "email:ana@example.com")),
        ("cio_03000001", ({"cio_id": "03000001"}, "cio_id:03000001")),
        ("user@tenant", ({"id": "user@tenant"}, "id:user@tenant")),  # no dot in the domain: an id
        ("a b@c.io", ({"id": "a b@c.io"}, "id:a b@c.io")),
        ("@c.io", ({"id": "@c.io"}, "id:@c.io")),
        ("a@b@c.io", ({"id": "a@b@c.io"}, "id:a@b@c.io")),
        ("a@c.", ({"id": "a@c."}, "id:a@c.")),
    ],
)
def test_kind_from_shape(value: str, expected: tuple[dict[str, str], str]) -> None:
    """cio_ prefix → cio_id, email-looking → email (key lower-cased), else id."""
    assert person(value, "userId") == expected
    assert looks_like_email(value) is ("email" in expected[0])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("", None), ("   ", None), (42, "42"), (42.0, "42"), (1.5, "1.5"), (-7, "-7"), ("x", "x")],
)
def test_identifier_values(raw: object, expected: str | None) -> None:
    """Strings as they are, numbers as Segment prints them; empty or blank is absent."""
    assert identifier_value(raw, "userId") == expected


@pytest.mark.parametrize("raw", [True, {}, [], float("nan"), 2**80, "x" * 151])
def test_bad_identifier_values(raw: object) -> None:
    """Other types, non-finite or out-of-range numbers and values over 150 bytes are refused."""
    with pytest.raises(Invalid, match=r"^userId: "):
        identifier_value(raw, "userId")


def test_anonymous_identifiers() -> None:
    """The single place choosing {"anonymous_id": …} (unconfirmed in Customer.io's spec)."""
    assert anonymous("a-1") == ({"anonymous_id": "a-1"}, "anon:a-1")


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(10**30), max_value=10**30) | st.integers(2**53 - 4, 2**66))
def test_a_numeric_user_id_is_sent_exactly_or_refused(number: int) -> None:
    """A JSON number userId reaches Customer.io as exactly its digits, or is dead-lettered: never another person.

    Integers past 64 bits are read as doubles by the JSON decoder, which rounds them (18446744073709551617
    reads as …616): sending the rounded digits would merge two people.
    """
    record = b'{"type": "track", "event": "E", "userId": ' + str(number).encode() + b"}"
    decoded = decode_record(record)
    assert isinstance(decoded, list)
    result = map_message(decoded[0], CTX, MappingSettings())
    if isinstance(result, Rejection):
        assert result.reason == "invalid_identifier"
        assert result.message.startswith("userId: ")
        assert "string" in result.message  # says how to send it instead
    else:
        assert isinstance(result, tuple)
        assert orjson.loads(result[0].body)["identifiers"] == {"id": str(number)}


def test_an_integer_float_past_2_53_is_refused() -> None:
    """9007199254740993.0 is read as …992: the value the producer wrote is lost, so it is refused."""
    with pytest.raises(Invalid, match=r"^userId: .*string"):
        identifier_value(9007199254740993.0, "userId")
