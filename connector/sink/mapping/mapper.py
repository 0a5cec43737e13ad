"""Segment-spec messages → Customer.io Track API v2 operations, serialized once (pure).

One small method per message kind (the Segment and RudderStack Customer.io destinations are the peers
followed; Customer.io's Track API limits apply):

- identify → person ``identify``. Attributes come from ``traits``; ``context.traits`` is used only when
  the message has no ``traits`` at all (RudderStack's mobile SDKs put identify traits there), never
  merged. ``createdAt``/``created_at`` → ``created_at`` (Unix s), ``anonymousId`` → ``anonymous_id``.
- identify → person ``identify``; with ``traits.objectId`` also a relationship to that object
  (``connector.sink.mapping.relationships``). Its ``timestamp`` follows CONNECTOR_IDENTIFY_TIMESTAMP, or
  the record's ``cio-identify-timestamp`` header: the message's time (``event``), the mapping time
  (``now``), or none (``omit``: Customer.io's receive time).
- track → person ``event``, or a semantic action (devices, delete, suppress, object delete, relationship
  delete) chosen by event name. An anonymous device event, like one without a token, stays a plain
  event; anonymous delete/suppress is refused (``missing_identifier``), and so is an object event
  without ``properties.objectId``.
- page / screen → person ``page`` / ``screen``. A page name over 100 bytes that is a URL loses its query
  and fragment (the full URL stays in ``attributes.url``) before the name limit applies.
- group → object ``identify`` related to the user, or ``identify_anonymous`` related to the anonymous id;
  ``traits.objectAttributes`` / ``traits.relationshipAttributes`` are split between object and relationship.
- alias → person ``merge``.
- track events named in the segment and delivery-metric settings → Track API v1 calls: see
  ``connector.sink.mapping.v1calls``.
- records that already are v2 operations: see ``connector.sink.mapping.operations``.

Track, page and screen find the person by ``userId``, else ``context.traits.email``, else they are
anonymous (``anonymousId``). Whatever the input, ``map_message`` returns; it never raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from connector.config import MappingSettings
from connector.sink.mapping import identifiers as ids
from connector.sink.mapping.attributes import Attributes, Names
from connector.sink.mapping.devices import plan_device
from connector.sink.mapping.model import (
    Filtered,
    MappedMessage,
    Message,
    MessageContext,
    Operation,
    Planned,
    Rejection,
)
from connector.sink.mapping.operations import ACTIONS, is_v2_operation, message_event_name, plan_operation
from connector.sink.mapping.relationships import (
    CREATED_AT_TRAITS,
    RELATIONSHIP_TRAITS,
    group_attributes,
    identify_relationship,
    plan_object_event,
)
from connector.sink.mapping.rules import Rules
from connector.sink.mapping.timestamps import message_ms, to_unix_ms
from connector.sink.mapping.ulid import event_ulid
from connector.sink.mapping.v1calls import plan_metric, plan_segment
from connector.sink.mapping.validation import (
    MAX_NAME_BYTES,
    Invalid,
    check_name,
    get_object,
    get_string,
    json_type,
    label,
    over,
    serialize,
    show,
)

__all__ = ["Mapper", "is_v2_operation", "map_message", "message_event_name"]

SEGMENT_TYPES: Final = frozenset({"identify", "track", "page", "screen", "group", "alias"})
EVENT_ACTIONS: Final = frozenset({"person.event", "person.page", "person.screen", "delivery.event"})
_PAGE_FIELDS: Final = ("url", "path", "title", "referrer", "search")
_EMPTY: Final[dict[str, Any]] = {}
_INTEGRATIONS_DISABLED: Final = Filtered("integrations_disabled")
_EVENT_DENIED: Final = Filtered("event_denied")
_TYPE_DENIED: Final = Filtered("type_denied")


class Mapper:
    """Everything derived from MappingSettings, computed once; ``map`` is the hot path."""

    def __init__(self, settings: MappingSettings, clock: Callable[[], float] = time.time) -> None:
        self.truncate = settings.oversize_policy == "truncate"
        self.attributes = Attributes(
            convert_iso=settings.convert_iso_timestamps, omit_empty=settings.omit_empty_values, truncate=self.truncate
        )
        self.person_names = Names(settings.attribute_prefix, frozenset({"createdAt", "created_at"}), self.truncate)
        # An identify relating the person to an object: the relationship's traits are not person attributes.
        self.related_person_names = Names(
            settings.attribute_prefix, frozenset({"createdAt", "created_at"}) | RELATIONSHIP_TRAITS, self.truncate
        )
        self.identify_timestamp = settings.identify_timestamp
        self.clock = clock
        self.object_names = Names("", frozenset({"objectTypeId", "object_type_id"}) | CREATED_AT_TRAITS, self.truncate)
        self.plain_names = Names("", frozenset(), self.truncate)
        self.default_object_type_id = settings.default_object_type_id
        self.semantic: dict[str, str] = {}
        for action, names in (
            ("unsuppress", settings.unsuppress_events),
            ("suppress", settings.suppress_events),
            ("delete", settings.delete_events),
            ("delete_device", settings.device_delete_events),
            ("add_device", settings.device_add_events),
            ("delete_object", settings.object_delete_events),
            ("delete_relationship", settings.relationship_delete_events),
        ):
            self.semantic.update(dict.fromkeys(names, action))  # a name in two lists: the later one here wins
        # Track events sent as v1 calls; these names win over the v2 semantic names above.
        self.v1_events: dict[str, str] = {}
        for call, names in (
            ("metrics", settings.delivery_metric_events),
            ("remove_customers", settings.segment_remove_events),
            ("add_customers", settings.segment_add_events),
        ):
            self.v1_events.update(dict.fromkeys(names, call))
        self.allow_events = frozenset(settings.allow_event_names) or None
        self.deny_events = frozenset(settings.deny_event_names)
        self.filter_events = self.allow_events is not None or bool(self.deny_events)
        self.allow_types = frozenset(settings.allow_types) or None
        self.deny_types = frozenset(settings.deny_types)
        self.rules = Rules(self.attributes, self.plain_names, self.truncate, self.allow_events, self.deny_events)
        self._kinds = {
            "identify": self._identify,
            "track": self._track,
            "page": self._page,
            "screen": self._screen,
            "group": self._group,
            "alias": self._alias,
        }

    def map(self, message: object, ctx: MessageContext, max_operation_bytes: int = 32_000) -> MappedMessage:
        """The operations for one message, or why it is not sent. Never raises."""
        try:
            planned = self._plan(message, ctx)
            if isinstance(planned, Filtered):
                return planned
            if isinstance(planned, Operation):  # a v1 call, built complete
                size = len(planned.body)
                if size > max_operation_bytes:
                    return Rejection("too_large", f"operation: {size} bytes serialized, limit {max_operation_bytes}")
                return (planned,)
            return (self.finish(planned, max_operation_bytes),)
        except Invalid as exc:
            return Rejection(exc.reason, exc.message)
        except Exception as exc:  # noqa: BLE001 - the contract: no message, however odd, may stop a partition
            return Rejection("internal_error", f"internal_error: {type(exc).__name__} while mapping the message")

    def _plan(self, message: object, ctx: MessageContext) -> Planned | Operation | Filtered:
        if not isinstance(message, dict):
            raise Invalid("not_an_object", f"message: must be an object (got {json_type(message)})")
        kind = message.get("type")
        if not isinstance(kind, str):
            if kind is None:
                raise Invalid("missing_field", "type: required")
            raise Invalid("invalid_field", f"type: must be a string (got {json_type(kind)})")
        if kind in ACTIONS and "action" in message:
            planned = plan_operation(self.rules, message, ctx)
            if (
                ctx.identify_timestamp is not None
                and not isinstance(planned, Filtered)
                and planned[2] == "person.identify"
            ):
                op = planned[0]
                ts = op.pop("timestamp", None)
                self._stamp(op, None if ts is None else ts * 1000, ctx.identify_timestamp)
            return planned
        if kind not in SEGMENT_TYPES:
            kind = kind.lower()
        integrations = message.get("integrations")
        if integrations and isinstance(integrations, dict):
            cio = integrations.get("Customer.io")
            if cio is False or (integrations.get("All") is False and cio is not True and not isinstance(cio, dict)):
                return _INTEGRATIONS_DISABLED
        if (self.allow_types is not None and kind not in self.allow_types) or kind in self.deny_types:
            return _TYPE_DENIED
        handler = self._kinds.get(kind)
        if handler is None:
            raise Invalid("unknown_type", f"type: unknown message type {label(kind)!r}")
        return handler(message, ctx)

    def event_allowed(self, name: str) -> bool:
        """Whether the allow/deny lists let a track event of this name through."""
        return self.rules.event_allowed(name)

    def finish(self, planned: Planned, max_bytes: int) -> Operation:
        """Serialize once; past ``max_bytes``, truncate event strings (if configured) or refuse."""
        op, key, action, field = planned
        try:
            body = orjson.dumps(op)
        except orjson.JSONEncodeError:
            body = serialize(op, field)  # raises the invalid_field naming the field
        if len(body) > max_bytes:
            if self.truncate and action in EVENT_ACTIONS:
                shrunk = orjson.loads(body)  # the slow path: attributes are an opaque Fragment in ``op``
                if isinstance(shrunk.get("attributes"), dict):
                    shrunk["attributes"] = self.attributes.shrink(shrunk["attributes"], field)
                    body = serialize(shrunk, field)
            if len(body) > max_bytes:
                raise Invalid("too_large", f"operation: {len(body)} bytes serialized, limit {max_bytes}")
        # orjson returns its whole write buffer (4 KiB at least) as the bytes object; an operation is kept
        # until delivered, so it keeps a right-sized copy (~0.1 µs): 10,000 buffered operations are then
        # ~5 MB, not 40, and the buffer budget's byte count is what they really hold.
        # A merge also waits for its secondary's earlier operations (delivery.py: the cross-lane barrier).
        after_key = ids.order_key(op["secondary"]) if action == "person.merge" else None
        return Operation(b"".join((body, b"")), key, action, None, after_key)

    # ---- shared steps -------------------------------------------------------------------------------

    def _event(
        self,
        action: str,
        message: Message,
        ctx: MessageContext,
        who: ids.Identity,
        *,
        name: str,
        name_field: str,
        attrs: dict[str, Any],
    ) -> Planned:
        ms = message_ms(message, ctx)
        op: dict[str, Any] = {
            "type": "person",
            "action": action,
            "identifiers": who[0],
            "name": name if len(name) <= 25 else check_name(name, name_field, self.truncate),  # ≤ 25 chars ≤ 100 B
            "id": event_ulid(message, ctx, ms),
            "attributes": self.attributes.event(attrs, "properties"),
        }
        if ms is not None:
            op["timestamp"] = ms // 1000
        return op, who[1], "person." + action, "properties"

    # ---- one method per message kind ----------------------------------------------------------------

    def _identify(self, message: Message, ctx: MessageContext) -> Planned:
        traits = get_object(message, "traits", "traits")
        path = "traits"
        if traits is None:
            context = get_object(message, "context", "context")
            traits = get_object(context, "traits", "context.traits") if context else None
            path = "context.traits"
        traits = traits or _EMPTY
        user_id = ids.identifier_value(message.get("userId"), "userId")
        if user_id is not None:
            identifiers, key = ids.person(user_id, "userId")
        else:
            email = ids.email_value(traits.get("email"), path + ".email")
            if email is None:
                raise Invalid("missing_identifier", "userId: required (or traits.email) for identify")
            identifiers, key = ids.by_email(email)
        extra: dict[str, Any] = {}
        created, field = traits.get("createdAt"), path + ".createdAt"
        if created is None:
            created, field = traits.get("created_at"), path + ".created_at"
        if created is not None and created != "":
            created_ms = to_unix_ms(created)
            if created_ms is None:
                raise Invalid("invalid_timestamp", f"{field}: not an ISO-8601 date or Unix time (got {show(created)})")
            extra["created_at"] = created_ms // 1000
        anonymous_id = ids.identifier_value(message.get("anonymousId"), "anonymousId")
        if anonymous_id is not None:
            extra["anonymous_id"] = anonymous_id
        relationship = identify_relationship(
            self.attributes, traits, path, self.plain_names, self.default_object_type_id
        ) if "objectId" in traits or "relationshipAttributes" in traits else None  # fmt: skip
        names = self.person_names if relationship is None else self.related_person_names
        op: dict[str, Any] = {
            "type": "person",
            "action": "identify",
            "identifiers": identifiers,
            "attributes": self.attributes.stored(traits, path, names, extra=extra),
        }
        if relationship is not None:
            op["cio_relationships"] = [relationship]
        ms = message_ms(message, ctx)  # checked whatever the policy: a bad timestamp is bad input
        self._stamp(op, ms, ctx.identify_timestamp or self.identify_timestamp)
        return op, key, "person.identify", path

    def _stamp(self, op: dict[str, Any], ms: int | None, policy: str) -> None:
        """Set an identify's ``timestamp`` per policy (see CONNECTOR_IDENTIFY_TIMESTAMP in docs/operations.md)."""
        if policy == "event":
            if ms is not None:
                op["timestamp"] = ms // 1000
        elif policy == "now":
            op["timestamp"] = int(self.clock())

    def _track(self, message: Message, ctx: MessageContext) -> Planned | Operation | Filtered:
        name = get_string(message, "event", "event")
        if not name:
            raise Invalid("missing_field", "event: required for track")
        if self.filter_events and not self.event_allowed(name):
            return _EVENT_DENIED
        call = self.v1_events.get(name)
        if call is not None:
            if call == "metrics":
                return plan_metric(message, ctx, name)
            return plan_segment(message, name, call, ids.sender(message))
        props = get_object(message, "properties", "properties") or _EMPTY
        who = ids.sender(message)
        action = self.semantic.get(name)
        if action is not None:
            planned = self._semantic(action, name, message, ctx, props=props, who=who)
            if planned is not None:
                return planned
        who = who or ids.anonymous_sender(message, "track")
        return self._event("event", message, ctx, who, name=name, name_field="event", attrs=props)

    def _semantic(
        self,
        action: str,
        name: str,
        message: Message,
        ctx: MessageContext,
        *,
        props: dict[str, Any],
        who: tuple[dict[str, Any], str] | None,
    ) -> Planned | None:
        """A semantic track event's operation; None: send it as a plain event (a device event without a token)."""
        if action in ("delete_object", "delete_relationship"):
            return plan_object_event(action, message, props, who, self.default_object_type_id)
        if action in ("add_device", "delete_device"):
            return plan_device(self.rules, action, message, ctx, who=who, props=props) if who is not None else None
        if who is None:
            raise Invalid("missing_identifier", f"userId: required for {label(name)!r} ({action})")
        return {"type": "person", "action": action, "identifiers": who[0]}, who[1], "person." + action, "userId"

    def _page(self, message: Message, ctx: MessageContext) -> Planned:
        props = get_object(message, "properties", "properties") or _EMPTY
        context = get_object(message, "context", "context") or _EMPTY
        page = get_object(context, "page", "context.page") or _EMPTY
        name, field = get_string(props, "url", "properties.url"), "properties.url"
        if not name:
            name, field = get_string(page, "url", "context.page.url"), "context.page.url"
        if not name:
            name, field = get_string(message, "name", "name"), "name"
        if not name:
            raise Invalid("missing_field", "properties.url: required (or context.page.url or name) for page")
        if over(name, MAX_NAME_BYTES) and ("?" in name or "#" in name):
            name = name.split("#", 1)[0].split("?", 1)[0] or name
        attrs = props
        for key in _PAGE_FIELDS:
            value = page.get(key)
            if value is not None and key not in props:
                if attrs is props:
                    attrs = dict(props)
                attrs[key] = value
        who = ids.sender(message) or ids.anonymous_sender(message, "page")
        return self._event("page", message, ctx, who, name=name, name_field=field, attrs=attrs)

    def _screen(self, message: Message, ctx: MessageContext) -> Planned:
        name = get_string(message, "name", "name")
        if not name:
            raise Invalid("missing_field", "name: required for screen")
        props = get_object(message, "properties", "properties") or _EMPTY
        who = ids.sender(message) or ids.anonymous_sender(message, "screen")
        return self._event("screen", message, ctx, who, name=name, name_field="name", attrs=props)

    def _group(self, message: Message, ctx: MessageContext) -> Planned:  # noqa: ARG002 - one signature per handler
        group_id = ids.identifier_value(message.get("groupId"), "groupId")
        if group_id is None:
            raise Invalid("missing_identifier", "groupId: required for group")
        traits = get_object(message, "traits", "traits") or _EMPTY
        raw_type, field = traits.get("objectTypeId"), "traits.objectTypeId"
        if raw_type is None:
            raw_type, field = traits.get("object_type_id"), "traits.object_type_id"
        type_id = self.default_object_type_id if raw_type is None else ids.object_type_id(raw_type, field)
        object_attributes, relationship_attributes = group_attributes(
            self.attributes, traits, self.object_names, self.plain_names
        )
        op: dict[str, Any] = {
            "type": "object",
            "action": "identify",
            "identifiers": {"object_type_id": type_id, "object_id": group_id},
            "attributes": object_attributes,
        }
        who = ids.sender(message)
        if who is None:
            anonymous_id = ids.identifier_value(message.get("anonymousId"), "anonymousId")
            if anonymous_id is None:
                if relationship_attributes is not None:
                    raise Invalid(
                        "missing_identifier", "userId: required (or anonymousId) for traits.relationshipAttributes"
                    )
                return op, f"object:{type_id}:{group_id}", "object.identify", "traits"
            who = ids.anonymous(anonymous_id)
            op["action"] = "identify_anonymous"
        relationship: dict[str, Any] = {"identifiers": who[0]}
        if relationship_attributes:
            relationship["relationship_attributes"] = relationship_attributes
        op["cio_relationships"] = [relationship]
        return op, who[1], "object." + op["action"], "traits"

    def _alias(self, message: Message, ctx: MessageContext) -> Planned:  # noqa: ARG002 - one signature per handler
        user_id = ids.identifier_value(message.get("userId"), "userId")
        previous_id = ids.identifier_value(message.get("previousId"), "previousId")
        if user_id is None or previous_id is None:
            field = "userId" if user_id is None else "previousId"
            raise Invalid("missing_identifier", f"{field}: required for alias")
        primary, key = ids.person(user_id, "userId")
        secondary, secondary_key = ids.person(previous_id, "previousId")
        if secondary_key == key:
            raise Invalid("invalid_identifier", "previousId: same person as userId")
        return (
            {"type": "person", "action": "merge", "primary": primary, "secondary": secondary},
            key,
            "person.merge",
            "userId",
        )


def map_message(
    message: object, ctx: MessageContext, settings: MappingSettings, max_operation_bytes: int = 32_000
) -> MappedMessage:
    """The Customer.io operations of one message, or a Rejection, or Filtered. Never raises.

    Builds a ``Mapper`` on every call: for one-off use and tests. The sink maps with the ``Mapper`` its
    ``Router`` built once per mapping settings (``Target.mapper``).
    """
    return Mapper(settings).map(message, ctx, max_operation_bytes)
