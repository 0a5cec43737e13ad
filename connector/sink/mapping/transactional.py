"""Transactional email: a Segment ``track`` event → one App API ``POST /v1/send/email`` (Customer.io's
App API docs, "Send a transactional email").

``build_send_email`` is pure: it validates the event's ``properties`` and returns the request body or a
Rejection. Every property is read by its snake_case name or its camelCase twin
(``transactional_message_id`` / ``transactionalMessageId``):

    transactional_message_id  required; an int template id below 2⁶⁴, or a trigger name (a string of
                              ASCII digits becomes an int id)
    to                        required (or ``recipient`` / ``email``); a string or a list of strings
    cc, bcc                   optional; a string or a list of strings, like ``to``; at most 15
                              addresses in to+cc+bcc together (the App API's limit)
    attachments               optional; an object ``{"file name": "<base64 of the file>"}``, the
                              encoded contents together under 2 MB (the App API's limit); standard
                              base64 with padding, checked here so a bad file is a dead letter naming
                              it, not a 400 for the whole send
    identifiers               an object with exactly one of id / email / cio_id; default from ``userId``
                              (email-looking → email, ``cio_`` prefix → cio_id without it, else id:
                              the sink's own classification, ``connector.sink.mapping.identifiers``); values
                              within Customer.io's 150-byte identifier limit
    message_data              object for Liquid; {} when absent (other properties are NOT copied in, so
                              routing fields never leak into templates)
    from, subject, reply_to, language                strings
    send_at                   Unix seconds (ms accepted) or an ISO-8601 string → int seconds
    disable_message_retention, send_to_unsubscribed, tracked, queue_draft      booleans

``build_send_email`` never raises and runs in time linear in its input: no regex backtracks over a
field, and what orjson cannot encode (nesting past 254 levels, integers past 64 bits, lone surrogates)
is an ``invalid_field`` naming the property.

The sender (rate limit, retries, delivery ids) is ``connector.sink.transactional_sender``.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any

import orjson

from connector.sink.mapping import identifiers as ids
from connector.sink.mapping.model import Message, Rejection
from connector.sink.mapping.timestamps import to_unix_ms
from connector.sink.mapping.validation import Invalid, check_identifier, serialize, show

MAX_RECIPIENTS = 15
MAX_BODY_BYTES = 2048 * 1024
MAX_ATTACHMENTS_BYTES = 2 * 1024 * 1024  # "total < 2 MB", of the base64 text as sent
MAX_ATTACHMENT_NAME_CHARS = 255
RECIPIENT_FIELDS = ("to", "cc", "bcc")
STRING_FIELDS = ("from", "subject", "reply_to", "language")
BOOL_FIELDS = ("disable_message_retention", "send_to_unsubscribed", "tracked", "queue_draft")
IDENTIFIER_KEYS = frozenset({"id", "email", "cio_id"})
MAX_TO_CHARS = MAX_RECIPIENTS * 1024  # 15 addresses of ≤ 254 bytes, with display names to spare
MAX_TEMPLATE_ID = 2**64 - 1  # what a JSON body (and orjson) can carry
_MAX_TEMPLATE_DIGITS = len(str(MAX_TEMPLATE_ID))

_MISSING = object()
_TEMPLATE_OUT_OF_RANGE = Rejection(
    "invalid_field", f"properties.transactional_message_id: out of range (at most {MAX_TEMPLATE_ID})"
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _get(props: dict[str, Any], name: str) -> Any:
    """``props[name]``, else its camelCase twin, else _MISSING (None counts as missing)."""
    value = props.get(name)
    if value is None:
        value = props.get(_camel(name))
    return _MISSING if value is None else value


def build_send_email(message: Message) -> bytes | Rejection:  # noqa: C901 - one check per field of the App API body
    """The ``/v1/send/email`` body for a transactional track event, or a Rejection naming the field.

    Reasons: ``missing_field`` / ``invalid_field`` for the template id, ``to`` and the optional fields;
    ``missing_identifier`` / ``invalid_identifier`` for the person; ``invalid_timestamp`` for ``send_at``;
    ``limit_exceeded`` for more than 15 recipients in to+cc+bcc; ``too_large`` for attachments of 2 MB or
    more, or a body above 2048 KB.
    """
    props = message.get("properties")
    if not isinstance(props, dict):
        return Rejection("missing_field", "properties: required (an object)")
    body: dict[str, Any] = {}

    template = _get(props, "transactional_message_id")
    if template is _MISSING:
        return Rejection("missing_field", "properties.transactional_message_id: required")
    if isinstance(template, str):
        digits = template.strip()
        # ASCII only: str.isdigit() is also true of "²" and "١٢", which int() refuses or misreads.
        if digits.isascii() and digits.isdigit():
            if len(digits) > _MAX_TEMPLATE_DIGITS:  # int() of thousands of digits is slow, then refused
                return _TEMPLATE_OUT_OF_RANGE
            template = int(digits)
    if type(template) is int and template > MAX_TEMPLATE_ID:
        return _TEMPLATE_OUT_OF_RANGE
    valid_id = type(template) is int and template > 0
    valid_name = isinstance(template, str) and template.strip() != ""
    if not (valid_id or valid_name):
        return Rejection("invalid_field", "properties.transactional_message_id: must be a positive integer or a name")
    body["transactional_message_id"] = template

    recipients = _all_recipients(props)
    if isinstance(recipients, Rejection):
        return recipients
    body.update(recipients)

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

    attachments = _attachments(props)
    if isinstance(attachments, Rejection):
        return attachments
    if attachments is not None:
        body["attachments"] = attachments

    send_at = _get(props, "send_at")
    if send_at is not _MISSING:
        ms = to_unix_ms(send_at)  # the same reading of ISO-8601, seconds and ms as message timestamps
        seconds = None if ms is None or ms < 0 else ms // 1000
        if seconds is None:
            return Rejection("invalid_timestamp", "properties.send_at: must be Unix seconds or an ISO-8601 time")
        body["send_at"] = seconds

    try:
        encoded = orjson.dumps(body)
    except orjson.JSONEncodeError:
        return _unencodable(body)
    if len(encoded) > MAX_BODY_BYTES:
        return Rejection("too_large", f"send_email body is {len(encoded)} bytes (limit {MAX_BODY_BYTES})")
    return encoded


def _unencodable(body: dict[str, Any]) -> Rejection:
    """The ``invalid_field`` naming the first property orjson refuses (too deep, too big an int, a lone
    surrogate); its message is orjson's, which never quotes the value."""
    for name, value in body.items():
        try:
            serialize(value, f"properties.{name}")
        except Invalid as exc:
            return Rejection(exc.reason, exc.message)
    return Rejection("invalid_field", "properties: cannot be serialized")  # pragma: no cover - one field refuses


