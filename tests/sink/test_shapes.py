"""Declarative per-topic mappings and the Debezium preset: compiling, each rule, and the records they build."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config import MappingSettings, load_settings
from connector.errors import ConfigError
from connector.sink.mapping.decode import decode_record, decode_shaped
from connector.sink.mapping.mapper import Mapper
from connector.sink.mapping.model import Message, MessageContext, Operation, Rejection
from connector.sink.mapping.paths import MISSING, PathError, get, getter, parse_path, show_path
from connector.sink.mapping.shapes import RecordShape, compile_shape

WHERE = "topics.orders.mapping"
PRODUCT: dict[str, Any] = {
    "type": "track",
    "user_id": "$.user.id",
    "event": "$.action",
    "properties": "$.details",
    "timestamp": "$.at",
    "timestamp_format": "unix_s",
}
CTX = MessageContext("orders", 0, 5, 0, 1_735_689_600_000)


def shape(**fields: Any) -> RecordShape:
    return compile_shape(fields, WHERE)


def one(result: list[Message] | Rejection) -> Message:
    assert isinstance(result, list), result
    (message,) = result
    return message


def rejected(result: list[Message] | Rejection) -> Rejection:
    assert isinstance(result, Rejection), result
    return result


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---- paths -----------------------------------------------------------------------------------------


def test_paths_parse_keys_and_indexes_and_print_back() -> None:
    assert parse_path("$.items[2].sku") == ("items", 2, "sku")
    assert parse_path("$") == ()
    assert show_path(("items", 2, "sku")) == "$.items[2].sku"


@pytest.mark.parametrize("text", ["user.id", "$.", "$..a", "$.a[x]", "$.a[-1]", "$a", "$.a[1"])
def test_malformed_paths_are_refused(text: str) -> None:
    with pytest.raises(PathError):
        parse_path(text)


def test_a_path_that_leads_nowhere_is_missing_and_null_is_a_value() -> None:
    doc = {"a": {"b": None}, "l": [1]}
    assert get(doc, ("a", "b")) is None
    assert get(doc, ("a", "c")) is MISSING
    assert get(doc, ("l", 1)) is MISSING
    assert get(doc, ("a", "b", "c")) is MISSING
    assert get(doc, ("l", "x")) is MISSING


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=12,
)
steps_strategy = st.lists(st.sampled_from(["a", "b", "c"]) | st.integers(0, 2), max_size=3).map(tuple)


@given(json_values, steps_strategy)
def test_the_specialized_getter_answers_as_get(doc: Any, steps: tuple[str | int, ...]) -> None:
    assert getter(steps)(doc) == get(doc, steps) or getter(steps)(doc) is get(doc, steps)


# ---- the fields kind -------------------------------------------------------------------------------


def test_a_custom_shape_becomes_the_track_message_it_describes() -> None:
    record = {"user": {"id": "u1"}, "action": "checkout", "at": 1_700_000_000, "details": {"total": 9.5}}
    assert one(shape(**PRODUCT).messages(record)) == {
        "type": "track",
        "userId": "u1",
        "event": "checkout",
        "properties": {"total": 9.5},
        "timestamp": 1_700_000_000_000,
    }


def test_the_mapped_record_gives_the_same_operation_as_the_segment_record() -> None:
    """Operations are identical to a Segment record with the same content (same path after the mapping)."""
    custom = {"user": {"id": "u1"}, "action": "checkout", "at": 1_700_000_000, "details": {"total": 9.5}}
    segment = {
        "type": "track",
        "userId": "u1",
        "event": "checkout",
        "properties": {"total": 9.5},
        "timestamp": 1_700_000_000,
    }
    mapper = Mapper(MappingSettings())
    mapped = decode_shaped(orjson.dumps(custom), shape(**PRODUCT))
    plain = decode_record(orjson.dumps(segment))
    assert isinstance(mapped, list)
    assert isinstance(plain, list)
    ours, theirs = mapper.map(mapped[0], CTX), mapper.map(plain[0], CTX)
    assert isinstance(ours, tuple)
    assert isinstance(theirs, tuple)
    assert [op.body for op in ours] == [op.body for op in theirs]
    assert isinstance(ours[0], Operation)


def test_ids_are_paths_only_since_a_constant_id_would_merge_every_record_into_one_person() -> None:
    with pytest.raises(ConfigError) as caught:
        shape(type="track", user_id="user.id", event="E")
    assert caught.value.key == f"{WHERE}.user_id"


def test_constants_for_event_and_properties_and_a_dollar_escape() -> None:
    mapped = one(
        shape(type="track", user_id="$.u", event="Order Completed", properties={"cur": "$$USD"}).messages({"u": 1})
    )
    assert mapped["event"] == "Order Completed"
    assert mapped["properties"] == {"cur": "$USD"}


def test_listed_fields_are_named_by_their_last_key_and_missing_ones_left_out() -> None:
    mapped = one(
        shape(type="identify", user_id="$.id", traits=["$.profile.plan", "$.profile.age"]).messages(
            {"id": 1, "profile": {"plan": "pro"}}
        )
    )
    assert mapped["traits"] == {"plan": "pro"}
    assert "event" not in mapped


def test_page_and_screen_take_the_event_as_their_name() -> None:
    assert (
        one(shape(type="screen", anonymous_id="$.device", event="$.view").messages({"device": "d", "view": "Cart"}))[
            "name"
        ]
        == "Cart"
    )


def test_anonymous_id_alone_places_the_record() -> None:
    mapped = one(shape(type="track", user_id="$.uid", anonymous_id="$.anon", event="E").messages({"anon": "a1"}))
    assert mapped == {"type": "track", "anonymousId": "a1", "event": "E"}


def test_a_record_without_its_ids_is_missing_field_naming_the_paths() -> None:
    result = rejected(shape(type="track", user_id="$.user.id", anonymous_id="$.anon", event="E").messages({"user": {}}))
    assert result.reason == "missing_field"
    assert "$.user.id" in result.message
    assert "$.anon" in result.message


def test_a_record_without_its_event_is_missing_field_naming_the_path() -> None:
    result = rejected(shape(**PRODUCT).messages({"user": {"id": "u"}, "action": None}))
    assert (result.reason, result.message) == ("missing_field", "event: $.action not found in the record")


def test_a_subtree_that_is_not_an_object_is_invalid_field() -> None:
    result = rejected(shape(**PRODUCT).messages({"user": {"id": "u"}, "action": "a", "details": [1]}))
    assert result.reason == "invalid_field"
    assert "$.details" in result.message


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ("unix_s", 1_700_000_000, 1_700_000_000_000),
        ("unix_s", "1700000000", 1_700_000_000_000),
        ("unix_s", 5, 5.0),  # early 1970: seconds, which the Segment path reads back as seconds
        ("unix_ms", 1_700_000_000_123, 1_700_000_000_123),
        ("unix_ms", 5000, 5.0),
        ("iso", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
    ],
)
def test_timestamp_formats_reach_the_segment_path_as_the_same_instant(fmt: str, value: Any, expected: Any) -> None:
    mapped = one(
        shape(type="track", user_id="$.u", event="E", timestamp="$.t", timestamp_format=fmt).messages(
            {"u": 1, "t": value}
        )
    )
    assert mapped["timestamp"] == expected


@pytest.mark.parametrize(
    ("fmt", "value"), [("unix_s", "yesterday"), ("iso", 1_700_000_000), ("unix_ms", -1), ("unix_s", True)]
)
def test_an_unreadable_timestamp_is_invalid_timestamp_naming_the_path(fmt: str, value: Any) -> None:
    result = rejected(
        shape(type="track", user_id="$.u", event="E", timestamp="$.t", timestamp_format=fmt).messages(
            {"u": 1, "t": value}
        )
    )
    assert result.reason == "invalid_timestamp"
    assert "$.t" in result.message


def test_a_missing_timestamp_leaves_the_kafka_time_to_the_segment_path() -> None:
    mapped = one(
        shape(type="track", user_id="$.u", event="E", timestamp="$.t", timestamp_format="iso").messages({"u": 1})
    )
    assert "timestamp" not in mapped


# ---- rules -----------------------------------------------------------------------------------------


def test_drop_removes_the_field_before_the_subtree_is_read() -> None:
    mapped = one(
        shape(**PRODUCT, drop=["$.details.password"]).messages(
            {"user": {"id": 1}, "action": "a", "details": {"password": "x", "k": 1}}
        )
    )
    assert mapped["properties"] == {"k": 1}


def test_rename_moves_the_value_to_the_new_key() -> None:
    mapped = one(
        shape(**PRODUCT, rename={"$.details.mail": "email"}).messages(
            {"user": {"id": 1}, "action": "a", "details": {"mail": "a@b.c"}}
        )
    )
    assert mapped["properties"] == {"email": "a@b.c"}


def test_hash_replaces_pii_with_its_sha256_after_rename() -> None:
    rules = {"rename": {"$.details.mail": "email"}, "hash": ["$.details.email", "$.user.id"]}
    mapped = one(
        shape(**PRODUCT, **rules).messages({"user": {"id": "a@b.c"}, "action": "a", "details": {"mail": "a@b.c"}})
    )
    assert mapped["properties"] == {"email": sha("a@b.c")}
    assert mapped["userId"] == sha("a@b.c")


def test_hash_of_a_number_hashes_its_json_text_and_leaves_null_alone() -> None:
    mapped = one(
        shape(**PRODUCT, hash=["$.details.n", "$.details.z"]).messages(
            {"user": {"id": 1}, "action": "a", "details": {"n": 42, "z": None}}
        )
    )
    assert mapped["properties"] == {"n": sha("42"), "z": None}


def test_hash_of_an_integer_past_64_bits_uses_its_decimal_text() -> None:
    """orjson cannot write such an integer: once a TypeError out of the mapping, found by Hypothesis."""
    record = {"user": {"id": 1}, "action": "a", "details": {"n": 2**70}}
    assert one(shape(**PRODUCT, hash=["$.details.n"]).messages(record))["properties"] == {"n": sha(str(2**70))}


def test_rules_on_absent_fields_change_nothing() -> None:
    record = {"user": {"id": 1}, "action": "a", "details": {"k": 1}}
    rules = {"drop": ["$.x.y"], "rename": {"$.details.q": "r"}, "hash": ["$.user.email"]}
    assert one(shape(**PRODUCT, **rules).messages(record))["properties"] == {"k": 1}


# ---- debezium --------------------------------------------------------------------------------------

USERS = shape(preset="debezium")
ROW = {"id": 42, "email": "ana@example.com", "plan": "pro"}


def test_debezium_create_with_the_schema_envelope_is_an_identify_with_after_as_traits() -> None:
    record = {
        "schema": {"type": "struct"},
        "payload": {"op": "c", "before": None, "after": ROW, "ts_ms": 1_700_000_000_123},
    }
    assert one(USERS.messages(record)) == {
        "type": "identify",
        "userId": 42,
        "traits": ROW,
        "timestamp": 1_700_000_000_123,
    }


@pytest.mark.parametrize("op", ["u", "r"])
def test_debezium_update_and_snapshot_read_without_envelope_are_identifies(op: str) -> None:
    assert one(USERS.messages({"op": op, "after": ROW}))["type"] == "identify"


def test_debezium_delete_is_user_deleted_from_before() -> None:
    assert one(USERS.messages({"op": "d", "before": {"id": 42}, "after": None})) == {
        "type": "track",
        "event": "User Deleted",
        "userId": 42,
    }


def test_debezium_key_field_and_row_rules_are_configurable() -> None:
    users = shape(preset="debezium", key="$.user_id", hash=["$.email"], drop=["$.plan"])
    traits = one(users.messages({"op": "c", "after": {"user_id": "u-1", "email": "a@b.c", "plan": "x"}}))
    assert traits == {"type": "identify", "userId": "u-1", "traits": {"user_id": "u-1", "email": sha("a@b.c")}}


def test_debezium_object_entity_identifies_and_deletes_objects() -> None:
    companies = shape(preset="debezium", entity="object", object_type_id=2)
    assert one(companies.messages({"op": "c", "after": {"id": 7, "name": "Acme"}})) == {
        "type": "object",
        "action": "identify",
        "identifiers": {"object_type_id": "2", "object_id": 7},
        "attributes": {"id": 7, "name": "Acme"},
    }
    assert one(companies.messages({"op": "d", "before": {"id": 7}})) == {
        "type": "object",
        "action": "delete",
        "identifiers": {"object_type_id": "2", "object_id": 7},
    }


@pytest.mark.parametrize(
    ("record", "reason", "named"),
    [
        ({"op": "c", "after": {"name": "x"}}, "missing_field", "after.id"),
        ({"op": "d", "before": None}, "missing_field", "before"),
        ({"after": ROW}, "missing_field", "op"),
        ({"op": "t"}, "invalid_field", "op"),
        ({"op": ["c"]}, "invalid_field", "op"),  # once a TypeError (an unhashable op), found by Hypothesis
        ([1], "not_an_object", "record"),
    ],
)
def test_debezium_records_it_cannot_place_name_the_field(record: Any, reason: str, named: str) -> None:
    result = rejected(USERS.messages(record))
    assert result.reason == reason
    assert result.message.startswith(named)


def test_the_debezium_messages_map_to_identify_and_delete_operations() -> None:
    mapper = Mapper(MappingSettings())
    actions = []
    for record in ({"op": "c", "after": ROW}, {"op": "d", "before": ROW}):
        result = mapper.map(one(USERS.messages(record)), CTX)
        assert isinstance(result, tuple), result
        actions.append(result[0].action)
    assert actions == ["person.identify", "person.delete"]


def _users_envelope(columns: list[dict[str, Any]], after: dict[str, Any]) -> dict[str, Any]:
    """A change event as Debezium's JSON converter writes it with ``schemas.enable=true``."""
    row_schema = {"type": "struct", "field": "after", "fields": [{"type": "int32", "field": "id"}, *columns]}
    return {
        "schema": {"type": "struct", "fields": [{"type": "struct", "field": "before", "fields": []}, row_schema]},
        "payload": {"op": "c", "before": None, "after": {"id": 42, **after}},
    }


