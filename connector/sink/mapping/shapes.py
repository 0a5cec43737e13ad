"""Declarative per-topic mappings: a JSON record of any shape → one Segment-spec message (pure).

A topic's ``mapping:`` block (``docs/inputs.md`` is the user-facing reference) is compiled once, at
config load, by ``compile_shape``: every problem is a ``ConfigError`` naming the topic and the field,
so a bad mapping stops the process at start-up (exit 2), never at the first record. The compiled
``RecordShape`` is then one pure function per record, ``shape.messages(doc)``, whose answer goes
through exactly the Segment path (routing, validation, ``Mapper``) as if the record had been written
that way. It never raises: a record it cannot place is a ``Rejection`` naming the missing field.

Two kinds:

- **fields** — ``type`` (a constant), ``user_id``/``anonymous_id`` (paths), ``event`` (a path or a constant),
  ``properties``/``traits`` (a subtree path, a list of paths, or a mapping name → path or constant),
  ``timestamp`` (a path) read in ``timestamp_format`` (``unix_s``, ``unix_ms``, ``iso``);
- **preset: debezium** — change events (with or without the ``schema``/``payload`` envelope): ``c``,
  ``u``, ``r`` → identify with ``after`` as traits, ``d`` → ``User Deleted`` (``entity: person``), or
  object identify/delete (``entity: object`` with ``object_type_id``).

Field rules, applied to the record (for Debezium: to the row) in this order before anything is read:
``drop`` (paths removed), ``rename`` (path → new key in the same object), ``hash`` (values replaced by
their SHA-256, hex). The record is freshly decoded and the shape's own: rules change it in place.
A value starting with ``$`` is a path (``connector.sink.mapping.paths``); ``$$`` starts a constant
that begins with ``$``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Final

import orjson

from connector.errors import ConfigError
from connector.sink.mapping.debezium_time import convert_temporal_columns
from connector.sink.mapping.model import Message, Rejection
from connector.sink.mapping.paths import MISSING, PathError, Step, get, getter, parse_path, show_path
from connector.sink.mapping.timestamps import MAX_MS, iso_ms
from connector.sink.mapping.validation import json_type, show

TYPES: Final = ("identify", "track", "page", "screen")
TIMESTAMP_FORMATS: Final = ("unix_s", "unix_ms", "iso")
DEBEZIUM_ENTITIES: Final = ("person", "object")
DEBEZIUM_DELETE_EVENT: Final = "User Deleted"
_FIELD_KEYS: Final = frozenset(
    {"type", "user_id", "anonymous_id", "event", "properties", "traits", "timestamp", "timestamp_format"}
)
_RULE_KEYS: Final = frozenset({"drop", "rename", "hash"})
_DEBEZIUM_KEYS: Final = frozenset({"preset", "key", "entity", "object_type_id"})
_UPSERT_OPS: Final = frozenset({"c", "u", "r"})

Steps = tuple[Step, ...]
# A value source: a path (steps) or a constant.
Source = tuple[Steps, None] | tuple[None, Any]
Rule = Callable[[Any], None]  # changes a record in place
Reader = Callable[[Any], Any]  # a path's value in a record (or MISSING), or a constant
FieldStep = Callable[[Any, Message], Rejection | None]  # fills one field of the message, or refuses


class RecordShape:
    """A compiled mapping. ``messages(doc)`` is the per-record function; equal when compiled from equal
    declarations (settings compare by value)."""

    __slots__ = ("_source", "deletes_people", "messages", "preset")

    def __init__(
        self,
        source: str,
        preset: str | None,
        messages: Callable[[Any], list[Message] | Rejection],
        *,
        deletes_people: bool = False,
    ) -> None:
        self._source = source
        self.preset = preset
        # The message(s) of one decoded record, or why the mapping cannot place it. Never raises (the
        # property tests hold it to that); an attribute, not a method, so a call is one call.
        self.messages = messages
        # Whether it sends DEBEZIUM_DELETE_EVENT, which config loading checks is a delete event.
        self.deletes_people = deletes_people

    def __repr__(self) -> str:
        return f"RecordShape({self._source})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordShape) and other._source == self._source

    def __hash__(self) -> int:
        return hash(self._source)


# ---------------------------------------------------------------------------------------------------
# Compiling (start-up): every error is a ConfigError naming ``<where>.<field>``
# ---------------------------------------------------------------------------------------------------


def compile_shape(raw: Any, where: str) -> RecordShape:
    """Compile a ``mapping:`` block declared at ``where`` (``topics.<name>.mapping``)."""
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a mapping")
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(f"{where}.{key}", "unknown mapping field")
    source = repr(raw)  # what equality compares: the declaration as written
    rules = _compile_rules(raw, where)
    preset = raw.get("preset")
    if preset is None:
        _refuse_unknown(raw, _FIELD_KEYS | _RULE_KEYS, where)
        return RecordShape(source, None, _fields_shape(raw, where, rules))
    if preset != "debezium":
        raise ConfigError(f"{where}.preset", f"must be debezium (got {preset!r})")
    _refuse_unknown(raw, _DEBEZIUM_KEYS | _RULE_KEYS, where)
    return RecordShape(
        source, "debezium", _debezium_shape(raw, where, rules), deletes_people=raw.get("entity", "person") == "person"
    )


def _refuse_unknown(raw: dict[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", "unknown mapping field")


def _path(text: Any, field: str) -> Steps:
    if not isinstance(text, str):
        raise ConfigError(field, f"must be a path like $.user.id (got {json_type(text)})")
    try:
        return parse_path(text)
    except PathError as exc:
        raise ConfigError(field, str(exc)) from None


def _source(value: Any, field: str) -> Source:
    """A path (a string starting with ``$``, not ``$$``) or a constant."""
    if isinstance(value, str) and value.startswith("$"):
        if value.startswith("$$"):
            return None, value[1:]
        return _path(value, field), None
    if isinstance(value, dict | list):
        raise ConfigError(field, "must be a path like $.user.id or a constant")
    return None, value


def _compile_rules(raw: dict[str, Any], where: str) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    drops = raw.get("drop") or []
    if not isinstance(drops, list):
        raise ConfigError(f"{where}.drop", "must be a list of paths")
    for i, text in enumerate(drops):
        rules.append(_drop_rule(_keyed_path(text, f"{where}.drop[{i}]")))
    renames = raw.get("rename") or {}
    if not isinstance(renames, dict):
        raise ConfigError(f"{where}.rename", "must be a mapping of path → new key name")
    for text, name in renames.items():
        field = f"{where}.rename.{text}"
        steps = _keyed_path(text, field)
        if not isinstance(name, str) or not name or any(c in name for c in ".[]"):
            raise ConfigError(field, "the new name must be a non-empty key without . [ ]")
        rules.append(_rename_rule(steps, name))
    hashes = raw.get("hash") or []
    if not isinstance(hashes, list):
        raise ConfigError(f"{where}.hash", "must be a list of paths")
    for i, text in enumerate(hashes):
        rules.append(_hash_rule(_keyed_path(text, f"{where}.hash[{i}]")))
    return tuple(rules)


def _keyed_path(text: Any, field: str) -> Steps:
    steps = _path(text, field)
    if not steps or not isinstance(steps[-1], str):
        raise ConfigError(field, "a rule's path must end on a key (like $.user.email)")
    return steps


def _holder(steps: Steps) -> tuple[Reader, str]:
    """A rule's target: the reader of the object holding the last key, and that key."""
    *prefix, last = steps
    return (getter(tuple(prefix)) if prefix else _itself), str(last)