def _count_recipients(to: str) -> int:
    """The non-blank parts of ``to`` split at commas outside "display names", in linear time.

    A comma separates when an even number of quotes follows it: what the lookahead
    ``,(?=(?:[^"]*"[^"]*")*[^"]*$)`` tests, in quadratic time. Stops counting past MAX_RECIPIENTS.
    """
    segments = to.split('"')
    quotes = len(segments) - 1
    count = 0
    blank = True  # the part being read holds only whitespace so far
    for i, segment in enumerate(segments):
        if i:
            blank = False  # the quote before this segment belongs to the part
        if (quotes - i) % 2:  # an odd number of quotes follows: these commas are inside a display name
            blank = blank and (not segment or segment.isspace())
            continue
        for j, piece in enumerate(segment.split(",")):
            if j:
                count += not blank
                if count > MAX_RECIPIENTS:
                    return count
                blank = True
            blank = blank and (not piece or piece.isspace())
    return count + (not blank)


def _all_recipients(props: dict[str, Any]) -> dict[str, str] | Rejection:
    """``to`` (required), ``cc`` and ``bcc`` (optional), at most MAX_RECIPIENTS addresses in all three."""
    found: dict[str, str] = {}
    total = 0
    for field in RECIPIENT_FIELDS:
        names = ("to", "recipient", "email") if field == "to" else (field,)
        got = _recipients(props, names)
        if got is None:
            if field == "to":
                return Rejection("missing_field", "properties.to: required")
            continue
        if isinstance(got, Rejection):
            return got
        name, value = got
        total += _count_recipients(value)
        if total > MAX_RECIPIENTS:
            return Rejection(
                "limit_exceeded",
                f"properties.{name}: to+cc+bcc hold more than {MAX_RECIPIENTS} recipients (at most {MAX_RECIPIENTS})",
            )
        found[field] = value
    return found