@pytest.mark.parametrize(
    ("semantic_type", "value", "iso"),
    [
        ("io.debezium.time.MicroTimestamp", 1_735_689_600_123_456, "2025-01-01T00:00:00.123456Z"),
        ("io.debezium.time.NanoTimestamp", 1_735_689_600_000_000_000, "2025-01-01T00:00:00Z"),
        ("io.debezium.time.Timestamp", 1_735_689_600_500, "2025-01-01T00:00:00.500000Z"),
        ("org.apache.kafka.connect.data.Timestamp", 1_735_689_600_000, "2025-01-01T00:00:00Z"),
        ("io.debezium.time.Date", 20_089, "2025-01-01"),
        ("org.apache.kafka.connect.data.Date", -1, "1969-12-31"),
        ("io.debezium.time.MicroTimestamp", None, None),  # a null column stays null
        ("io.debezium.time.ZonedTimestamp", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),  # already ISO
        ("io.debezium.time.MicroTime", 3_600_000_000, 3_600_000_000),  # a time of day: left alone
    ],
)
def test_debezium_temporal_columns_named_by_the_envelope_become_iso_strings(
    semantic_type: str, value: Any, iso: Any
) -> None:
    # PostgreSQL `timestamp` arrives in microseconds by default: as a number it was no Unix time at all.
    record = _users_envelope([{"type": "int64", "name": semantic_type, "field": "created_at"}], {"created_at": value})
    assert one(USERS.messages(record))["traits"]["created_at"] == iso