def _itself(doc: Any) -> Any:
    return doc


def _drop_rule(steps: Steps) -> Rule:
    read, key = _holder(steps)

    def drop(doc: Any) -> None:
        holder = read(doc)
        if type(holder) is dict:
            holder.pop(key, None)

    return drop


def _rename_rule(steps: Steps, name: str) -> Rule:
    read, key = _holder(steps)

    def rename(doc: Any) -> None:
        holder = read(doc)
        if type(holder) is dict and key in holder:
            holder[name] = holder.pop(key)

    return rename


def _hash_rule(steps: Steps) -> Rule:
    read, key = _holder(steps)

    def hash_value(doc: Any) -> None:
        holder = read(doc)
        if type(holder) is dict:
            value = holder.get(key)
            if value is not None:
                holder[key] = sha256_hex(value)

    return hash_value


def sha256_hex(value: Any) -> str:
    """A value's SHA-256, hex: a string's UTF-8 bytes, anything else its JSON text (keys sorted), or its
    ``str()`` for what JSON cannot hold (an integer past 64 bits)."""
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
    else:
        try:
            data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            data = str(value).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------
# fields
# ---------------------------------------------------------------------------------------------------


def _fields_shape(
    raw: dict[str, Any], where: str, rules: tuple[Rule, ...]
) -> Callable[[Any], list[Message] | Rejection]:
    """Compile the fields kind: identifiers and the event name inline, then the optional steps."""
    kind = raw.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{where}.type", f"required, one of {', '.join(TYPES)} (got {kind!r})")
    who, missing_who = _who(raw, where)
    event = _event(raw, where, kind)
    event_key = "event" if kind == "track" else "name"
    read_event = _reader(event) if event is not None else None
    missing_event = (
        Rejection("missing_field", f"event: {_shown(event)} not found in the record") if event else missing_who
    )
    steps = (*_attribute_steps(raw, where, kind), *_timestamp_steps(raw, where))

    def messages(doc: Any) -> list[Message] | Rejection:
        if type(doc) is not dict:
            return _not_an_object(doc)
        for rule in rules:
            rule(doc)
        message: Message = {"type": kind}
        for key, read in who:
            value = read(doc)
            if value is not None and value is not MISSING:
                message[key] = value
        if len(message) == 1:
            return missing_who
        if read_event is not None:
            value = read_event(doc)
            if value is None or value is MISSING:
                return missing_event
            message[event_key] = value
        for step in steps:
            rejected = step(doc, message)
            if rejected is not None:
                return rejected
        return [message]

    return messages


