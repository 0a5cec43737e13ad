"""Objects, relationships and identify timestamps: Segment message → exact v2 operation, or the dead-letter
reason naming the field (pure; reference Addendum A, B.1, B.2, B.5, B.6, E)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.config import MappingSettings
from connector.config.settings import IdentifyTimestamp
from connector.sink.mapping.mapper import Mapper, map_message
from connector.sink.mapping.model import Message, MessageContext, Rejection
from connector.sink.mapping.relationships import object_identity
from connector.sink.mapping.validation import Invalid

SETTINGS = MappingSettings()
CTX = MessageContext(topic="events", partition=0, offset=7, index=0, timestamp_ms=1_735_689_600_000)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TS = "2025-01-01T08:00:00Z"
TS_S = 1_735_718_400
ACME = {"object_type_id": "1", "object_id": "acme"}


def mapped(message: Message, settings: MappingSettings = SETTINGS, ctx: MessageContext = CTX) -> list[Any]:
    """(operation, order key, action) of each operation; fails on Rejection/Filtered."""
    result = map_message(message, ctx, settings)
    assert isinstance(result, tuple), result
    return [(orjson.loads(op.body), op.order_key, op.action) for op in result]


def rejected(message: Message, settings: MappingSettings = SETTINGS) -> Rejection:
    result = map_message(message, CTX, settings)
    assert isinstance(result, Rejection), result
    return result


# ---- Object Deleted / Relationship Deleted ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            {"type": "track", "event": "Object Deleted", "anonymousId": "a1", "properties": {"objectId": "acme"}},
            ({"type": "object", "action": "delete", "identifiers": ACME}, "anon:a1", "object.delete"),
            id="Object Deleted → object delete, default type 1 (B.1)",
        ),
        pytest.param(
            {"type": "track", "event": "Object Deleted", "properties": {"objectId": 42, "objectTypeId": 2}},
            (
                {"type": "object", "action": "delete", "identifiers": {"object_type_id": "2", "object_id": "42"}},
                "object:2:42",
                "object.delete",
            ),
            id="integer objectTypeId and objectId stringified; no sender → the object's own order",
        ),
        pytest.param(
            {
                "type": "track",
                "event": "Object Deleted",
                "userId": "u1",
                "properties": {"objectId": "acme", "object_type_id": "3", "objectTypeId": 2},
            },
            (
                {"type": "object", "action": "delete", "identifiers": {"object_type_id": "3", "object_id": "acme"}},
                "id:u1",
                "object.delete",
            ),
            id="object_type_id wins over objectTypeId (Segment's order)",
        ),
        pytest.param(
            {"type": "track", "event": "Relationship Deleted", "userId": "42", "properties": {"objectId": "acme"}},
            (
                {
                    "type": "object",
                    "action": "delete_relationships",
                    "identifiers": ACME,
                    "cio_relationships": [{"identifiers": {"id": "42"}}],
                },
                "id:42",
                "object.delete_relationships",
            ),
            id="Relationship Deleted → object delete_relationships with the person (B.2)",
        ),
        pytest.param(
            {
                "type": "track",
                "event": "Relationship Deleted",
                "context": {"traits": {"email": "Ana@x.io"}},
                "properties": {"objectId": "acme", "objectTypeId": "2"},
            },
            (
                {
                    "type": "object",
                    "action": "delete_relationships",
                    "identifiers": {"object_type_id": "2", "object_id": "acme"},
                    "cio_relationships": [{"identifiers": {"email": "Ana@x.io"}}],
                },
                "email:ana@x.io",
                "object.delete_relationships",
            ),
            id="the person by context.traits.email",
        ),
    ],
)
def test_object_events_map_to_object_operations(message: Message, expected: tuple[Any, ...]) -> None:
    assert mapped(message) == [expected]


def test_object_event_names_are_configurable() -> None:
    config = dataclasses.replace(
        SETTINGS, object_delete_events=("Company Removed",), relationship_delete_events=("Left Company",)
    )
    [(op, _, _)] = mapped({"type": "track", "event": "Company Removed", "properties": {"objectId": "c"}}, config)
    assert op["action"] == "delete"
    [(op, _, _)] = mapped(
        {"type": "track", "userId": "u", "event": "Left Company", "properties": {"objectId": "c"}}, config
    )
    assert op["action"] == "delete_relationships"
    # The default names are now plain events, as the operator asked.
    [(op, _, _)] = mapped(
        {"type": "track", "userId": "u", "event": "Object Deleted", "properties": {"objectId": "c"}}, config
    )
    assert (op["type"], op["action"], op["name"]) == ("person", "event", "Object Deleted")


@pytest.mark.parametrize(
    ("message", "reason", "field"),
    [
        ({"type": "track", "event": "Object Deleted", "userId": "u"}, "missing_field", "properties.objectId"),
        (
            {"type": "track", "event": "Object Deleted", "userId": "u", "properties": {"objectId": ""}},
            "missing_field",
            "properties.objectId",
        ),
        (
            {"type": "track", "event": "Object Deleted", "properties": {"objectId": True}},
            "invalid_identifier",
            "properties.objectId",
        ),
        (
            {"type": "track", "event": "Object Deleted", "properties": {"objectId": "a", "objectTypeId": 0}},
            "invalid_field",
            "properties.objectTypeId",
        ),
        (
            {"type": "track", "event": "Relationship Deleted", "userId": "u", "properties": {"name": "x"}},
            "missing_field",
            "properties.objectId",
        ),
        (
            {"type": "track", "event": "Relationship Deleted", "anonymousId": "a", "properties": {"objectId": "x"}},
            "missing_identifier",
            "userId",
        ),
        (
            {
                "type": "track",
                "event": "Relationship Deleted",
                "userId": "u",
                "properties": {"objectId": "x", "object_type_id": "one"},
            },
            "invalid_field",
            "properties.object_type_id",
        ),
    ],
)
def test_incomplete_object_events_are_refused_naming_the_field(message: Message, reason: str, field: str) -> None:
    """Never a plain custom event: Customer.io would answer 200 and delete nothing."""
    result = rejected(message)
    assert result.reason == reason
    assert result.message.startswith(field + ":"), result.message


# ---- group: objectAttributes / relationshipAttributes ------------------------------------------------------


def test_group_splits_object_and_relationship_attributes() -> None:
    message = {
        "type": "group",
        "userId": "42",
        "groupId": "acme",
        "traits": {
            "objectTypeId": 2,
            "plan": "team",
            "objectAttributes": {"name": "Acme", "plan": "enterprise", "founded": "2020-01-01T00:00:00Z"},
            "relationshipAttributes": {"role": "admin", "since": "2024-01-01T00:00:00Z", "note": None},
        },
    }
    assert mapped(message) == [
        (
            {
                "type": "object",
                "action": "identify",
                "identifiers": {"object_type_id": "2", "object_id": "acme"},
                "attributes": {"plan": "enterprise", "name": "Acme", "founded": 1_577_836_800},
                "cio_relationships": [
                    {"identifiers": {"id": "42"}, "relationship_attributes": {"role": "admin", "since": 1_704_067_200}}
                ],
            },
            "id:42",
            "object.identify",
        )
    ]


def test_anonymous_group_keeps_relationship_attributes() -> None:
    message = {
        "type": "group",
        "anonymousId": "a1",
        "groupId": "acme",
        "traits": {"relationshipAttributes": {"role": "guest"}},
    }
    [(op, key, action)] = mapped(message)
    assert (key, action, op["attributes"]) == ("anon:a1", "object.identify_anonymous", {})
    assert op["cio_relationships"] == [
        {"identifiers": {"anonymous_id": "a1"}, "relationship_attributes": {"role": "guest"}}
    ]


def test_group_without_the_nested_keys_is_unchanged() -> None:
    message = {"type": "group", "userId": "42", "groupId": "acme", "traits": {"name": "Acme", "role": "x"}}
    [(op, _, _)] = mapped(message)
    assert op["attributes"] == {"name": "Acme", "role": "x"}
    assert op["cio_relationships"] == [{"identifiers": {"id": "42"}}]


@pytest.mark.parametrize(
    ("traits", "reason", "field"),
    [
        ({"objectAttributes": "Acme"}, "invalid_field", "traits.objectAttributes"),
        ({"relationshipAttributes": [1]}, "invalid_field", "traits.relationshipAttributes"),
        ({"relationshipAttributes": {"x" * 151: 1}}, "limit_exceeded", "traits.relationshipAttributes"),
    ],
)
def test_bad_nested_group_attributes_are_refused(traits: dict[str, Any], reason: str, field: str) -> None:
    result = rejected({"type": "group", "userId": "42", "groupId": "acme", "traits": traits})
    assert result.reason == reason
    assert result.message.startswith(field), result.message


@pytest.mark.parametrize(
    "traits",
    [
        pytest.param({"createdAt": TS}, id="createdAt ISO → created_at, not a custom createdAt attribute"),
        pytest.param({"created_at": TS_S * 1000}, id="created_at in milliseconds → seconds"),
        pytest.param({"created_at": str(TS_S)}, id="numeric string → integer seconds"),
        pytest.param({"objectAttributes": {"createdAt": TS}}, id="inside objectAttributes"),
        pytest.param({"created_at": TS_S, "relationshipAttributes": {"role": "x"}}, id="with relationship attributes"),
    ],
)
def test_group_created_at_is_unix_seconds(traits: dict[str, Any]) -> None:
    """Customer.io reads an object's creation time only as ``created_at`` in Unix seconds (Segment B.5)."""
    [(op, _, _)] = mapped({"type": "group", "userId": "42", "groupId": "acme", "traits": traits})
    assert op["attributes"] == {"created_at": TS_S}


