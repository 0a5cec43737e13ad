"""Rules of the Track API v1 bodies and the App API transactional email (Customer.io's API docs). Pure.

Same contract as ``rules``: ``None`` when acceptable, else the first broken rule as a ``RuleError``.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Final

from connector.fake_cio.rules import (
    DEVICE_PLATFORMS,
    PROFILE_IDENTIFIERS,
    RuleError,
    check_attributes,
    check_device_attributes,
    check_event_data,
    check_event_name,
    check_identifier,
    check_merge_sides,
    check_one_identifier,
    check_timestamp,
    check_ulid,
    error,
)

V1_EVENT_TYPES: Final = frozenset({"event", "page", "screen"})
SEGMENT_ID_TYPES: Final = frozenset({"id", "email", "cio_id"})
MAX_SEGMENT_IDS: Final = 1000
_INT32_MAX: Final = 2**31 - 1
# /api/v1/metrics: every channel's metric enum (email and webhook have all eight) [spec].
METRICS: Final = frozenset({"bounced", "clicked", "converted", "deferred", "delivered", "dropped", "opened", "spammed"})
MAX_TRANSACTIONAL_RECIPIENTS: Final = 15
MAX_TRANSACTIONAL_BYTES: Final = 2048 * 1024
MAX_ATTACHMENTS_BYTES: Final = 2 * 1024 * 1024  # "attachments … total < 2 MB" (of the base64 text)
MAX_SEND_AHEAD_SECONDS: Final = 90 * 86_400  # send_at "up to 90 days ahead" [spec]; the 400 past it is ASSUMED

_NOT_AN_OBJECT: Final = error("invalid_json", "", "body must be a JSON object")


def check_v1_identify(identifier: str, body: object) -> RuleError | None:
    """``PUT /api/v1/customers/{identifier}``: a flat object of attributes."""
    if problem := check_identifier(identifier, "identifier"):
        return problem
    return check_attributes(body, "body") if isinstance(body, dict) else _NOT_AN_OBJECT


def check_v1_event(identifier: str | None, body: object) -> RuleError | None:
    """``POST /api/v1/customers/{identifier}/events``, or ``/api/v1/events`` when ``identifier`` is None."""
    if identifier is not None and (problem := check_identifier(identifier, "identifier")):
        return problem
    if not isinstance(body, dict):
        return _NOT_AN_OBJECT
    if problem := check_event_name(body.get("name")):
        return problem
    if body.get("type", "event") not in V1_EVENT_TYPES:
        return error("invalid_field", "type", "must be event, page or screen")
    if "timestamp" in body and (problem := check_timestamp(body["timestamp"], "timestamp")):
        return problem
    if "id" in body and (problem := check_ulid(body["id"])):
        return problem
    # Without an anonymous_id an anonymous event is an "invite" event [spec]; with one it must be usable.
    anonymous_id = body.get("anonymous_id")
    if identifier is None and anonymous_id not in (None, ""):
        problem = check_identifier(anonymous_id, "anonymous_id")
    return problem or check_event_data(body.get("data"), "data")


def check_v1_device(identifier: str, body: object) -> RuleError | None:
    """``PUT /api/v1/customers/{identifier}/devices``: ``{"device": {id, platform, last_used?, attributes?}}``."""
    if problem := check_identifier(identifier, "identifier"):
        return problem
    if not isinstance(body, dict):
        return _NOT_AN_OBJECT
    device = body.get("device")
    if not isinstance(device, dict):
        return error("missing_field", "device", "device object is required")
    token = device.get("id")
    if not isinstance(token, str) or not token.strip():
        return error("missing_field", "device.id", "device id (the push token) is required")
    if device.get("platform") not in DEVICE_PLATFORMS:
        return error("invalid_field", "device.platform", "must be ios or android")
    if "last_used" in device and (problem := check_timestamp(device["last_used"], "device.last_used")):
        return problem
    return check_device_attributes(device.get("attributes"))


def check_v1_delete_device(identifier: str, token: str) -> RuleError | None:
    """``DELETE /api/v1/customers/{identifier}/devices/{token}``."""
    if problem := check_identifier(identifier, "identifier"):
        return problem
    return None if token.strip() else error("missing_field", "device_id", "device token is required")


def check_v1_merge(body: object) -> RuleError | None:
    """``POST /api/v1/merge_customers``: primary and secondary, one identifier each."""
    return check_merge_sides(body) if isinstance(body, dict) else _NOT_AN_OBJECT


def parse_segment_id(raw: str) -> int | None:
    """The ``{segment_id}`` path parameter: a positive int32, else None."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 0 < value <= _INT32_MAX else None


