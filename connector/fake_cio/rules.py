"""Customer.io's documented request rules, as pure checks (no I/O).

Every check returns ``None`` when the value is acceptable, or one ``RuleError`` — the
``{"reason", "field", "message"}`` triple of a v2 error item — for the first rule it breaks. The
server turns these into the v2 (``errors[]``), v1 (``meta.errors`` / ``meta.error``) or App API
(``meta.error``) bodies. Limits are those of Customer.io's Track API docs; the items those docs leave
*unconfirmed* are module constants flagged ``ASSUMED`` so they change in one place. v1 bodies and the
App API's transactional email are checked in ``rules_v1`` with the same building blocks.

Hot path: ``check_operation`` runs for every v2 operation (tens of thousands per second in the
benchmark), so it avoids regular expressions except for the one-per-operation ULID check, and measures
UTF-8 byte lengths only for strings long enough to possibly exceed a limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypedDict

import orjson


class RuleError(TypedDict):
    """One broken rule: a short machine reason, the offending field (dotted) and a sentence."""

    reason: str
    field: str
    message: str


# Limits [spec]. KB is read as 1000 bytes: the smaller reading, so whatever passes here passes there.
# Declared here, not imported from connector.sink.mapping.validation: the fake checks the documented rules
# independently of the code it tests, so a wrong limit in the connector cannot agree with itself.
MAX_BATCH_BYTES: Final = 500_000  # ASSUMED (1000 vs 1024); a larger body rejects the whole batch (400)
MAX_OPERATION_BYTES: Final = 32_000  # ASSUMED (1000 vs 1024); per v2 op and for /api/v2/entity
MAX_IDENTIFIER_BYTES: Final = 150
MAX_ATTRIBUTES: Final = 300
MAX_ATTRIBUTE_NAME_BYTES: Final = 150
MAX_ATTRIBUTE_VALUE_BYTES: Final = 1000
MAX_EVENT_NAME_BYTES: Final = 100
MAX_EVENT_DATA_BYTES: Final = 100_000
# ASSUMED: the ruby client's sanity check (10-digit seconds) [lib]; Customer.io documents no lower bound
# (backfills are a documented use), so a timestamp before 2001-09-09 is refused here only. Set the lower
# bound to -1 to accept every non-negative second.
MIN_TIMESTAMP_EXCLUSIVE: Final = 999_999_999
MAX_TIMESTAMP_EXCLUSIVE: Final = 100_000_000_000  # ASSUMED: [lib] same check; 10^11 s would be the year 5138
ACCEPT_ANONYMOUS_ID: Final = True  # ASSUMED: v2 {"anonymous_id"} identifiers on event/page/screen (Segment)
ATTRIBUTE_TIMESTAMPS: Final = ("created_at", "_timestamp")  # attributes that must be Unix seconds

# fmt: off
PERSON_ACTIONS: Final = frozenset({
    "identify", "event", "screen", "page", "delete", "add_device", "delete_device",
    "add_relationships", "delete_relationships", "merge", "suppress", "unsuppress",
})
# fmt: on
OBJECT_ACTIONS: Final = frozenset(
    {"identify", "identify_anonymous", "delete", "add_relationships", "delete_relationships"}
)
DELIVERY_ACTIONS: Final = frozenset({"event"})
PERSON_IDENTIFIERS: Final = frozenset({"id", "email", "cio_id", "phone"})
PROFILE_IDENTIFIERS: Final = frozenset({"id", "email", "cio_id"})  # merge sides, relationships, App API
DEVICE_PLATFORMS: Final = frozenset({"ios", "android"})
DELIVERY_METRICS: Final = frozenset({"opened", "converted", "delivered"})

_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_MISSING: Final = object()

Check = Callable[[dict[str, Any]], "RuleError | None"]


def error(reason: str, field: str, message: str) -> RuleError:
    """Build one error item."""
    return {"reason": reason, "field": field, "message": message}


def _too_long(value: str, limit: int) -> bool:
    # A character is at most 4 UTF-8 bytes, so short strings skip the encode.
    return len(value) * 4 > limit and len(value.encode()) > limit


def check_timestamp(value: object, field: str) -> RuleError | None:
    """Integer Unix seconds, 10 or 11 digits: milliseconds, floats, strings and booleans are rejected."""
    if type(value) is not int:
        return error("invalid_timestamp", field, "must be an integer Unix timestamp in seconds")
    if not MIN_TIMESTAMP_EXCLUSIVE < value < MAX_TIMESTAMP_EXCLUSIVE:
        return error("invalid_timestamp", field, f"{value} is not Unix seconds (milliseconds?)")
    return None


def check_identifier(value: object, field: str) -> RuleError | None:
    """A non-blank string of at most 150 bytes."""
    if type(value) is not str or not value.strip():
        return error("invalid_identifier", field, "must be a non-empty string")
    if _too_long(value, MAX_IDENTIFIER_BYTES):
        return error("limit_exceeded", field, f"longer than {MAX_IDENTIFIER_BYTES} bytes")
    return None


def check_ulid(value: object, field: str = "id") -> RuleError | None:
    """26 Crockford base32 characters, the first 0-7 (a 128-bit ULID); either case."""
    if type(value) is not str or len(value) != 26 or _ULID.fullmatch(value) is None:
        return error("invalid_id", field, "must be a ULID")
    return None


def check_one_identifier(
    identifiers: object, field: str, allowed: frozenset[str], extra: str | None = None
) -> RuleError | None:
    """Exactly one identifier among ``allowed`` (or ``extra``), with a valid value."""
    if type(identifiers) is not dict or not identifiers:
        return error("missing_identifier", field, "must be an object with one identifier")
    if len(identifiers) != 1:
        return error("multiple_identifiers", field, "exactly one identifier is allowed")
    ((key, value),) = identifiers.items()
    if key not in allowed and key != extra:
        return error("invalid_identifier", field, f"unknown identifier {key!r}")
    if key == "phone" and (type(value) is not str or _E164.fullmatch(value) is None):
        return error("invalid_identifier", f"{field}.phone", "must be an E.164 phone number")
    return check_identifier(value, f"{field}.{key}")


def check_object_identifiers(identifiers: object, field: str = "identifiers") -> RuleError | None:
    """``{object_type_id, object_id}`` (type id a string integer ≥ 1) or ``{cio_object_id}``."""
    if type(identifiers) is not dict or not identifiers:
        return error("missing_identifier", field, "must be an object identifier")
    if len(identifiers) == 1 and "cio_object_id" in identifiers:
        return check_identifier(identifiers["cio_object_id"], f"{field}.cio_object_id")
    if identifiers.keys() != {"object_type_id", "object_id"}:
        return error("invalid_identifier", field, "needs object_type_id and object_id, or cio_object_id")
    type_id = identifiers["object_type_id"]
    if type(type_id) is not str or not type_id.isascii() or not type_id.isdigit() or int(type_id) < 1:
        return error("invalid_identifier", f"{field}.object_type_id", 'must be a string integer ≥ "1"')
    return check_identifier(identifiers["object_id"], f"{field}.object_id")


def check_attributes(attributes: object, field: str = "attributes") -> RuleError | None:
    """Person/object/relationship attributes: ≤ 300, names ≤ 150 B, string values ≤ 1000 B, timestamps in s.

    Nested values are not measured one by one (their storage is unconfirmed); the operation's size
    bounds them.
    """
    if attributes is None:
        return None
    if type(attributes) is not dict:
        return error("invalid_field", field, "must be an object")
    if len(attributes) > MAX_ATTRIBUTES:
        return error("limit_exceeded", field, f"more than {MAX_ATTRIBUTES} attributes")
    for name, value in attributes.items():
        if _too_long(name, MAX_ATTRIBUTE_NAME_BYTES):
            return error("limit_exceeded", f"{field}.{name[:40]}", f"name longer than {MAX_ATTRIBUTE_NAME_BYTES} bytes")
        if type(value) is str and _too_long(value, MAX_ATTRIBUTE_VALUE_BYTES):
            return error("limit_exceeded", f"{field}.{name}", f"value longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
    for name in ATTRIBUTE_TIMESTAMPS:
        value = attributes.get(name)
        if value is not None and (problem := check_timestamp(value, f"{field}.{name}")):
            return problem
    return None


def check_device_attributes(attributes: object, field: str = "device.attributes") -> RuleError | None:
    """A device's attributes: the attribute limits, and every value a string (``push_enabled`` is
    ``"true"``/``"false"``) [spec, Track API device schema]."""
    if problem := check_attributes(attributes, field):
        return problem
    if type(attributes) is dict:
        for name, value in attributes.items():
            if type(value) is not str and value is not None:  # null: removal, as for other attributes (unconfirmed)
                return error("invalid_field", f"{field}.{name}", "device attribute values must be strings")
    return None


def check_event_name(name: object, field: str = "name") -> RuleError | None:
    """Required, non-blank, at most 100 bytes."""
    if type(name) is not str or not name.strip():
        return error("missing_field", field, "event name is required")
    if _too_long(name, MAX_EVENT_NAME_BYTES):
        return error("limit_exceeded", field, f"longer than {MAX_EVENT_NAME_BYTES} bytes")
    return None


def check_event_data(data: object, field: str) -> RuleError | None:
    """Event properties: an object serialized in at most 100,000 bytes."""
    if data is None:
        return None
    if type(data) is not dict:
        return error("invalid_field", field, "must be an object")
    if len(orjson.dumps(data)) > MAX_EVENT_DATA_BYTES:
        return error("limit_exceeded", field, f"larger than {MAX_EVENT_DATA_BYTES} bytes")
    return None


def _relationships(op: Mapping[str, Any], required: bool, person_side: bool) -> RuleError | None:
    relationships = op.get("cio_relationships")
    if relationships is None and not required:
        return None
    if type(relationships) is not list or (required and not relationships):
        return error("invalid_field", "cio_relationships", "must be a non-empty array")
    for i, item in enumerate(relationships):
        field = f"cio_relationships.{i}"
        if type(item) is not dict:
            return error("invalid_field", field, "must be an object")
        ids = item.get("identifiers")
        problem = (
            check_object_identifiers(ids, f"{field}.identifiers")
            if person_side
            else check_one_identifier(ids, f"{field}.identifiers", PROFILE_IDENTIFIERS, "anonymous_id")
        )
        if problem or (
            problem := check_attributes(item.get("relationship_attributes"), f"{field}.relationship_attributes")
        ):
            return problem
    return None


# --- v2 operations -----------------------------------------------------------------------------------


def _person(op: dict[str, Any], anonymous: bool = False) -> RuleError | None:
    extra = "anonymous_id" if anonymous and ACCEPT_ANONYMOUS_ID else None
    return check_one_identifier(op.get("identifiers"), "identifiers", PERSON_IDENTIFIERS, extra)


def _person_identify(op: dict[str, Any]) -> RuleError | None:
    return _person(op) or check_attributes(op.get("attributes")) or _relationships(op, False, True)


def _person_event(op: dict[str, Any]) -> RuleError | None:
    if problem := _person(op, anonymous=True) or check_event_name(op.get("name")):
        return problem
    if "id" in op and (problem := check_ulid(op["id"])):
        return problem
    # The operation is at most 32,000 bytes, so its attributes are far below the 100,000-byte limit.
    attributes = op.get("attributes")
    if attributes is not None and type(attributes) is not dict:
        return error("invalid_field", "attributes", "must be an object")
    return None


def _person_device(op: dict[str, Any]) -> RuleError | None:
    if problem := _person(op):
        return problem
    device = op.get("device")
    if type(device) is not dict:
        return error("missing_field", "device", "device object is required")
    if type(device.get("token")) is not str or not device["token"].strip():
        return error("missing_field", "device.token", "device token is required")
    if op["action"] == "delete_device":
        return None
    if device.get("platform") not in DEVICE_PLATFORMS:
        return error("invalid_field", "device.platform", "must be ios or android")
    if "last_used" in device and (problem := check_timestamp(device["last_used"], "device.last_used")):
        return problem
    return check_device_attributes(device.get("attributes"))


def _person_relationships(op: dict[str, Any]) -> RuleError | None:
    return _person(op) or _relationships(op, True, True)


def _person_merge(op: dict[str, Any]) -> RuleError | None:
    if "identifiers" in op:
        return error("invalid_field", "identifiers", "merge takes primary and secondary, not identifiers")
    return check_merge_sides(op)


def check_merge_sides(body: Mapping[str, Any]) -> RuleError | None:
    """``primary`` and ``secondary``, each exactly one of id/email/cio_id."""
    return check_one_identifier(body.get("primary"), "primary", PROFILE_IDENTIFIERS) or check_one_identifier(
        body.get("secondary"), "secondary", PROFILE_IDENTIFIERS
    )


def _object_identify(op: dict[str, Any]) -> RuleError | None:
    return (
        check_object_identifiers(op.get("identifiers"))
        or check_attributes(op.get("attributes"))
        or _relationships(op, False, False)
    )


def _object_identify_anonymous(op: dict[str, Any]) -> RuleError | None:
    if problem := check_object_identifiers(op.get("identifiers")) or check_attributes(op.get("attributes")):
        return problem
    if "anonymous_id" in op:
        return check_identifier(op["anonymous_id"], "anonymous_id")
    return _relationships(op, True, False)


def _object_plain(op: dict[str, Any]) -> RuleError | None:
    return check_object_identifiers(op.get("identifiers"))


def _object_relationships(op: dict[str, Any]) -> RuleError | None:
    return check_object_identifiers(op.get("identifiers")) or _relationships(op, True, False)


def _delivery_event(op: dict[str, Any]) -> RuleError | None:
    ids = op.get("identifiers")
    if type(ids) is not dict or ids.keys() != {"id"}:
        return error("invalid_identifier", "identifiers", "must be {id: <delivery_id>}")
    if problem := check_identifier(ids["id"], "identifiers.id"):
        return problem
    if op.get("name") not in DELIVERY_METRICS:
        return error("invalid_field", "name", "must be opened, converted or delivered")
    attributes = op.get("attributes")
    if type(attributes) is not dict or type(attributes.get("device_token")) is not str:
        return error("missing_field", "attributes.device_token", "device_token is required")
    return None


def _no_payload(op: dict[str, Any]) -> RuleError | None:
    return _person(op)


_CHECKS: Final[dict[tuple[str, str], Check]] = {
    ("person", "identify"): _person_identify,
    ("person", "event"): _person_event,
    ("person", "page"): _person_event,
    ("person", "screen"): _person_event,
    ("person", "delete"): _no_payload,
    ("person", "suppress"): _no_payload,
    ("person", "unsuppress"): _no_payload,
    ("person", "add_device"): _person_device,
    ("person", "delete_device"): _person_device,
    ("person", "add_relationships"): _person_relationships,
    ("person", "delete_relationships"): _person_relationships,
    ("person", "merge"): _person_merge,
    ("object", "identify"): _object_identify,
    ("object", "identify_anonymous"): _object_identify_anonymous,
    ("object", "delete"): _object_plain,
    ("object", "add_relationships"): _object_relationships,
    ("object", "delete_relationships"): _object_relationships,
    ("delivery", "event"): _delivery_event,
}
_ACTIONS: Final = {"person": PERSON_ACTIONS, "object": OBJECT_ACTIONS, "delivery": DELIVERY_ACTIONS}


def operation_size(op: object) -> int:
    """Serialized size of an operation in bytes (compact JSON, as a client would send it)."""
    return len(orjson.dumps(op))


def check_operation(op: object, size: int | None = None) -> RuleError | None:
    """One v2 operation (Track API v2 batch): vocabulary, identifiers, size and the action's own fields.

    ``size`` is the operation's serialized size when the caller already knows it.
    """
    if type(op) is not dict:
        return error("invalid_operation", "", "operation must be a JSON object")
    if (size if size is not None else operation_size(op)) > MAX_OPERATION_BYTES:
        return error("too_large", "", f"operation larger than {MAX_OPERATION_BYTES} bytes")
    kind = op.get("type")
    actions = _ACTIONS.get(kind) if isinstance(kind, str) else None
    if actions is None or not isinstance(kind, str):
        return error("invalid_type", "type", "must be person, object or delivery")
    action = op.get("action")
    if type(action) is not str or action not in actions:
        return error("invalid_action", "action", f"unknown {kind} action")
    timestamp = op.get("timestamp", _MISSING)
    if timestamp is not _MISSING and (problem := check_timestamp(timestamp, "timestamp")):
        return problem
    return _CHECKS[kind, action](op)


def parse_batch(body: bytes) -> list[Any] | RuleError:
    """The ``batch`` array of a /api/v2/batch body, or the error that rejects the whole request."""
    if len(body) > MAX_BATCH_BYTES:
        return error("too_large", "", f"batch larger than {MAX_BATCH_BYTES} bytes")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error("invalid_json", "", "body is not valid JSON")
    if type(parsed) is not dict or type(parsed.get("batch")) is not list:
        return error("invalid_field", "batch", 'body must be {"batch": [operations]}')
    return parsed["batch"]  # type: ignore[no-any-return]
