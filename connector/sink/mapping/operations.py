"""Records that already hold a Customer.io v2 operation: validated, then passed through (pure).

A record ``{"type": "person"|"object"|"delivery", "action": …}`` is sent as it is after the checks every
mapped operation gets: a known action for its type, exactly one valid identifier (``primary`` and
``secondary`` for ``merge``), a name within 100 bytes for events, stored attributes within the limits
(neither empties dropped nor ISO strings converted: the producer chose them), ``timestamp`` and a person
identify's (person or object) ``attributes.created_at`` and an ``add_device``'s ``device.last_used``
normalized to Unix seconds (the only form Customer.io reads them in), device attribute values as strings
(the only type Customer.io's device schema has: ``true`` → ``"true"``),
and a deterministic ULID ``id`` added to event/page/screen operations without one.
The track-event allow/deny lists apply to person ``event`` operations; the message-type lists do not.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

from connector.sink.mapping import identifiers as ids
from connector.sink.mapping.devices import as_device_string
from connector.sink.mapping.model import Filtered, Message, MessageContext, Planned
from connector.sink.mapping.rules import Rules
from connector.sink.mapping.timestamps import to_unix_ms
from connector.sink.mapping.ulid import record_ulid
from connector.sink.mapping.validation import Invalid, check_name, json_type, label, show

ACTIONS: Final = {
    "person": frozenset(
        {
            "identify",
            "event",
            "screen",
            "page",
            "delete",
            "add_device",
            "delete_device",
            "add_relationships",
            "delete_relationships",
            "merge",
            "suppress",
            "unsuppress",
        }
    ),
    "object": frozenset({"identify", "identify_anonymous", "delete", "add_relationships", "delete_relationships"}),
    "delivery": frozenset({"event"}),
}
_PERSON_KEYS: Final = frozenset({"id", "email", "cio_id", "phone"})
_NAMED: Final = frozenset({"person.event", "person.page", "person.screen", "delivery.event"})
_WITH_ATTRIBUTES: Final = frozenset({"person.identify", "object.identify", "object.identify_anonymous"})


def plan_operation(rules: Rules, raw: Message, ctx: MessageContext) -> Planned | Filtered:  # noqa: C901 - hot path: one branch per message type
    """A validated copy of the v2 operation ``raw``, with its order key."""
    kind: str = raw["type"]
    action = raw["action"]
    if not isinstance(action, str):
        raise Invalid("invalid_field", f"action: must be a string (got {json_type(action)})")
    if action not in ACTIONS[kind]:
        raise Invalid("invalid_field", f"action: {label(action)!r} is not a {kind} action")
    tag = f"{kind}.{action}"
    op = dict(raw)
    # Identifiers are written back as validated strings (numbers converted, as for Segment messages).
    if tag == "person.merge":
        op["primary"], key = _person(raw.get("primary"), "primary", anonymous=False)
        op["secondary"] = _person(raw.get("secondary"), "secondary", anonymous=False)[0]
    elif kind == "person":
        op["identifiers"], key = _person(raw.get("identifiers"), "identifiers", anonymous=tag in _NAMED)
    elif kind == "object":
        op["identifiers"], key = _object(raw.get("identifiers"), raw.get("cio_relationships"))
    else:
        identifiers = _mapping(raw.get("identifiers"), "identifiers")
        delivery_id = ids.identifier_value(identifiers.get("id"), "identifiers.id")
        if delivery_id is None or len(identifiers) != 1:
            raise Invalid("invalid_identifier", "identifiers: must hold exactly one non-empty id (the delivery_id)")
        op["identifiers"], key = {"id": delivery_id}, "delivery:" + delivery_id
    ms = None
    if raw.get("timestamp") is not None:
        ms = _unix_ms(raw["timestamp"], "timestamp")
        op["timestamp"] = ms // 1000
    if tag in _NAMED:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise Invalid("missing_field" if not name else "invalid_field", "name: required, a non-empty string")
        if tag == "person.event" and not rules.event_allowed(name):
            return Filtered("event_denied")
        op["name"] = check_name(name, "name", rules.truncate)
        if kind == "person":
            event_id = raw.get("id")
            if event_id is None or event_id == "":
                op["id"] = record_ulid(ctx, ms if ms is not None else ctx.timestamp_ms)
            elif not isinstance(event_id, str):
                raise Invalid("invalid_field", f"id: must be a string (got {json_type(event_id)})")
    attributes = raw.get("attributes")
    if attributes is None:
        op.pop("attributes", None)  # "attributes": null is no attributes
    else:
        _mapping(attributes, "attributes", reason="invalid_field")
        if tag in _WITH_ATTRIBUTES:
            op["attributes"] = _stored(rules, attributes, "attributes")
            created = op["attributes"].get("created_at")
            if created is not None and created != "":  # "" / null: left as sent
                op["attributes"]["created_at"] = _unix_ms(created, "attributes.created_at") // 1000
        elif tag in _NAMED:
            op["attributes"] = rules.attributes.event(attributes, "attributes", convert=False)
    if tag in {"person.add_device", "person.delete_device"}:
        token = _mapping(raw.get("device"), "device", reason="missing_field").get("token")
        if not isinstance(token, str) or not token:
            raise Invalid("missing_field", "device.token: required, a non-empty string")
    device = raw.get("device")
    if isinstance(device, dict) and device.get("attributes") is not None:
        device_attributes = _mapping(device["attributes"], "device.attributes", reason="invalid_field")
        strings = {
            key: as_device_string(value, "device.attributes." + label(str(key)))
            for key, value in device_attributes.items()
        }
        op["device"] = {**device, "attributes": _stored(rules, strings, "device.attributes")}
    if isinstance(device, dict) and device.get("last_used") is not None:
        last_used = _unix_ms(device["last_used"], "device.last_used") // 1000
        op["device"] = {**op["device"], "last_used": last_used}
    relationships = raw.get("cio_relationships")
    if isinstance(relationships, list):
        op["cio_relationships"] = [_relationship(rules, item, i) for i, item in enumerate(relationships)]
    elif relationships is not None:  # Customer.io answers 400 to anything but a list: say so here, per record
        raise Invalid("invalid_field", f"cio_relationships: must be a list (got {json_type(relationships)})")
    return op, key, tag, "attributes"


def _unix_ms(value: Any, field: str) -> int:
    ms = to_unix_ms(value)
    if ms is None:
        raise Invalid("invalid_timestamp", f"{field}: not an ISO-8601 date or Unix time (got {show(value)})")
    return ms


def _stored(rules: Rules, attributes: dict[str, Any], path: str) -> dict[str, Any]:
    return rules.attributes.stored(attributes, path, rules.plain_names, convert=False, omit=False)


def _relationship(rules: Rules, item: Any, i: int) -> Any:
    """A relationship with its attributes within the limits (Customer.io stores them)."""
    if not isinstance(item, dict) or item.get("relationship_attributes") is None:
        return item
    path = f"cio_relationships[{i}].relationship_attributes"
    attributes = _mapping(item["relationship_attributes"], path, reason="invalid_field")
    return {**item, "relationship_attributes": _stored(rules, attributes, path)}


def _mapping(value: Any, field: str, reason: str = "missing_identifier") -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is None:
        raise Invalid(reason, f"{field}: required")
    raise Invalid("invalid_field" if reason != "missing_identifier" else "invalid_identifier",
                  f"{field}: must be an object (got {json_type(value)})")  # fmt: skip


def _person(value: Any, field: str, *, anonymous: bool) -> ids.Identity:
    identifiers = _mapping(value, field)
    if len(identifiers) != 1:
        raise Invalid("invalid_identifier", f"{field}: must hold exactly one of id, email, cio_id, phone")
    ((kind, raw),) = identifiers.items()
    if kind not in _PERSON_KEYS and not (anonymous and kind == "anonymous_id"):
        raise Invalid("invalid_identifier", f"{field}.{label(str(kind))}: not a person identifier")
    value = ids.identifier_value(raw, f"{field}.{kind}")
    if value is None:
        raise Invalid("invalid_identifier", f"{field}.{kind}: must not be empty")
    if kind == "anonymous_id":
        return ids.anonymous(value)
    return {kind: value}, f"{kind}:{value.lower() if kind == 'email' else value}"


def _object(value: Any, relationships: Any) -> ids.Identity:
    """The object's identifiers, and the order key: its related person's if any, else the object's."""
    identifiers = _mapping(value, "identifiers")
    if "cio_object_id" in identifiers and len(identifiers) == 1:
        cio_object_id = _required(identifiers["cio_object_id"], "identifiers.cio_object_id")
        identifiers, key = {"cio_object_id": cio_object_id}, "object:cio:" + cio_object_id
    elif set(identifiers) == {"object_type_id", "object_id"}:
        type_id = _required(identifiers["object_type_id"], "identifiers.object_type_id")
        object_id = _required(identifiers["object_id"], "identifiers.object_id")
        identifiers, key = {"object_type_id": type_id, "object_id": object_id}, f"object:{type_id}:{object_id}"
    else:
        raise Invalid("invalid_identifier", "identifiers: must be {object_type_id, object_id} or {cio_object_id}")
    if isinstance(relationships, list) and relationships and isinstance(relationships[0], dict):
        related = relationships[0].get("identifiers")
        if isinstance(related, dict) and len(related) == 1:
            with contextlib.suppress(Invalid):  # not a person we can name: the object's own order
                key = _person(related, "cio_relationships[0].identifiers", anonymous=True)[1]
    return identifiers, key


def _required(raw: Any, field: str) -> str:
    value = ids.identifier_value(raw, field)
    if value is None:
        raise Invalid("invalid_identifier", f"{field}: must not be empty")
    return value


def message_event_name(message: Message) -> str | None:
    """The track ``event`` name (or a v2 event operation's ``name``), for routing; None otherwise."""
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "track":
        name = message.get("event")
    elif kind == "person" and message.get("action") == "event":
        name = message.get("name")
    else:
        return None
    return name if isinstance(name, str) else None


def is_v2_operation(message: Message) -> bool:
    """Whether the record already is a Customer.io v2 operation (``type`` person/object/delivery + ``action``)."""
    kind = message.get("type") if isinstance(message, dict) else None
    return isinstance(kind, str) and kind in ACTIONS and "action" in message