@given(ms=st.integers(min_value=100_000_000_000, max_value=253_402_300_799_999))
@PROPERTY_SETTINGS
def test_group_created_at_milliseconds_become_floor_seconds(ms: int) -> None:
    [(op, _, _)] = mapped({"type": "group", "userId": "42", "groupId": "acme", "traits": {"createdAt": ms}})
    assert op["attributes"]["created_at"] == ms // 1000


def test_group_unreadable_created_at_is_refused_naming_the_field() -> None:
    result = rejected({"type": "group", "userId": "42", "groupId": "acme", "traits": {"createdAt": "soon"}})
    assert result.reason == "invalid_timestamp"
    assert result.message.startswith("traits.createdAt:"), result.message


def test_relationship_attributes_without_a_person_are_refused() -> None:
    """A group with no user has no relationship to hold them: refused, not silently dropped."""
    result = rejected({"type": "group", "groupId": "acme", "traits": {"relationshipAttributes": {"role": "x"}}})
    assert result.reason == "missing_identifier"
    assert result.message.startswith("userId:")


# ---- identify with traits.objectId ---------------------------------------------------------------------------


def test_identify_with_object_id_adds_the_relationship() -> None:
    message = {
        "type": "identify",
        "userId": "abc123",
        "traits": {
            "email": "a@b.co",
            "objectId": "g12345",
            "objectTypeId": 2,
            "relationshipAttributes": {"role": "admin"},
        },
    }
    assert mapped(message) == [
        (
            {
                "type": "person",
                "action": "identify",
                "identifiers": {"id": "abc123"},
                "attributes": {"email": "a@b.co", "objectId": "g12345"},
                "cio_relationships": [
                    {
                        "identifiers": {"object_type_id": "2", "object_id": "g12345"},
                        "relationship_attributes": {"role": "admin"},
                    }
                ],
            },
            "id:abc123",
            "person.identify",
        )
    ]