def check_v1_segment(segment_id: str, id_type: str | None, body: object) -> RuleError | None:
    """``POST /api/v1/segments/{segment_id}/add_customers|remove_customers?id_type=…``: ``{"ids": [1..1000 strings]}``."""
    if parse_segment_id(segment_id) is None:
        return error("invalid_field", "segment_id", "must be a positive integer")
    if id_type is not None and id_type not in SEGMENT_ID_TYPES:
        return error("invalid_field", "id_type", "must be id, email or cio_id")
    if not isinstance(body, dict):
        return _NOT_AN_OBJECT
    ids = body.get("ids")
    if not isinstance(ids, list):
        return error("missing_field", "ids", "ids array is required")
    if not 1 <= len(ids) <= MAX_SEGMENT_IDS:
        return error("limit_exceeded", "ids", f"must hold 1 to {MAX_SEGMENT_IDS} ids")
    for index, value in enumerate(ids):
        if problem := check_identifier(value, f"ids[{index}]"):
            return problem
    return None


def check_v1_metric(body: object) -> RuleError | None:
    """``POST /api/v1/metrics``: ``delivery_id`` and ``metric`` required; ``timestamp`` Unix s; the rest strings."""
    if not isinstance(body, dict):
        return _NOT_AN_OBJECT
    if problem := check_identifier(body.get("delivery_id"), "delivery_id"):
        return (
            error("missing_field", "delivery_id", "delivery_id is required") if "delivery_id" not in body else problem
        )
    metric = body.get("metric")
    if metric is None:
        return error("missing_field", "metric", "metric is required")
    if metric not in METRICS:
        return error("invalid_field", "metric", "must be one of " + ", ".join(sorted(METRICS)))
    if "timestamp" in body and (problem := check_timestamp(body["timestamp"], "timestamp")):
        return problem
    for key in ("recipient", "reason", "href"):
        if key in body and not isinstance(body[key], str):
            return error("invalid_field", key, "must be a string")
    return None


def count_recipients(addresses: str) -> int:
    """Comma-separated addresses; commas inside quoted display names do not separate."""
    count, quoted, seen = 0, False, False
    for char in addresses:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            count, seen = count + seen, False
            continue
        seen = seen or not char.isspace()
    return count + seen


def check_transactional_email(body: object, size: int, now: float | None = None) -> RuleError | None:
    """``POST /v1/send/email``: recipients, one identifier, and a template id or an inline message;
    ``send_at`` at most 90 days after ``now`` (not checked without ``now``; a past one sends at once)."""
    if size > MAX_TRANSACTIONAL_BYTES:
        return error("too_large", "", f"request larger than {MAX_TRANSACTIONAL_BYTES} bytes")
    if not isinstance(body, dict):
        return _NOT_AN_OBJECT
    to = body.get("to")
    if not isinstance(to, str) or not to.strip():
        return error("missing_field", "to", "to is required")
    for field in ("cc", "bcc"):
        if field in body and not isinstance(body[field], str):
            return error("invalid_field", field, "must be a string of comma-separated addresses")
    recipients = sum(count_recipients(v) for k in ("to", "cc", "bcc") if isinstance(v := body.get(k), str))
    if recipients > MAX_TRANSACTIONAL_RECIPIENTS:
        return error("limit_exceeded", "to", f"more than {MAX_TRANSACTIONAL_RECIPIENTS} recipients in to+cc+bcc")
    if problem := check_one_identifier(body.get("identifiers"), "identifiers", PROFILE_IDENTIFIERS):
        return problem
    template = body.get("transactional_message_id")
    has_template = (type(template) is int and template > 0) or (isinstance(template, str) and bool(template.strip()))
    inline = all(isinstance(body.get(k), str) and body[k] for k in ("body", "subject", "from"))
    if not has_template and not inline:
        return error("missing_field", "transactional_message_id", "needs transactional_message_id or body+subject+from")
    if "message_data" in body and not isinstance(body["message_data"], dict):
        return error("invalid_field", "message_data", "must be an object")
    if "send_at" in body and (problem := check_timestamp(body["send_at"], "send_at")):
        return problem
    if now is not None and "send_at" in body and body["send_at"] > now + MAX_SEND_AHEAD_SECONDS:
        return error("invalid_field", "send_at", "must be at most 90 days ahead")
    return check_attachments(body.get("attachments"))


def check_attachments(attachments: object) -> RuleError | None:
    """``attachments``: ``{"file name": "<base64>"}``, the encoded contents together under 2 MB."""
    if attachments is None:
        return None
    if not isinstance(attachments, dict):
        return error("invalid_field", "attachments", "must be an object of file name to base64 content")
    if any(not isinstance(v, str) for v in attachments.values()):
        return error("invalid_field", "attachments", "each attachment must be a base64 string")
    if sum(len(v) for v in attachments.values()) >= MAX_ATTACHMENTS_BYTES:
        return error("too_large", "attachments", f"attachments total {MAX_ATTACHMENTS_BYTES} bytes or more")
    for content in attachments.values():
        try:
            b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return error("invalid_field", "attachments", "attachment content is not valid base64")
    return None
