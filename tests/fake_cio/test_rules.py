"""Pure tests of the fake's Customer.io rules: v2 operations, batch bodies, v1 bodies, transactional email."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.fake_cio import rules
from connector.fake_cio.rules import check_operation, check_timestamp, check_ulid, parse_batch
from connector.fake_cio.rules_v1 import (
    check_transactional_email,
    check_v1_delete_device,
    check_v1_device,
    check_v1_event,
    check_v1_identify,
    check_v1_merge,
    count_recipients,
)

ULID = "01JGD8S8Z6Q0R1W4K7M2T9B3XH"
TS = 1735689000
PERSON = {"id": "42"}
OBJECT = {"object_type_id": "1", "object_id": "acme"}


def person(action: str, **fields: Any) -> dict[str, Any]:
    """A person operation for ``{"id": "42"}``."""
    return {"type": "person", "action": action, "identifiers": dict(PERSON), **fields}


def obj(action: str, **fields: Any) -> dict[str, Any]:
    """An object operation for object type 1, id acme."""
    return {"type": "object", "action": action, "identifiers": dict(OBJECT), **fields}


EVENT = person("event", name="order_shipped", id=ULID, timestamp=TS, attributes={"order_id": "A-991"})

VALID: list[tuple[str, dict[str, Any]]] = [
    ("identify", person("identify", timestamp=TS, attributes={"email": "a@b.c", "plan": "pro", "created_at": TS})),
    ("identify with relationships", person("identify", cio_relationships=[{"identifiers": OBJECT}])),
    ("identify by email", {**person("identify"), "identifiers": {"email": "a@b.c"}}),
    ("identify by cio_id", {**person("identify"), "identifiers": {"cio_id": "03000001"}}),
    ("identify by phone", {**person("identify"), "identifiers": {"phone": "+14155552671"}}),
    ("identify, nested and null attributes", person("identify", attributes={"a": {"b": [1]}, "c": None})),
    ("event", EVENT),
    ("event without id or timestamp", person("event", name="x")),
    ("event, lower-case ULID", person("event", name="x", id=ULID.lower())),
    ("anonymous event", {**person("event", name="x"), "identifiers": {"anonymous_id": "anon-1"}}),
    ("page", person("page", name="https://example.com/a", attributes={"title": "A"})),
    ("screen", person("screen", name="Home")),
    ("event, long string property", person("event", name="x", attributes={"text": "y" * 5000})),
    ("delete", person("delete")),
    ("suppress", person("suppress")),
    ("unsuppress", person("unsuppress")),
    ("add_device", person("add_device", device={"token": "t", "platform": "ios", "last_used": TS})),
    ("add_device, null attribute (removal)", person("add_device", device={"token": "t", "platform": "ios", "attributes": {"x": None}})),
    ("add_device android with attributes", person("add_device", device={"token": "t", "platform": "android", "attributes": {"app_version": "3"}})),
    ("delete_device", person("delete_device", device={"token": "t"})),
    ("add_relationships", person("add_relationships", cio_relationships=[{"identifiers": {"cio_object_id": "o1"}}])),
    ("delete_relationships", person("delete_relationships", cio_relationships=[{"identifiers": OBJECT}])),
    ("merge", {"type": "person", "action": "merge", "primary": {"id": "1"}, "secondary": {"email": "d@e.f"}}),
    ("object identify", obj("identify", attributes={"name": "Acme"}, cio_relationships=[{"identifiers": {"id": "42"}, "relationship_attributes": {"role": "admin"}}])),
    ("object identify by cio_object_id", {**obj("identify"), "identifiers": {"cio_object_id": "x"}}),
    ("object identify_anonymous", obj("identify_anonymous", anonymous_id="anon-1")),
    ("object identify_anonymous, relationships", obj("identify_anonymous", cio_relationships=[{"identifiers": {"anonymous_id": "a"}}])),
    ("object delete", obj("delete")),
    ("object add_relationships", obj("add_relationships", cio_relationships=[{"identifiers": {"email": "a@b.c"}}])),
    ("object delete_relationships", obj("delete_relationships", cio_relationships=[{"identifiers": {"id": "1"}}])),
    ("delivery event", {"type": "delivery", "action": "event", "identifiers": {"id": "dlv-1"}, "name": "opened", "attributes": {"device_token": "t"}}),
    ("identifier of exactly 150 bytes", {**person("delete"), "identifiers": {"id": "é" * 75}}),
]  # fmt: skip


@pytest.mark.parametrize(("_label", "op"), VALID, ids=[label for label, _ in VALID])
def test_valid_operations(_label: str, op: dict[str, Any]) -> None:
    """Operations Customer.io documents as valid pass."""
    assert check_operation(op) is None


def _with(op: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    copied = copy.deepcopy(op)
    *parents, leaf = path.split(".")
    target = copied
    for key in parents:
        target = target[key]
    target[leaf] = value
    return copied


def _without(op: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in op.items() if k != key}


INVALID: list[tuple[str, Any, str, str]] = [
    ("not an object", ["x"], "invalid_operation", ""),
    ("unknown type", {**EVENT, "type": "user"}, "invalid_type", "type"),
    ("unknown action", person("track"), "invalid_action", "action"),
    ("person action on an object", obj("event", name="x"), "invalid_action", "action"),
    ("no identifiers", _without(EVENT, "identifiers"), "missing_identifier", "identifiers"),
    ("empty identifiers", {**EVENT, "identifiers": {}}, "missing_identifier", "identifiers"),
    ("two identifiers", {**EVENT, "identifiers": {"id": "1", "email": "a@b.c"}}, "multiple_identifiers", "identifiers"),
    ("unknown identifier", {**EVENT, "identifiers": {"user_id": "1"}}, "invalid_identifier", "identifiers"),
    ("empty id", {**EVENT, "identifiers": {"id": ""}}, "invalid_identifier", "identifiers.id"),
    ("blank id", {**EVENT, "identifiers": {"id": "  "}}, "invalid_identifier", "identifiers.id"),
    ("numeric id", {**EVENT, "identifiers": {"id": 42}}, "invalid_identifier", "identifiers.id"),
    ("id over 150 bytes", {**EVENT, "identifiers": {"id": "é" * 76}}, "limit_exceeded", "identifiers.id"),
    ("phone not E.164", {**person("identify"), "identifiers": {"phone": "555-1234"}}, "invalid_identifier", "identifiers.phone"),
    ("anonymous_id on identify", {**person("identify"), "identifiers": {"anonymous_id": "a"}}, "invalid_identifier", "identifiers"),
    ("millisecond timestamp", {**EVENT, "timestamp": TS * 1000}, "invalid_timestamp", "timestamp"),
    ("float timestamp", {**EVENT, "timestamp": TS + 0.5}, "invalid_timestamp", "timestamp"),
    ("ISO timestamp", {**EVENT, "timestamp": "2025-01-01T00:00:00Z"}, "invalid_timestamp", "timestamp"),
    ("boolean timestamp", {**EVENT, "timestamp": True}, "invalid_timestamp", "timestamp"),
    ("null timestamp", {**EVENT, "timestamp": None}, "invalid_timestamp", "timestamp"),
    ("9-digit timestamp", {**EVENT, "timestamp": 999_999_999}, "invalid_timestamp", "timestamp"),
    ("event without name", _without(EVENT, "name"), "missing_field", "name"),
    ("event with blank name", {**EVENT, "name": " "}, "missing_field", "name"),
    ("event name over 100 bytes", {**EVENT, "name": "é" * 51}, "limit_exceeded", "name"),
    ("UUID event id", {**EVENT, "id": "0f8fad5b-d9cb-469f-a165-70867728950e"}, "invalid_id", "id"),
    ("ULID over 128 bits", {**EVENT, "id": "8" + ULID[1:]}, "invalid_id", "id"),
    ("ULID with U", {**EVENT, "id": ULID[:-1] + "U"}, "invalid_id", "id"),
    ("numeric event id", {**EVENT, "id": 7}, "invalid_id", "id"),
    ("event attributes not an object", {**EVENT, "attributes": [1]}, "invalid_field", "attributes"),
    ("page without name", person("page"), "missing_field", "name"),
    ("301 attributes", person("identify", attributes={f"a{i}": i for i in range(301)}), "limit_exceeded", "attributes"),
    ("attribute name over 150 bytes", person("identify", attributes={"n" * 151: 1}), "limit_exceeded", "attributes." + "n" * 40),
    ("attribute value over 1000 bytes", person("identify", attributes={"bio": "€" * 334}), "limit_exceeded", "attributes.bio"),
    ("created_at in milliseconds", person("identify", attributes={"created_at": TS * 1000}), "invalid_timestamp", "attributes.created_at"),
    ("created_at as ISO", person("identify", attributes={"created_at": "2025-01-01"}), "invalid_timestamp", "attributes.created_at"),
    ("_timestamp as float", person("identify", attributes={"_timestamp": 1.5e9}), "invalid_timestamp", "attributes._timestamp"),
    ("attributes not an object", person("identify", attributes="x"), "invalid_field", "attributes"),
    ("add_device without device", person("add_device"), "missing_field", "device"),
    ("add_device without token", person("add_device", device={"platform": "ios"}), "missing_field", "device.token"),
    ("add_device on the web", person("add_device", device={"token": "t", "platform": "web"}), "invalid_field", "device.platform"),
    ("add_device boolean attribute", person("add_device", device={"token": "t", "platform": "ios", "attributes": {"push_enabled": True}}), "invalid_field", "device.attributes.push_enabled"),
    ("add_device numeric attribute", person("add_device", device={"token": "t", "platform": "ios", "attributes": {"app_version": 3}}), "invalid_field", "device.attributes.app_version"),
    ("add_device last_used in ms", person("add_device", device={"token": "t", "platform": "ios", "last_used": TS * 1000}), "invalid_timestamp", "device.last_used"),
    ("delete_device without token", person("delete_device", device={}), "missing_field", "device.token"),
    ("relationships empty", person("add_relationships", cio_relationships=[]), "invalid_field", "cio_relationships"),
    ("relationship with person ids", person("add_relationships", cio_relationships=[{"identifiers": {"id": "1"}}]), "invalid_identifier", "cio_relationships.0.identifiers"),
    ("merge with identifiers", {**person("merge"), "primary": {"id": "1"}, "secondary": {"id": "2"}}, "invalid_field", "identifiers"),
    ("merge side with two ids", {"type": "person", "action": "merge", "primary": {"id": "1", "email": "a@b.c"}, "secondary": {"id": "2"}}, "multiple_identifiers", "primary"),
    ("merge without secondary", {"type": "person", "action": "merge", "primary": {"id": "1"}}, "missing_identifier", "secondary"),
    ("merge by phone", {"type": "person", "action": "merge", "primary": {"phone": "+14155552671"}, "secondary": {"id": "2"}}, "invalid_identifier", "primary"),
    ("object without object_id", {**obj("identify"), "identifiers": {"object_type_id": "1"}}, "invalid_identifier", "identifiers"),
    ("object type 0", {**obj("identify"), "identifiers": {"object_type_id": "0", "object_id": "x"}}, "invalid_identifier", "identifiers.object_type_id"),
    ("numeric object type", {**obj("identify"), "identifiers": {"object_type_id": 1, "object_id": "x"}}, "invalid_identifier", "identifiers.object_type_id"),
    ("object with person identifiers", {**obj("delete"), "identifiers": {"id": "1"}}, "invalid_identifier", "identifiers"),
    ("object delete without identifiers", {"type": "object", "action": "delete"}, "missing_identifier", "identifiers"),
    ("object delete by person id", {"type": "object", "action": "delete", "identifiers": {"object_id": "acme"}}, "invalid_identifier", "identifiers"),
    ("object delete_relationships without cio_relationships", obj("delete_relationships"), "invalid_field", "cio_relationships"),
    ("object delete_relationships, none listed", obj("delete_relationships", cio_relationships=[]), "invalid_field", "cio_relationships"),
    ("object delete_relationships to an object", obj("delete_relationships", cio_relationships=[{"identifiers": {"object_type_id": "1", "object_id": "x"}}]), "multiple_identifiers", "cio_relationships.0.identifiers"),
    ("object delete_relationships without person", obj("delete_relationships", cio_relationships=[{"relationship_attributes": {}}]), "missing_identifier", "cio_relationships.0.identifiers"),
    ("object relationship to two ids", obj("add_relationships", cio_relationships=[{"identifiers": {"id": "1", "email": "e"}}]), "multiple_identifiers", "cio_relationships.0.identifiers"),
    ("relationship attribute too long", obj("identify", cio_relationships=[{"identifiers": {"id": "1"}, "relationship_attributes": {"r": "x" * 1001}}]), "limit_exceeded", "cio_relationships.0.relationship_attributes.r"),
    ("identify_anonymous without anything", obj("identify_anonymous"), "invalid_field", "cio_relationships"),
    ("delivery metric clicked", {"type": "delivery", "action": "event", "identifiers": {"id": "d"}, "name": "clicked", "attributes": {"device_token": "t"}}, "invalid_field", "name"),
    ("delivery without device_token", {"type": "delivery", "action": "event", "identifiers": {"id": "d"}, "name": "opened"}, "missing_field", "attributes.device_token"),
    ("delivery by email", {"type": "delivery", "action": "event", "identifiers": {"email": "d"}, "name": "opened"}, "invalid_identifier", "identifiers"),
    ("operation over 32,000 bytes", person("identify", attributes={f"a{i}": "x" * 900 for i in range(40)}), "too_large", ""),
]  # fmt: skip


@pytest.mark.parametrize(("label", "op", "reason", "field"), INVALID, ids=[row[0] for row in INVALID])
def test_invalid_operations(label: str, op: Any, reason: str, field: str) -> None:
    """Each documented rule rejects with its reason and names the field."""
    problem = check_operation(op)
    assert problem is not None, label
    assert (problem["reason"], problem["field"]) == (reason, field)
    assert problem["message"]


def test_operation_size_boundary() -> None:
    """An operation of exactly 32,000 serialized bytes passes; one byte more is too large."""
    op = person("event", name="x", attributes={"p": ""})
    op["attributes"]["p"] = "x" * (rules.MAX_OPERATION_BYTES - len(orjson.dumps(op)))
    assert len(orjson.dumps(op)) == rules.MAX_OPERATION_BYTES
    assert check_operation(op) is None
    op["attributes"]["p"] += "x"
    assert check_operation(op) == rules.error("too_large", "", "operation larger than 32000 bytes")


def test_given_size_is_trusted() -> None:
    """A size passed by the caller is used instead of serializing again."""
    assert check_operation(EVENT, size=rules.MAX_OPERATION_BYTES + 1) is not None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "invalid_json"),
        (b"[]", "invalid_field"),
        (b'{"batch": {}}', "invalid_field"),
        (b'{"ops": []}', "invalid_field"),
        (b'{"batch": []}' + b" " * rules.MAX_BATCH_BYTES, "too_large"),
    ],
)
def test_parse_batch_rejects_whole_body(body: bytes, reason: str) -> None:
    """A body that is not {"batch": [...]} or is over 500,000 bytes rejects the whole request."""
    parsed = parse_batch(body)
    assert isinstance(parsed, dict)
    assert parsed["reason"] == reason


def test_parse_batch_returns_operations() -> None:
    """A well-formed body gives its operations, valid or not."""
    assert parse_batch(orjson.dumps({"batch": [EVENT, 1]})) == [EVENT, 1]


# --- properties -----------------------------------------------------------------------------------------

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# orjson.loads gives integers in [-2**63, 2**64) (larger ones become floats), so the fake never sees others.
json_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
json_leaf = st.none() | st.booleans() | json_ints | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
op_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["person", "object", "delivery", "x"]),
        "action": st.sampled_from([*sorted(rules.PERSON_ACTIONS | rules.OBJECT_ACTIONS), "y"]),
    },
    optional={
        "identifiers": json_values | st.dictionaries(st.sampled_from(["id", "email", "anonymous_id"]), json_leaf),
        "name": json_leaf,
        "id": json_leaf,
        "timestamp": json_leaf,
        "attributes": json_values,
        "device": json_values,
        "cio_relationships": json_values,
        "primary": json_values,
        "secondary": json_values,
    },
)


@given(op_like)
def test_check_operation_never_raises(op: dict[str, Any]) -> None:
    """Any JSON shape gives None or a well-formed error, never an exception."""
    problem = check_operation(op)
    assert problem is None or set(problem) == {"reason", "field", "message"}


@given(st.integers())
def test_integer_timestamps(ts: int) -> None:
    """Integers are accepted exactly when they have 10 or 11 digits."""
    assert (check_timestamp(ts, "t") is None) == (999_999_999 < ts < 100_000_000_000)


@given(st.floats(allow_nan=True) | st.text() | st.booleans())
def test_non_integer_timestamps(ts: object) -> None:
    """Floats, strings and booleans are never timestamps."""
    assert check_timestamp(ts, "t") is not None


@given(st.sampled_from("01234567"), st.text(alphabet=CROCKFORD + CROCKFORD.lower(), min_size=25, max_size=25))
def test_ulids_accepted(first: str, rest: str) -> None:
    """Every 26-character Crockford string starting 0-7 is a ULID, in either case."""
    assert check_ulid(first + rest) is None


@given(st.text(max_size=30))
def test_non_ulids_rejected(text: str) -> None:
    """A string is a ULID only with 26 Crockford characters starting 0-7."""
    valid = len(text) == 26 and text[0] in "01234567" and all(c in CROCKFORD for c in text.upper())
    assert (check_ulid(text) is None) == valid


@given(st.text(max_size=200))
def test_identifier_bytes(value: str) -> None:
    """Identifiers are accepted when non-blank and at most 150 UTF-8 bytes."""
    expected = bool(value.strip()) and len(value.encode()) <= 150
    assert (rules.check_identifier(value, "id") is None) == expected


@given(st.lists(st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.com", fullmatch=True), min_size=1, max_size=20))
def test_count_recipients(addresses: list[str]) -> None:
    """Recipients are counted per comma-separated address."""
    assert count_recipients(", ".join(addresses)) == len(addresses)


def test_count_recipients_quoted_names() -> None:
    """A comma inside a quoted display name does not split an address."""
    assert count_recipients('"Doe, Jane" <jane@x.com>, bob@x.com,') == 2


# --- v1 and App API bodies -----------------------------------------------------------------------------

V1_CASES: list[tuple[str, Any, str | None]] = [
    ("identify ok", check_v1_identify("42", {"email": "a@b.c", "created_at": TS}), None),
    ("identify, body not an object", check_v1_identify("42", [1]), "invalid_json"),
    ("identify, empty identifier", check_v1_identify("", {}), "invalid_identifier"),
    ("identify, 301 attributes", check_v1_identify("42", {f"a{i}": 1 for i in range(301)}), "limit_exceeded"),
    ("identify, created_at in ms", check_v1_identify("42", {"created_at": TS * 1000}), "invalid_timestamp"),
    ("event ok", check_v1_event("42", {"name": "x", "type": "page", "data": {"a": 1}, "timestamp": TS, "id": ULID}), None),
    ("event without name", check_v1_event("42", {"data": {}}), "missing_field"),
    ("event, unknown type", check_v1_event("42", {"name": "x", "type": "track"}), "invalid_field"),
    ("event, ms timestamp", check_v1_event("42", {"name": "x", "timestamp": TS * 1000}), "invalid_timestamp"),
    ("event, UUID id", check_v1_event("42", {"name": "x", "id": "0f8fad5b-d9cb-469f-a165-70867728950e"}), "invalid_id"),
    ("event data over 100,000 bytes", check_v1_event("42", {"name": "x", "data": {"d": "x" * 100_000}}), "limit_exceeded"),
    ("anonymous event", check_v1_event(None, {"name": "x", "anonymous_id": "anon"}), None),
    ("invite event without anonymous_id", check_v1_event(None, {"name": "x", "data": {"recipient": "a@b.c"}}), None),
    ("anonymous_id over 150 bytes", check_v1_event(None, {"name": "x", "anonymous_id": "a" * 151}), "limit_exceeded"),
    ("device ok", check_v1_device("42", {"device": {"id": "tok", "platform": "ios", "last_used": TS}}), None),
    ("device without id", check_v1_device("42", {"device": {"platform": "ios"}}), "missing_field"),
    ("device v2 token spelling", check_v1_device("42", {"device": {"token": "t", "platform": "ios"}}), "missing_field"),
    ("device platform web", check_v1_device("42", {"device": {"id": "t", "platform": "web"}}), "invalid_field"),
    ("device body not an object", check_v1_device("42", "x"), "invalid_json"),
    ("device boolean attribute", check_v1_device("42", {"device": {"id": "t", "platform": "ios", "attributes": {"push_enabled": False}}}), "invalid_field"),
    ("delete device ok", check_v1_delete_device("42", "tok"), None),
    ("delete device blank token", check_v1_delete_device("42", " "), "missing_field"),
    ("merge ok", check_v1_merge({"primary": {"id": "1"}, "secondary": {"cio_id": "c"}}), None),
    ("merge two ids in a side", check_v1_merge({"primary": {"id": "1"}, "secondary": {"id": "2", "email": "e"}}), "multiple_identifiers"),
    ("merge body not an object", check_v1_merge(None), "invalid_json"),
]  # fmt: skip


@pytest.mark.parametrize(("_label", "problem", "reason"), V1_CASES, ids=[row[0] for row in V1_CASES])
def test_v1_bodies(_label: str, problem: rules.RuleError | None, reason: str | None) -> None:
    """v1 bodies follow the same limits as v2 operations."""
    assert (problem and problem["reason"]) == reason


EMAIL = {"to": "ana@example.com", "identifiers": {"id": "42"}, "transactional_message_id": 7}

TRANSACTIONAL_CASES: list[tuple[str, Any, str | None]] = [
    ("template id", EMAIL, None),
    ("trigger name", {**EMAIL, "transactional_message_id": "welcome"}, None),
    ("inline message", {**_without(EMAIL, "transactional_message_id"), "body": "b", "subject": "s", "from": "f@x.com"}, None),
    ("15 recipients", {**EMAIL, "to": ",".join(f"u{i}@x.com" for i in range(10)), "cc": ",".join(f"c{i}@x.com" for i in range(5))}, None),
    ("16 recipients", {**EMAIL, "to": ",".join(f"u{i}@x.com" for i in range(10)), "bcc": ",".join(f"c{i}@x.com" for i in range(6))}, "limit_exceeded"),
    ("no to", _without(EMAIL, "to"), "missing_field"),
    ("blank to", {**EMAIL, "to": " "}, "missing_field"),
    ("no identifiers", _without(EMAIL, "identifiers"), "missing_identifier"),
    ("two identifiers", {**EMAIL, "identifiers": {"id": "1", "email": "a@b.c"}}, "multiple_identifiers"),
    ("phone identifier", {**EMAIL, "identifiers": {"phone": "+14155552671"}}, "invalid_identifier"),
    ("neither template nor inline", _without(EMAIL, "transactional_message_id"), "missing_field"),
    ("inline without from", {**_without(EMAIL, "transactional_message_id"), "body": "b", "subject": "s"}, "missing_field"),
    ("message_data not an object", {**EMAIL, "message_data": "x"}, "invalid_field"),
    ("send_at in ms", {**EMAIL, "send_at": TS * 1000}, "invalid_timestamp"),
    ("not an object", [EMAIL], "invalid_json"),
    ("cc not a string", {**EMAIL, "cc": ["c@x.com"]}, "invalid_field"),
    ("attachments", {**EMAIL, "attachments": {"a.pdf": "aGVsbG8=", "b.txt": ""}}, None),
    ("attachments not an object", {**EMAIL, "attachments": ["aGVsbG8="]}, "invalid_field"),
    ("attachment not a string", {**EMAIL, "attachments": {"a.pdf": 5}}, "invalid_field"),
    ("attachment not base64", {**EMAIL, "attachments": {"a.pdf": "not base64!"}}, "invalid_field"),
]  # fmt: skip


@pytest.mark.parametrize(("_label", "body", "reason"), TRANSACTIONAL_CASES, ids=[r[0] for r in TRANSACTIONAL_CASES])
def test_transactional_email(_label: str, body: Any, reason: str | None) -> None:
    """Transactional sends need to, one identifier and a template or an inline message (App API docs)."""
    problem = check_transactional_email(body, len(orjson.dumps(body)))
    assert (problem and problem["reason"]) == reason


@pytest.mark.parametrize(
    ("ahead", "reason"), [(90 * 86_400, None), (90 * 86_400 + 1, "invalid_field"), (-86_400, None)]
)
def test_transactional_send_at_at_most_90_days_ahead(ahead: int, reason: str | None) -> None:
    """send_at may be up to 90 days ahead; a past one sends now (App API docs)."""
    problem = check_transactional_email({**EMAIL, "send_at": TS + ahead}, 1000, now=TS)
    assert (problem and (problem["reason"], problem["field"])) == (reason and (reason, "send_at"))


def test_transactional_email_size() -> None:
    """A request over 2048 KB is rejected before anything else."""
    problem = check_transactional_email(EMAIL, 2048 * 1024 + 1)
    assert problem is not None
    assert problem["reason"] == "too_large"


@pytest.mark.parametrize(
    ("sizes", "reason"), [((2 * 1024 * 1024 - 4,), None), ((1024 * 1024, 1024 * 1024), "too_large")]
)
def test_transactional_attachments_total_under_2_mb(sizes: tuple[int, ...], reason: str | None) -> None:
    """Attachments' base64 contents together must stay under 2 MB (checked even when the request size is not
    what gives it away: the size passed in is trusted)."""
    body = {**EMAIL, "attachments": {f"f{i}.bin": "A" * size for i, size in enumerate(sizes)}}
    problem = check_transactional_email(body, 1000)
    assert (problem and (problem["reason"], problem["field"])) == (reason and (reason, "attachments"))
