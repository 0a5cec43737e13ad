"""Who an operation is about: Customer.io identifiers and the order key derived from them (pure).

A person is addressed by exactly one of ``id``, ``email`` or ``cio_id`` (Customer.io's docs,
"Identifying people"). A value's
kind is read from its shape, as Segment and Customer.io's v1 paths do: ``cio_<x>`` → ``cio_id: x``,
email-looking → ``email``, anything else → ``id``. Values of email fields (``traits.email``) are always
``email``. The order key (``id:42``, ``email:a@b.c`` lower-cased since email matching is
case-insensitive, ``cio_id:x``, ``anon:xyz``) keeps one person's operations in order downstream.
"""

from __future__ import annotations

import math
from typing import Any, Final

from connector.sink.mapping.validation import (
    MAX_IDENTIFIER_BYTES,
    Invalid,
    check_identifier,
    get_object,
    json_type,
    show,
)

Identity = tuple[dict[str, str], str]  # (v2 ``identifiers`` object, order key)

_INT64_MIN: Final = -(2**63)
_UINT64_END: Final = 2**64
# Doubles are exact integers only below 2**53. Past it a JSON decoder has already rounded the digits the
# producer wrote (orjson reads integers beyond 64 bits as doubles: 18446744073709551617 → …616), so the
# string sent would name another person.
_EXACT_FLOAT_END: Final = 2.0**53


def looks_like_email(value: str) -> bool:
    """Whether ``value`` has the shape ``local@domain.tld`` (no spaces, one ``@``, a dot in the domain)."""
    at = value.find("@")
    if at <= 0 or " " in value:
        return False
    domain = value[at + 1 :]
    dot = domain.find(".")
    return 0 < dot < len(domain) - 1 and "@" not in domain


def identifier_value(raw: Any, field: str) -> str | None:
    """A string or number identifier as a string; None when absent, empty or blank.

    Numbers become strings as Segment does (``42`` and ``42.0`` → ``"42"``). Raises ``Invalid`` for any
    other type, for values over 150 bytes and for floats of 2**53 or more (their digits may be rounded).
    """
    if type(raw) is str:  # the hot path: one type check, no further calls for short ids
        value = raw
    elif raw is None:
        return None
    else:
        value = _number(raw, field)
    if not value or value.isspace():
        return None
    if len(value) * 4 > MAX_IDENTIFIER_BYTES:
        check_identifier(value, field)
    return value


def _number(raw: Any, field: str) -> str:
    if isinstance(raw, str):
        return str(raw)  # a str subclass
    if isinstance(raw, bool):
        raise Invalid("invalid_identifier", f"{field}: must be a string or number (got boolean)")
    if isinstance(raw, int):
        if not _INT64_MIN <= raw < _UINT64_END:
            raise Invalid("invalid_identifier", f"{field}: number out of range")
        return str(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise Invalid("invalid_identifier", f"{field}: must be a finite number")
        if abs(raw) >= _EXACT_FLOAT_END:
            raise Invalid(
                "invalid_identifier",
                f"{field}: number too large to read exactly ({raw!r}, 2^53 or more): send it as a string",
            )
        return str(int(raw)) if raw.is_integer() else repr(raw)
    raise Invalid("invalid_identifier", f"{field}: must be a string or number (got {json_type(raw)})")


def email_value(raw: Any, field: str) -> str | None:
    """An email field's value (a string); None when absent or empty."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise Invalid("invalid_identifier", f"{field}: must be a string (got {json_type(raw)})")
    if not raw or raw.isspace():
        return None
    return check_identifier(str(raw), field)


def person(value: str, field: str) -> Identity:
    """The person identified by ``value``, its kind read from its shape."""
    if value[:4] == "cio_":
        cio_id = value[4:]
        if not cio_id or cio_id.isspace():
            raise Invalid("invalid_identifier", f"{field}: empty cio_id after the cio_ prefix")
        return {"cio_id": cio_id}, "cio_id:" + cio_id
    if "@" in value and looks_like_email(value):
        return {"email": value}, "email:" + value.lower()
    return {"id": value}, "id:" + value


def order_key(identifiers: dict[str, str]) -> str:
    """The order key of a person named by one validated identifier (``{"id": …}``, a merge's ``secondary``):
    the key ``person`` (and a v2 message's identifiers) give the same person, so both land in one lane."""
    ((kind, value),) = identifiers.items()
    if kind == "anonymous_id":
        return anonymous(value)[1]
    return f"{kind}:{value.lower() if kind == 'email' else value}"


def sender(message: dict[str, Any]) -> Identity | None:
    """The known person a track/page/screen/group message is about: ``userId``, else
    ``context.traits.email``; None when it is anonymous."""
    user_id = identifier_value(message.get("userId"), "userId")
    if user_id is not None:
        return person(user_id, "userId")
    context = get_object(message, "context", "context")
    traits = get_object(context, "traits", "context.traits") if context else None
    email = email_value(traits.get("email"), "context.traits.email") if traits else None
    return None if email is None else by_email(email)


def anonymous_sender(message: dict[str, Any], kind: str) -> Identity:
    """The anonymous person (``anonymousId``) of a message that has no known one."""
    anonymous_id = identifier_value(message.get("anonymousId"), "anonymousId")
    if anonymous_id is None:
        raise Invalid("missing_identifier", f"userId: required (or anonymousId) for {kind}")
    return anonymous(anonymous_id)


def by_email(email: str) -> Identity:
    """The person whose email is ``email``."""
    return {"email": email}, "email:" + email.lower()


def anonymous(anonymous_id: str) -> Identity:
    """Identifiers of an anonymous person, for events and object relationships.

    ``{"anonymous_id": …}`` is what Segment sends to v2; it is not in Customer.io's spec
    (unconfirmed: the Track API v2 batch reference does not list it). This is the one place that makes
    that choice.
    """
    return {"anonymous_id": anonymous_id}, "anon:" + anonymous_id


def object_type_id(raw: Any, field: str) -> str:
    """A group's object type id: a positive integer, as a string (``2`` and ``"02"`` → ``"2"``)."""
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if isinstance(text, str) and text.isascii() and text.isdigit() and 0 < len(text) <= 18 and int(text) > 0:
        return str(int(text))
    raise Invalid("invalid_field", f"{field}: must be a positive integer (got {show(raw)})")