def _not_an_object(doc: Any) -> Rejection:
    return Rejection("not_an_object", f"record: must be a JSON object (got {json_type(doc)})")


def _reader(src: Source) -> Reader:
    steps, constant = src
    return (lambda _doc: constant) if steps is None else getter(steps)


def _who(raw: dict[str, Any], where: str) -> tuple[tuple[tuple[str, Reader], ...], Rejection]:
    """The readers of userId/anonymousId, and the rejection when the record has neither."""
    # Paths only: a constant id would make every record one person.
    user_id: Source | None = (_path(raw["user_id"], f"{where}.user_id"), None) if "user_id" in raw else None
    anonymous_id: Source | None = (
        (_path(raw["anonymous_id"], f"{where}.anonymous_id"), None) if "anonymous_id" in raw else None
    )
    if user_id is None and anonymous_id is None:
        raise ConfigError(f"{where}.user_id", "required (or anonymous_id): who the message is about")
    readers = tuple(
        (key, _reader(src)) for key, src in (("userId", user_id), ("anonymousId", anonymous_id)) if src is not None
    )
    named = [f"{name}: {_shown(src)}" for name, src in (("user_id", user_id), ("anonymous_id", anonymous_id)) if src]
    return readers, Rejection("missing_field", " and ".join(named) + " not found in the record")


def _event(raw: dict[str, Any], where: str, kind: str) -> Source | None:
    event = _source(raw["event"], f"{where}.event") if "event" in raw else None
    if kind == "track" and event is None:
        raise ConfigError(f"{where}.event", "required for type track: a path like $.action or a constant name")
    if kind == "identify" and event is not None:
        raise ConfigError(f"{where}.event", "not used by identify")
    return event


def _attribute_steps(raw: dict[str, Any], where: str, kind: str) -> list[FieldStep]:
    """The properties (or traits, for identify) step, if declared."""
    attrs_key = "traits" if kind == "identify" else "properties"
    other = "properties" if kind == "identify" else "traits"
    if other in raw:
        raise ConfigError(f"{where}.{other}", f"not used by {kind} (use {attrs_key})")
    if raw.get(attrs_key) is None:
        return []
    return [_attributes(raw[attrs_key], f"{where}.{attrs_key}", attrs_key)]


def _timestamp_steps(raw: dict[str, Any], where: str) -> list[FieldStep]:
    ts_format = raw.get("timestamp_format")
    if "timestamp" not in raw:
        if ts_format is not None:
            raise ConfigError(f"{where}.timestamp_format", "set without timestamp")
        return []
    path = _path(raw["timestamp"], f"{where}.timestamp")
    if ts_format not in TIMESTAMP_FORMATS:
        raise ConfigError(
            f"{where}.timestamp_format", f"required with timestamp, one of {', '.join(TIMESTAMP_FORMATS)}"
        )
    read_time = _timestamp_reader(str(ts_format))
    shown = show_path(path)
    read = getter(path)

    def timestamp(doc: Any, message: Message) -> Rejection | None:
        value = read(doc)
        if value is MISSING or value is None:
            return None  # the Segment path then uses the Kafka record's time
        when = read_time(value)
        if when is None:
            return Rejection("invalid_timestamp", f"timestamp: {shown} is not {ts_format} (got {json_type(value)})")
        message["timestamp"] = when
        return None

    return [timestamp]


def _shown(src: Source) -> str:
    return show_path(src[0]) if src[0] is not None else repr(src[1])