def test_identify_object_id_alone_relates_to_the_default_type() -> None:
    [(op, _, _)] = mapped({"type": "identify", "userId": "u", "traits": {"objectId": 7}})
    assert op["cio_relationships"] == [{"identifiers": {"object_type_id": "1", "object_id": "7"}}]


def test_identify_without_object_id_has_no_relationship() -> None:
    [(op, _, _)] = mapped({"type": "identify", "userId": "u", "traits": {"objectTypeId": 2, "plan": "x"}})
    assert "cio_relationships" not in op
    assert op["attributes"] == {"objectTypeId": 2, "plan": "x"}  # today's behaviour: a custom trait


def test_relationship_attributes_without_object_identifiers_are_refused() -> None:
    result = rejected({"type": "identify", "userId": "u", "traits": {"relationshipAttributes": {"role": "a"}}})
    assert result.reason == "missing_field"
    assert result.message.startswith("traits.objectId:")


def test_identify_relationship_from_context_traits() -> None:
    message = {"type": "identify", "userId": "u", "context": {"traits": {"objectId": "o", "relationshipAttributes": 1}}}
    result = rejected(message)
    assert (result.reason, result.message.split(":")[0]) == ("invalid_field", "context.traits.relationshipAttributes")


# ---- identify timestamp policy --------------------------------------------------------------------------------