def test_a_debezium_users_row_created_in_microseconds_is_sent_with_created_at_in_unix_seconds() -> None:
    # Once dead-lettered as invalid_timestamp: every row of a users table with a `timestamp` created_at.
    record = _users_envelope(
        [{"type": "int64", "name": "io.debezium.time.MicroTimestamp", "field": "created_at"}],
        {"created_at": 1_735_689_600_123_456},
    )
    result = Mapper(MappingSettings()).map(one(USERS.messages(record)), CTX)
    assert isinstance(result, tuple), result
    assert orjson.loads(result[0].body)["attributes"]["created_at"] == 1_735_689_600


def test_without_the_envelope_debezium_numbers_are_left_as_they_are() -> None:
    # No schema names the unit: a size-based guess could misread a millisecond sentinel date.
    assert one(USERS.messages({"op": "c", "after": {"id": 1, "created_at": 1_735_689_600_123_456}}))["traits"] == {
        "id": 1,
        "created_at": 1_735_689_600_123_456,
    }


column_schemas = st.fixed_dictionaries(
    {
        "field": st.sampled_from(["a", "b", "id"]) | json_values,
        "name": st.sampled_from(
            [
                "io.debezium.time.Date",
                "io.debezium.time.MicroTimestamp",
                "io.debezium.time.NanoTimestamp",
                "io.debezium.time.Timestamp",
            ]
        )
        | json_values,
    }
)