def _recipients(props: dict[str, Any], names: tuple[str, ...]) -> tuple[str, str] | Rejection | None:
    """(property name, addresses) of the first of ``names`` present; None when none is."""
    for name in names:
        value = _get(props, name)
        if value is not _MISSING:
            break
    else:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = ", ".join(v.strip() for v in value)
    if not isinstance(value, str) or not value.strip():
        return Rejection("invalid_field", f"properties.{name}: must be a non-empty string or list of strings")
    if len(value) > MAX_TO_CHARS:
        return Rejection("limit_exceeded", f"properties.{name}: {len(value)} characters (at most {MAX_TO_CHARS})")
    return name, value.strip()


def _attachments(props: dict[str, Any]) -> dict[str, str] | Rejection | None:
    """``{"file name": base64}``: names non-blank, contents valid base64, all contents under 2 MB together."""
    given = _get(props, "attachments")
    if given is _MISSING or given == {}:
        return None
    if not isinstance(given, dict):
        return Rejection("invalid_field", "properties.attachments: must be an object of file name → base64 content")
    total = 0
    for name, content in given.items():
        if not name.strip() or len(name) > MAX_ATTACHMENT_NAME_CHARS:
            return Rejection(
                "invalid_field",
                f"properties.attachments: file name {show(name)} must be 1 to {MAX_ATTACHMENT_NAME_CHARS} characters",
            )
        if not isinstance(content, str):
            return Rejection("invalid_field", f"properties.attachments[{show(name)}]: must be a base64 string")
        total += len(content)
        if total >= MAX_ATTACHMENTS_BYTES:
            return Rejection(
                "too_large",
                f"properties.attachments: base64 contents total 2 MB or more (limit {MAX_ATTACHMENTS_BYTES} bytes)",
            )
        if not _is_base64(content):
            return Rejection("invalid_field", f"properties.attachments[{show(name)}]: not valid base64")
    return given


def _is_base64(text: str) -> bool:
    """Standard base64 with padding (what the App API decodes); no whitespace, no URL-safe alphabet."""
    if not text.isascii() or len(text) % 4:
        return False
    try:
        b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _identifiers(props: dict[str, Any], user_id: Any) -> dict[str, str] | Rejection:
    """The person, classified as the sink classifies ``userId`` (``identifiers.person``), or the given one."""
    given = _get(props, "identifiers")
    try:
        if given is _MISSING:
            value = ids.identifier_value(user_id, "userId")
            if value is None:
                return Rejection("missing_identifier", "properties.identifiers or userId: required")
            return ids.person(value.strip(), "userId")[0]
        if not isinstance(given, dict) or len(given) != 1 or not IDENTIFIER_KEYS.issuperset(given):
            return Rejection("invalid_identifier", "properties.identifiers: must hold exactly one of id, email, cio_id")
        ((key, raw),) = given.items()
        field = f"properties.identifiers.{key}"
        value = raw if isinstance(raw, str) else ids.identifier_value(raw, field) if raw is not None else None
        if value is None or not value.strip():
            return Rejection("invalid_identifier", f"{field}: must be a non-empty string")
        return {key: check_identifier(value.strip(), field)}
    except Invalid as exc:
        return Rejection(exc.reason, exc.message)
