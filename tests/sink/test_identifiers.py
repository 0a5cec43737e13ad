"""Identifier kinds read from a value's shape, and the order keys derived from them (pure)."""

from __future__ import annotations

import pytest

from connector.sink.mapping.identifiers import anonymous, identifier_value, looks_like_email, person
from connector.sink.mapping.validation import Invalid


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