@given(
    st.lists(column_schemas | json_values, max_size=4),
    st.dictionaries(st.sampled_from(["a", "b"]), json_values | st.integers(min_value=-(2**63), max_value=2**63 - 1)),
)
def test_any_envelope_schema_and_row_convert_without_raising(columns: list[Any], after: dict[str, Any]) -> None:
    record = _users_envelope([], after)
    record["schema"]["fields"][1]["fields"] = columns
    result = USERS.messages(record)
    assert isinstance(result, list | Rejection)


# ---- compiling -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"type": "purchase", "user_id": "$.u"}, "type"),
        ({"type": "track", "event": "E"}, "user_id"),
        ({"type": "track", "user_id": "$.u"}, "event"),
        ({"type": "identify", "user_id": "$.u", "event": "E"}, "event"),
        ({"type": "identify", "user_id": "$.u", "properties": "$.p"}, "properties"),
        ({"type": "track", "user_id": "$.u[", "event": "E"}, "user_id"),
        ({"type": "track", "user_id": "$.u", "event": "E", "timestamp": "$.t"}, "timestamp_format"),
        ({"type": "track", "user_id": "$.u", "event": "E", "timestamp_format": "iso"}, "timestamp_format"),
        ({"type": "track", "user_id": "$.u", "event": "E", "colour": 1}, "colour"),
        ({"type": "track", "user_id": "$.u", "event": "E", "properties": 3}, "properties"),
        ({"type": "track", "user_id": "$.u", "event": "E", "hash": ["$.l[0]"]}, "hash[0]"),
        ({"type": "track", "user_id": "$.u", "event": "E", "rename": {"$.a": "b.c"}}, "rename.$.a"),
        ({"type": "track", "user_id": "$.u", "event": "E", "drop": "$.a"}, "drop"),
        ({"preset": "debezium", "entity": "object"}, "object_type_id"),
        ({"preset": "debezium", "object_type_id": 1}, "object_type_id"),
        ({"preset": "debezium", "entity": "row"}, "entity"),
        ({"preset": "debezium", "type": "track"}, "type"),
        ({"preset": "kafka-connect"}, "preset"),
    ],
)
def test_a_bad_mapping_is_a_config_error_naming_the_field(fields: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_shape(fields, WHERE)
    assert caught.value.key == f"{WHERE}.{key}"


def test_shapes_compiled_from_equal_declarations_are_equal() -> None:
    assert shape(**PRODUCT) == shape(**PRODUCT)
    assert hash(shape(**PRODUCT)) == hash(shape(**PRODUCT))
    assert shape(**PRODUCT) != USERS


# ---- never raises ----------------------------------------------------------------------------------

paths = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map(lambda keys: "$." + ".".join(keys))
attribute_specs = paths | st.lists(paths, max_size=3) | st.dictionaries(st.sampled_from("xyz"), paths, max_size=2)
field_mappings = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "page", "screen"]), "user_id": paths, "event": paths | st.text(max_size=4)},
    optional={
        "anonymous_id": paths,
        "properties": attribute_specs,
        "timestamp": paths,
        "drop": st.lists(paths, max_size=2),
        "rename": st.dictionaries(paths, st.sampled_from(["a", "b", "z"]), max_size=2),
        "hash": st.lists(paths, max_size=2),
    },
).map(lambda m: {**m, "timestamp_format": "unix_ms"} if "timestamp" in m else m)
debezium_mappings = st.fixed_dictionaries(
    {"preset": st.just("debezium")},
    optional={"key": paths, "hash": st.lists(paths, max_size=2), "drop": st.lists(paths, max_size=2)},
)
records = st.dictionaries(
    st.sampled_from(["a", "b", "c", "op", "after", "before", "payload", "schema"]), json_values, max_size=5
)