IDENTIFY = {"type": "identify", "userId": "u", "traits": {"plan": "pro"}, "timestamp": TS}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("event", TS_S), ("now", 1_800_000_000), ("omit", None)],
)
def test_identify_timestamp_policy(policy: IdentifyTimestamp, expected: int | None) -> None:
    mapper = Mapper(dataclasses.replace(SETTINGS, identify_timestamp=policy), clock=lambda: 1_800_000_000.9)
    [operation] = mapper.map(IDENTIFY, CTX)  # type: ignore[misc]
    assert orjson.loads(operation.body).get("timestamp") == expected


def test_default_policy_omits_the_identify_timestamp_but_not_event_timestamps() -> None:
    """Only identify is affected: events keep their time (it orders nothing, and 72-hour triggers need it)."""
    [(identify, _, _)] = mapped(IDENTIFY)
    [(event, _, _)] = mapped({"type": "track", "userId": "u", "event": "E", "timestamp": TS})
    assert "timestamp" not in identify
    assert event["timestamp"] == TS_S


def test_a_bad_timestamp_is_refused_whatever_the_policy() -> None:
    result = rejected({**IDENTIFY, "timestamp": "soon"})
    assert (result.reason, result.message.split(":")[0]) == ("invalid_timestamp", "timestamp")


@pytest.mark.parametrize("record_policy", ["omit", "now"])
def test_the_record_override_wins_over_the_setting(record_policy: str) -> None:
    """``dlq replay --fresh-timestamps`` marks records ``omit``: the stale event time is not sent."""
    mapper = Mapper(dataclasses.replace(SETTINGS, identify_timestamp="event"), clock=lambda: 1_800_000_000.0)
    ctx = dataclasses.replace(CTX, identify_timestamp=record_policy)
    passthrough = {"type": "person", "action": "identify", "identifiers": {"id": "u"}, "timestamp": TS_S}
    for message in (IDENTIFY, passthrough):
        [operation] = mapper.map(message, ctx)  # type: ignore[misc]
        assert orjson.loads(operation.body).get("timestamp") == (None if record_policy == "omit" else 1_800_000_000)
    [event] = mapper.map({"type": "track", "userId": "u", "event": "E", "timestamp": TS}, ctx)  # type: ignore[misc]
    assert orjson.loads(event.body)["timestamp"] == TS_S


# ---- properties -------------------------------------------------------------------------------------------------

