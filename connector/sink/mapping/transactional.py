"""Transactional email: a Segment ``track`` event → one App API ``POST /v1/send/email`` (Customer.io's
App API docs, "Send a transactional email").

``build_send_email`` is pure: it validates the event's ``properties`` and returns the request body or a
Rejection. Every property is read by its snake_case name or its camelCase twin
(``transactional_message_id`` / ``transactionalMessageId``):

    transactional_message_id  required; an int template id, or a trigger name (a string of digits
                              becomes an int id)
    to                        required (or ``recipient`` / ``email``); a string or a list of strings;
                              at most 15 addresses
    identifiers               an object with exactly one of id / email / cio_id; default from ``userId``
                              (email-looking → email, ``cio_`` prefix → cio_id without it, else id)
    message_data              object for Liquid; {} when absent (other properties are NOT copied in, so
                              routing fields never leak into templates)
    from, subject, reply_to, language                strings
    send_at                   Unix seconds (ms accepted) or an ISO-8601 string → int seconds
    disable_message_retention, send_to_unsubscribed, tracked, queue_draft      booleans

The sender (rate limit, retries, delivery ids) is ``connector.sink.transactional_sender``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from connector.sink.mapping.model import Message, Rejection
from connector.sink.mapping.timestamps import to_unix_ms

MAX_RECIPIENTS = 15
MAX_BODY_BYTES = 2048 * 1024
STRING_FIELDS = ("from", "subject", "reply_to", "language")
BOOL_FIELDS = ("disable_message_retention", "send_to_unsubscribed", "tracked", "queue_draft")
IDENTIFIER_KEYS = frozenset({"id", "email", "cio_id"})

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_RECIPIENT_SEPARATOR = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')  # commas outside "display names"
_MISSING = object()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _get(props: dict[str, Any], name: str) -> Any:
    """``props[name]``, else its camelCase twin, else _MISSING (None counts as missing)."""
    value = props.get(name)
    if value is None:
        value = props.get(_camel(name))
    return _MISSING if value is None else value


def build_send_email(message: Message) -> bytes | Rejection:
    """The ``/v1/send/email`` body for a transactional track event, or a Rejection naming the field.

    Reasons: ``missing_field`` / ``invalid_field`` for the template id, ``to`` and the optional fields;
    ``missing_identifier`` / ``invalid_identifier`` for the person; ``invalid_timestamp`` for ``send_at``;
    ``limit_exceeded`` for more than 15 recipients; ``too_large`` above 2048 KB.
    """
    props = message.get("properties")
    if not isinstance(props, dict):
        return Rejection("missing_field", "properties: required (an object)")
    body: dict[str, Any] = {}

    template = _get(props, "transactional_message_id")
    if template is _MISSING:
        return Rejection("missing_field", "properties.transactional_message_id: required")
    if isinstance(template, str) and template.strip().isdigit():
        template = int(template.strip())
    valid_id = isinstance(template, int) and not isinstance(template, bool) and template > 0
    valid_name = isinstance(template, str) and template.strip() != ""
    if not (valid_id or valid_name):
        return Rejection("invalid_field", "properties.transactional_message_id: must be a positive integer or a name")
    body["transactional_message_id"] = template

    to = _recipients(props)
    if isinstance(to, Rejection):
        return to
    body["to"] = to

    identifiers = _identifiers(props, message.get("userId"))
    if isinstance(identifiers, Rejection):
        return identifiers
    body["identifiers"] = identifiers

    data = _get(props, "message_data")
    if data is _MISSING:
        data = {}
    if not isinstance(data, dict):
        return Rejection("invalid_field", "properties.message_data: must be an object")
    body["message_data"] = data

    for names, kind, wanted in ((STRING_FIELDS, str, "a string"), (BOOL_FIELDS, bool, "true or false")):
        for name in names:
            value = _get(props, name)
            if value is _MISSING:
                continue
            if not isinstance(value, kind):
                return Rejection("invalid_field", f"properties.{name}: must be {wanted}")
            body[name] = value

    send_at = _get(props, "send_at")
    if send_at is not _MISSING:
        ms = to_unix_ms(send_at)  # the same reading of ISO-8601, seconds and ms as message timestamps
        seconds = None if ms is None or ms < 0 else ms // 1000
        if seconds is None:
            return Rejection("invalid_timestamp", "properties.send_at: must be Unix seconds or an ISO-8601 time")
        body["send_at"] = seconds

    encoded = orjson.dumps(body)
    if len(encoded) > MAX_BODY_BYTES:
        return Rejection("too_large", f"send_email body is {len(encoded)} bytes (limit {MAX_BODY_BYTES})")
    return encoded


def _recipients(props: dict[str, Any]) -> str | Rejection:
    for name in ("to", "recipient", "email"):
        value = _get(props, name)
        if value is not _MISSING:
            break
    else:
        return Rejection("missing_field", "properties.to: required")
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = ", ".join(v.strip() for v in value)
    if not isinstance(value, str) or not value.strip():
        return Rejection("invalid_field", f"properties.{name}: must be a non-empty string or list of strings")
    count = sum(1 for part in _RECIPIENT_SEPARATOR.split(value) if part.strip())
    if count > MAX_RECIPIENTS:
        return Rejection("limit_exceeded", f"properties.{name}: {count} recipients (at most {MAX_RECIPIENTS})")
    return value.strip()


def _identifiers(props: dict[str, Any], user_id: Any) -> dict[str, str] | Rejection:
    given = _get(props, "identifiers")
    if given is _MISSING:
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not isinstance(user_id, str) or not user_id.strip():
            return Rejection("missing_identifier", "properties.identifiers or userId: required")
        user_id = user_id.strip()
        if _EMAIL.fullmatch(user_id):
            return {"email": user_id}
        if user_id.startswith("cio_") and len(user_id) > 4:
            return {"cio_id": user_id[4:]}
        return {"id": user_id}
    if not isinstance(given, dict) or len(given) != 1 or not IDENTIFIER_KEYS.issuperset(given):
        return Rejection("invalid_identifier", "properties.identifiers: must hold exactly one of id, email, cio_id")
    ((key, value),) = given.items()
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return Rejection("invalid_identifier", f"properties.identifiers.{key}: must be a non-empty string")
    return {key: value.strip()}