@given(field_mappings | debezium_mappings, records | json_values)
def test_a_compiled_mapping_never_raises_whatever_the_record(fields: dict[str, Any], record: Any) -> None:
    result = compile_shape(fields, WHERE).messages(record)
    if isinstance(result, list):
        assert all(isinstance(message, dict) and "type" in message for message in result)
        # Whatever it built, the Segment path answers it without raising either.
        for message in result:
            Mapper(MappingSettings()).map(message, CTX)


@given(st.dictionaries(st.text(max_size=12), json_values | st.lists(st.text(max_size=6)), max_size=6))
def test_compiling_any_declaration_either_compiles_or_is_a_config_error(fields: dict[str, Any]) -> None:
    try:
        compile_shape(fields, WHERE)
    except ConfigError as exc:
        error = exc
    else:
        return
    assert error.key.startswith(WHERE)


# ---- config loading --------------------------------------------------------------------------------


def test_loading_the_config_compiles_each_topic_mapping_without_any_network(tmp_path: Path) -> None:
    """``load_settings`` is the validation a ``validate`` command needs: mappings compile when it loads."""
    config = tmp_path / "c.yaml"
    config.write_text("topics:\n  users:\n    mapping: {preset: debezium}\n  plain: {}\n")
    settings = load_settings({}, str(config))
    mappings = {topic.name: topic.mapping for topic in settings.topics}
    assert mappings == {"users": shape(preset="debezium"), "plain": None}
    assert settings == load_settings({}, str(config))


def test_loading_refuses_a_debezium_person_mapping_when_user_deleted_is_not_a_delete_event(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("topics:\n  users:\n    mapping: {preset: debezium}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({"CONNECTOR_DELETE_EVENTS": "Account Closed"}, str(config))
    assert caught.value.key == "topics.users.mapping.preset"
    objects = "topics:\n  companies:\n    mapping: {preset: debezium, entity: object, object_type_id: 2}\n"
    config.write_text(objects)
    assert load_settings({"CONNECTOR_DELETE_EVENTS": "Account Closed"}, str(config)).topics[0].mapping is not None
