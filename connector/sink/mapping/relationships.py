"""Objects and relationships of Segment messages: the object semantic events, the group attribute split and
an identify's ``traits.objectId`` (pure; conventions of Customer.io's semantic events and Segment's
``actions-customerio``, reference Addendum A, B.1, B.2, B.5, B.6).

- ``Object Deleted`` → object ``delete`` of ``properties.objectId``; ``Relationship Deleted`` → object
  ``delete_relationships`` between ``properties.objectId`` and the sending person (``cio_relationships``).
  The object type is ``properties.object_type_id``, else ``properties.objectTypeId``, else the default
  type (Segment's order). Without ``objectId`` (or without a person, for a relationship) the message is
  refused naming the field: it is never sent as a plain custom event, which Customer.io would accept
  and ignore.
- group: ``traits.relationshipAttributes`` go on the relationship, ``traits.objectAttributes`` are the
  object's attributes (over any other top-level traits, which stay object attributes as before). A group
  with neither key maps as it always did. ``createdAt``/``created_at`` become the object's ``created_at`` in
  Unix seconds, as for a person (Segment's ``createUpdateObject``): Customer.io reads no other name or unit.
- identify with ``traits.objectId`` adds a relationship to that object (type ``traits.object_type_id`` /
  ``objectTypeId``), with ``traits.relationshipAttributes``. ``objectId`` stays a person attribute (as
  Segment sends it); the type and the relationship attributes do not. Relationship attributes without an
  ``objectId`` are refused: a relationship needs object identifiers.
"""

from __future__ import annotations

from typing import Any, Final

from connector.sink.mapping import identifiers as ids
from connector.sink.mapping.attributes import Attributes, Names
from connector.sink.mapping.model import Message, Planned
from connector.sink.mapping.timestamps import to_unix_ms
from connector.sink.mapping.validation import Invalid, get_object, label, show

OBJECT_ATTRIBUTES: Final = "objectAttributes"
RELATIONSHIP_ATTRIBUTES: Final = "relationshipAttributes"
# Trait keys that describe the relationship, not the person (identify with objectId).
_OBJECT_TYPE_TRAITS: Final = frozenset({"objectTypeId", "object_type_id"})
RELATIONSHIP_TRAITS: Final = _OBJECT_TYPE_TRAITS | {RELATIONSHIP_ATTRIBUTES}
CREATED_AT_TRAITS: Final = frozenset({"createdAt", "created_at"})


def object_identity(props: dict[str, Any], path: str, default_type_id: str) -> dict[str, str] | None:
    """``{object_type_id, object_id}`` from ``path.objectId`` and its type fields; None without an objectId."""
    object_id = ids.identifier_value(props.get("objectId"), path + ".objectId")
    if object_id is None:
        return None
    raw_type, field = props.get("object_type_id"), path + ".object_type_id"
    if raw_type is None:
        raw_type, field = props.get("objectTypeId"), path + ".objectTypeId"
    type_id = default_type_id if raw_type is None else ids.object_type_id(raw_type, field)
    return {"object_type_id": type_id, "object_id": object_id}


def plan_object_event(
    action: str, message: Message, props: dict[str, Any], who: ids.Identity | None, default_type_id: str
) -> Planned:
    """``delete_object`` or ``delete_relationship`` of a track event named by the settings (refused when incomplete)."""
    name = label(str(message.get("event")))
    identifiers = object_identity(props, "properties", default_type_id)
    if identifiers is None:
        raise Invalid("missing_field", f"properties.objectId: required for {name!r} ({action})")
    object_key = f"object:{identifiers['object_type_id']}:{identifiers['object_id']}"
    if action == "delete_object":
        # Ordered with the sender's other operations (their group calls) when there is one.
        anonymous_id = ids.identifier_value(message.get("anonymousId"), "anonymousId")
        key = who[1] if who is not None else ids.anonymous(anonymous_id)[1] if anonymous_id else object_key
        return {"type": "object", "action": "delete", "identifiers": identifiers}, key, "object.delete", "properties"
    if who is None:
        raise Invalid("missing_identifier", f"userId: required for {name!r} ({action})")
    op = {
        "type": "object",
        "action": "delete_relationships",
        "identifiers": identifiers,
        "cio_relationships": [{"identifiers": who[0]}],
    }
    return op, who[1], "object.delete_relationships", "properties"


def group_attributes(
    attributes: Attributes, traits: dict[str, Any], names: Names, plain: Names
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A group's object attributes and relationship attributes (None: the traits name none).

    ``names`` must skip ``CREATED_AT_TRAITS``: the creation time is added here, normalized.
    """
    if OBJECT_ATTRIBUTES not in traits and RELATIONSHIP_ATTRIBUTES not in traits:
        return attributes.stored(traits, "traits", names, extra=created_at(traits, "traits")), None
    own = get_object(traits, OBJECT_ATTRIBUTES, "traits." + OBJECT_ATTRIBUTES)
    related = get_object(traits, RELATIONSHIP_ATTRIBUTES, "traits." + RELATIONSHIP_ATTRIBUTES)
    rest = {k: v for k, v in traits.items() if k not in (OBJECT_ATTRIBUTES, RELATIONSHIP_ATTRIBUTES)}
    # Errors name the path the attributes came from; mixed with other traits, only "traits" is sure.
    path = "traits." + OBJECT_ATTRIBUTES if own and rest.keys() <= _OBJECT_TYPE_TRAITS else "traits"
    if own:
        rest.update(own)  # objectAttributes win over same-named top-level traits
    object_attributes = attributes.stored(rest, path, names, extra=created_at(rest, path))
    if related is None:
        return object_attributes, None
    return object_attributes, attributes.stored(related, "traits." + RELATIONSHIP_ATTRIBUTES, plain)


def created_at(traits: dict[str, Any], path: str) -> dict[str, Any] | None:
    """``{"created_at": <Unix s>}`` from ``createdAt`` (else ``created_at``); None when neither is set."""
    raw, field = traits.get("createdAt"), path + ".createdAt"
    if raw is None:
        raw, field = traits.get("created_at"), path + ".created_at"
    if raw is None or raw == "":
        return None
    ms = to_unix_ms(raw)
    if ms is None:
        raise Invalid("invalid_timestamp", f"{field}: not an ISO-8601 date or Unix time (got {show(raw)})")
    return {"created_at": ms // 1000}


def identify_relationship(
    attributes: Attributes, traits: dict[str, Any], path: str, plain: Names, default_type_id: str
) -> dict[str, Any] | None:
    """The relationship an identify's ``traits.objectId`` asks for, or None when it names no object."""
    identifiers = object_identity(traits, path, default_type_id)
    related = get_object(traits, RELATIONSHIP_ATTRIBUTES, f"{path}.{RELATIONSHIP_ATTRIBUTES}")
    if identifiers is None:
        if related is not None:
            raise Invalid(
                "missing_field", f"{path}.objectId: required with {path}.{RELATIONSHIP_ATTRIBUTES} (the related object)"
            )
        return None
    relationship: dict[str, Any] = {"identifiers": identifiers}
    if related:
        relationship["relationship_attributes"] = attributes.stored(related, f"{path}.{RELATIONSHIP_ATTRIBUTES}", plain)
    return relationship