def _attributes(raw: Any, field: str, key: str) -> FieldStep:
    """properties/traits: a subtree path, a list of paths (each named by its last key) or name → source."""
    if isinstance(raw, str):
        read = getter(_path(raw, field))
        shown = show_path(_path(raw, field))

        def subtree(doc: Any, message: Message) -> Rejection | None:
            value = read(doc)
            if type(value) is dict:
                message[key] = value
            elif value is not MISSING and value is not None:
                return Rejection("invalid_field", f"{key}: {shown} must be an object (got {json_type(value)})")
            return None

        return subtree
    if isinstance(raw, list):
        named: dict[str, Source] = {}
        for i, text in enumerate(raw):
            steps = _keyed_path(text, f"{field}[{i}]")
            named[str(steps[-1])] = (steps, None)
    elif isinstance(raw, dict):
        named = {str(name): _source(value, f"{field}.{name}") for name, value in raw.items()}
    else:
        raise ConfigError(field, "must be a path, a list of paths or a mapping of name → path")
    pairs = tuple((name, _reader(src)) for name, src in named.items())

    def listed(doc: Any, message: Message) -> Rejection | None:
        out: dict[str, Any] = {}
        for name, read in pairs:
            value = read(doc)
            if value is not MISSING:
                out[name] = value
        message[key] = out
        return None

    return listed


def _timestamp_reader(ts_format: str) -> Callable[[Any], Any]:
    """A reader returning what the Segment path reads back exactly (Unix s, or an ISO string), or None.

    Numbers below 10¹¹ are read as seconds by the Segment path, so milliseconds become seconds here.
    """
    if ts_format == "iso":
        return lambda value: value if isinstance(value, str) and iso_ms(value) is not None else None
    scale = 1000 if ts_format == "unix_s" else 1

    def unix(value: Any) -> Any:
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        ms = value * scale
        if not 0 <= ms <= MAX_MS:  # NaN fails this too
            return None
        return ms / 1000 if ms < 100_000_000_000 or isinstance(ms, float) else ms

    return unix


# ---------------------------------------------------------------------------------------------------
# preset: debezium
# ---------------------------------------------------------------------------------------------------


def _debezium_shape(
    raw: dict[str, Any], where: str, rules: tuple[Rule, ...]
) -> Callable[[Any], list[Message] | Rejection]:
    key = _keyed_path(raw.get("key", "$.id"), f"{where}.key")
    build = _debezium_builder(raw, where)
    shown_key = show_path(key)[2:]

    def messages(doc: Any) -> list[Message] | Rejection:
        if type(doc) is not dict:
            return _not_an_object(doc)
        payload = doc.get("payload")
        event = payload if "schema" in doc and type(payload) is dict else doc
        op = event.get("op")
        if op is None:
            return Rejection("missing_field", "op: required in a Debezium change event")
        side = None if type(op) is not str else "after" if op in _UPSERT_OPS else "before" if op == "d" else None
        if side is None:
            return Rejection("invalid_field", f"op: {show(op)} is not a row change (c, u, r or d)")
        row = event.get(side)
        if type(row) is not dict:
            return Rejection("missing_field", f"{side}: required (an object) for op {op!r}")
        if event is payload:  # the envelope names each column's type: temporal numbers become ISO strings
            convert_temporal_columns(doc["schema"], side, row)
        for rule in rules:
            rule(row)
        row_id = get(row, key)
        if row_id is MISSING or row_id is None:
            return Rejection("missing_field", f"{side}.{shown_key}: not found in the row (the key)")
        message = build(row, row_id, side == "after")
        when = event.get("ts_ms")
        if type(when) is int and 0 <= when <= MAX_MS:
            message["timestamp"] = when / 1000 if when < 100_000_000_000 else when
        return [message]

    return messages


def _debezium_builder(raw: dict[str, Any], where: str) -> Callable[[dict[str, Any], Any, bool], Message]:
    """``build(row, row_id, upsert)``: the message of one change, per ``entity``."""
    entity = raw.get("entity", "person")
    if entity not in DEBEZIUM_ENTITIES:
        raise ConfigError(f"{where}.entity", f"must be one of {', '.join(DEBEZIUM_ENTITIES)} (got {entity!r})")
    type_id = raw.get("object_type_id")
    if entity == "person":
        if type_id is not None:
            raise ConfigError(f"{where}.object_type_id", "only with entity: object")

        def person(row: dict[str, Any], row_id: Any, upsert: bool) -> Message:
            if upsert:
                return {"type": "identify", "userId": row_id, "traits": row}
            return {"type": "track", "event": DEBEZIUM_DELETE_EVENT, "userId": row_id}

        return person
    if type_id is None or isinstance(type_id, bool | dict | list) or str(type_id) == "":
        raise ConfigError(f"{where}.object_type_id", "required with entity: object")
    object_type_id = str(type_id)

    def an_object(row: dict[str, Any], row_id: Any, upsert: bool) -> Message:
        identifiers = {"object_type_id": object_type_id, "object_id": row_id}
        if upsert:
            return {"type": "object", "action": "identify", "identifiers": identifiers, "attributes": row}
        return {"type": "object", "action": "delete", "identifiers": identifiers}

    return an_object