IDS = st.one_of(st.text(max_size=8), st.integers(-5, 10**6), st.none(), st.booleans(), st.floats(allow_nan=True))
TYPES = st.one_of(st.none(), st.integers(-2, 30), st.text(max_size=3), st.booleans())
OBJECTS = st.dictionaries(st.text(max_size=4), st.one_of(st.text(max_size=6), st.integers(), st.none()), max_size=4)
NESTED = st.one_of(OBJECTS, st.none(), st.text(max_size=3), st.integers())


@PROPERTY_SETTINGS
@given(object_id=IDS, object_type_id=TYPES, type_id_camel=TYPES)
def test_object_identity_is_valid_or_names_its_field(object_id: Any, object_type_id: Any, type_id_camel: Any) -> None:
    props = {"objectId": object_id, "object_type_id": object_type_id, "objectTypeId": type_id_camel}
    fields = {"properties.objectId", "properties.object_type_id", "properties.objectTypeId"}
    problem: Invalid | None = None
    identity = None
    try:
        identity = object_identity(props, "properties", "1")
    except Invalid as exc:
        problem = exc
    if problem is not None:
        assert problem.message.split(":")[0] in fields
        return
    if identity is None:
        assert object_id is None or (isinstance(object_id, str) and not object_id.strip())
        return
    assert identity.keys() == {"object_type_id", "object_id"}
    assert identity["object_type_id"].isdigit()
    assert int(identity["object_type_id"]) >= 1
    assert identity["object_id"]


@PROPERTY_SETTINGS
@given(
    event=st.sampled_from(["Object Deleted", "Relationship Deleted"]),
    user=st.one_of(st.none(), st.text(max_size=5)),
    anonymous=st.one_of(st.none(), st.text(max_size=5)),
    props=st.one_of(st.none(), st.fixed_dictionaries({}, optional={"objectId": IDS, "objectTypeId": TYPES})),
)
def test_object_events_are_object_operations_or_dead_letters(
    event: str, user: str | None, anonymous: str | None, props: dict[str, Any] | None
) -> None:
    """Never a person ``event``: the only other outcome is a dead letter with a reason."""
    message = {"type": "track", "event": event, "userId": user, "anonymousId": anonymous, "properties": props}
    result = map_message(message, CTX, SETTINGS)
    if isinstance(result, Rejection):
        assert result.reason in {"missing_field", "missing_identifier", "invalid_identifier", "invalid_field"}
        return
    assert isinstance(result, tuple)
    [operation] = result
    op = orjson.loads(operation.body)
    assert op["type"] == "object"
    assert op["action"] == ("delete" if event == "Object Deleted" else "delete_relationships")
    if op["action"] == "delete_relationships":
        assert len(op["cio_relationships"]) == 1


@PROPERTY_SETTINGS
@given(
    traits=st.fixed_dictionaries(
        {},
        optional={
            "objectAttributes": NESTED,
            "relationshipAttributes": NESTED,
            "objectId": IDS,
            "objectTypeId": TYPES,
            "plan": st.text(max_size=3),
        },
    ),
    kind=st.sampled_from(["group", "identify"]),
)
def test_relationship_attributes_never_become_object_or_person_attributes(traits: dict[str, Any], kind: str) -> None:
    message = {"type": kind, "userId": "u", "groupId": "g", "traits": traits}
    result = map_message(message, CTX, SETTINGS)
    if isinstance(result, Rejection):
        assert result.message.split(":")[0].startswith("traits"), result.message
        return
    assert isinstance(result, tuple)
    op = orjson.loads(result[0].body)
    assert "relationshipAttributes" not in op["attributes"]
    related = traits.get("relationshipAttributes")
    relationships = op.get("cio_relationships", [])
    if related and any(v is not None and v != "" for v in related.values()):
        assert relationships[0]["relationship_attributes"]
    if kind == "group":
        assert "objectAttributes" not in op["attributes"]
