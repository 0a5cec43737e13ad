"""Segment-spec message → exact Customer.io v2 operation, one table row per mapping rule (pure)."""

from __future__ import annotations

import dataclasses
import hashlib
import tracemalloc
from typing import Any

import orjson
import pytest

from connector.config import MappingSettings
from connector.fake_cio.rules import check_operation
from connector.sink.mapping.mapper import Mapper, is_v2_operation, map_message, message_event_name
from connector.sink.mapping.model import REASONS, Filtered, Message, MessageContext, Rejection

SETTINGS = MappingSettings()
CTX = MessageContext(topic="events", partition=3, offset=1042, index=0, timestamp_ms=1_735_689_600_000)
REC_S = 1_735_689_600  # the record time, 2025-01-01T00:00:00Z
TS = "2025-01-01T10:00:00.250+02:00"  # = 08:00:00.250Z
TS_MS = 1_735_718_400_250
TS_S = 1_735_718_400


def ref_ulid(ms: int, seed: bytes) -> str:
    """An independent ULID: 48-bit ms + first 10 bytes of BLAKE2b(seed), 5 bits at a time."""
    value = (ms << 80) | int.from_bytes(hashlib.blake2b(seed).digest()[:10], "big")
    return "".join("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[(value >> (125 - 5 * i)) & 31] for i in range(26))


def msg_id(message_id: str, ms: int = TS_MS) -> str:
    """The dedup id of a message with this messageId."""
    return ref_ulid(ms, b"message:" + message_id.encode())


# The identify cases below test timestamp reading, so they send the message time (policy ``event``); the
# default policy (``omit``) and ``now`` have their own tests.
EVENT_TIME = MappingSettings(identify_timestamp="event")
REC_ID = ref_ulid(CTX.timestamp_ms, b"record:events/3/1042/0")  # a message without messageId or timestamp


def mapped(message: Message, settings: MappingSettings = SETTINGS, max_bytes: int = 32_000) -> list[Any]:
    """(operation dict, order key, action) of each operation; fails on Rejection/Filtered."""
    result = map_message(message, CTX, settings, max_bytes)
    assert isinstance(result, tuple), result
    return [(orjson.loads(op.body), op.order_key, op.action) for op in result]


def settings(**changes: Any) -> MappingSettings:
    """The default mapping settings with ``changes``."""
    return dataclasses.replace(SETTINGS, **changes)


DEVICE_CONTEXT = {
    "device": {"token": "apns-tok", "type": "ios", "model": "iPhone15,2", "manufacturer": "Apple"},
    "os": {"name": "iOS", "version": "17.2"},
    "app": {"version": "3.4.1", "build": 341},
    "locale": "en-US",
}

CASES = [
    # ---- 1. identify ----------------------------------------------------------------------------------
    pytest.param(
        {
            "type": "identify",
            "userId": "u-42",
            "anonymousId": "anon-1",
            "timestamp": TS,
            "traits": {
                "email": "Ana@Example.com",
                "name": "Ana",
                "createdAt": "2024-06-01T12:00:00Z",
                "last_order": "2024-12-31T23:59:59.999-01:00",
                "birthday": "1990-05-01",
                "nickname": None,
                "middle_name": "",
                "address": {"city": "Lyon", "since": "2020-01-01T00:00:00Z"},
                "tags": ["a", "2021-02-03"],
                "zip": "12345",
                "vip": True,
                "logins": 7,
            },
        },
        [
            (
                {
                    "type": "person",
                    "action": "identify",
                    "identifiers": {"id": "u-42"},
                    "timestamp": TS_S,
                    "attributes": {
                        "email": "Ana@Example.com",
                        "name": "Ana",
                        "last_order": 1_735_693_199,
                        "birthday": 641_520_000,
                        "address": {"city": "Lyon", "since": 1_577_836_800},
                        "tags": ["a", 1_612_310_400],
                        "zip": "12345",
                        "vip": True,
                        "logins": 7,
                        "created_at": 1_717_243_200,
                        "anonymous_id": "anon-1",
                    },
                },
                "id:u-42",
                "person.identify",
            )
        ],
        EVENT_TIME,
        id="identify: traits, created_at, anonymous_id, ISO→s, empties dropped",
    ),
    pytest.param(
        {"type": "identify", "traits": {"email": "Ana@Example.com", "plan": "pro"}, "timestamp": 1_735_718_400},
        [
            (
                {
                    "type": "person",
                    "action": "identify",
                    "identifiers": {"email": "Ana@Example.com"},
                    "timestamp": TS_S,
                    "attributes": {"email": "Ana@Example.com", "plan": "pro"},
                },
                "email:ana@example.com",
                "person.identify",
            )
        ],
        EVENT_TIME,
        id="identify: no userId → traits.email identifies",
    ),
    pytest.param(
        {"type": "identify", "userId": "cio_03000001", "traits": {"plan": "pro"}, "timestamp": "1735718400250"},
        [
            (
                {
                    "type": "person",
                    "action": "identify",
                    "identifiers": {"cio_id": "03000001"},
                    "timestamp": TS_S,
                    "attributes": {"plan": "pro"},
                },
                "cio_id:03000001",
                "person.identify",
            )
        ],
        EVENT_TIME,
        id="identify: cio_ prefix → cio_id; numeric-string ms timestamp",
    ),
    pytest.param(
        {"type": "identify", "userId": "bo@x.io", "traits": {"created_at": 1_717_243_200_000}},
        [
            (
                {
                    "type": "person",
                    "action": "identify",
                    "identifiers": {"email": "bo@x.io"},
                    "timestamp": REC_S,
                    "attributes": {"created_at": 1_717_243_200},
                },
                "email:bo@x.io",
                "person.identify",
            )
        ],
        EVENT_TIME,
        id="identify: email-looking userId → email; created_at ms → s; record time",
    ),
    pytest.param(
        {"type": "identify", "userId": 42, "traits": {"email": "a@b.co", "plan": "pro", "_update": True}},
        [
            (
                {
                    "type": "person",
                    "action": "identify",
                    "identifiers": {"id": "42"},
                    "timestamp": REC_S,
                    "attributes": {"email": "a@b.co", "app_plan": "pro", "_update": True},
                },
                "id:42",
                "person.identify",
            )
        ],
        settings(attribute_prefix="app_", identify_timestamp="event"),
        id="identify: numeric userId → string; prefix on custom names only",
    ),
    pytest.param(
        {
            "type": "identify",
            "userId": "u1",
            "traits": {"seen": "2024-06-01T12:00:00Z", "gone": None, "blank": ""},
            "originalTimestamp": TS,
        },
        [
            (
                {
                    "type": "person",
                    "action": "identify",
                    "identifiers": {"id": "u1"},
                    "timestamp": TS_S,
                    "attributes": {"seen": "2024-06-01T12:00:00Z", "gone": None, "blank": ""},
                },
                "id:u1",
                "person.identify",
            )
        ],
        settings(convert_iso_timestamps=False, omit_empty_values=False, identify_timestamp="event"),
        id="identify: conversion and omission off; originalTimestamp",
    ),
    pytest.param(
        {"type": "identify", "userId": "u1", "context": {"traits": {"email": "c@d.io", "plan": "team"}}},
        [
            (
                {
                    "type": "person",
                    "action": "identify",
                    "identifiers": {"id": "u1"},
                    "timestamp": REC_S,
                    "attributes": {"email": "c@d.io", "plan": "team"},
                },
                "id:u1",
                "person.identify",
            )
        ],
        EVENT_TIME,
        id="identify: no traits → context.traits (RudderStack mobile)",
    ),
    # ---- 2. track ---------------------------------------------------------------------------------------
    pytest.param(
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Completed",
            "messageId": "m-1",
            "timestamp": TS,
            "properties": {"total": 9.5, "shipped_at": "2025-01-02T00:00:00Z", "coupon": None},
        },
        [
            (
                {
                    "type": "person",
                    "action": "event",
                    "identifiers": {"id": "u1"},
                    "name": "Order Completed",
                    "id": msg_id("m-1"),
                    "timestamp": TS_S,
                    "attributes": {"total": 9.5, "shipped_at": 1_735_776_000, "coupon": None},
                },
                "id:u1",
                "person.event",
            )
        ],
        SETTINGS,
        id="track: event with ULID id from messageId; properties kept, ISO→s",
    ),
    pytest.param(
        {"type": "track", "anonymousId": "anon-9", "event": "Viewed"},
        [
            (
                {
                    "type": "person",
                    "action": "event",
                    "identifiers": {"anonymous_id": "anon-9"},
                    "name": "Viewed",
                    "id": REC_ID,
                    "timestamp": REC_S,
                    "attributes": {},
                },
                "anon:anon-9",
                "person.event",
            )
        ],
        SETTINGS,
        id="track: anonymous event; id from topic/partition/offset/index",
    ),
    pytest.param(
        {"type": "track", "anonymousId": "anon-9", "event": "Viewed", "context": {"traits": {"email": "E@x.io"}}},
        [
            (
                {
                    "type": "person",
                    "action": "event",
                    "identifiers": {"email": "E@x.io"},
                    "name": "Viewed",
                    "id": REC_ID,
                    "timestamp": REC_S,
                    "attributes": {},
                },
                "email:e@x.io",
                "person.event",
            )
        ],
        SETTINGS,
        id="track: no userId → context.traits.email before anonymousId",
    ),
    pytest.param(
        {
            "type": "track",
            "userId": "u1",
            "event": "Application Opened",
            "timestamp": TS,
            "properties": {"from_background": False, "version": 341, "extra": {"a": 1}, "none": None},
            "context": DEVICE_CONTEXT,
        },
        [
            (
                {
                    "type": "person",
                    "action": "add_device",
                    "identifiers": {"id": "u1"},
                    "device": {
                        "token": "apns-tok",
                        "platform": "ios",
                        "last_used": TS_S,
                        "attributes": {
                            "from_background": "false",
                            "version": "341",
                            "extra": '{"a":1}',
                            "device_os": "17.2",
                            "device_model": "iPhone15,2",
                            "app_version": "3.4.1",
                            "device_locale": "en-US",
                        },
                    },
                },
                "id:u1",
                "person.add_device",
            )
        ],
        SETTINGS,
        id="track: Application Opened + token → add_device, string attributes",
    ),
    pytest.param(
        {
            "type": "track",
            "userId": "u1",
            "event": "Device Created or Updated",
            "context": {"device": {"token": "fcm-tok", "type": "phone"}, "os": {"name": "Android"}},
        },
        [
            (
                {
                    "type": "person",
                    "action": "add_device",
                    "identifiers": {"id": "u1"},
                    "device": {"token": "fcm-tok", "platform": "android", "last_used": REC_S},
                },
                "id:u1",
                "person.add_device",
            )
        ],
        SETTINGS,
        id="track: platform from context.os.name when device.type is not one",
    ),
    pytest.param(
        {"type": "track", "userId": "u1", "event": "Application Installed", "context": {"device": {"type": "ios"}}},
        [
            (
                {
                    "type": "person",
                    "action": "event",
                    "identifiers": {"id": "u1"},
                    "name": "Application Installed",
                    "id": REC_ID,
                    "timestamp": REC_S,
                    "attributes": {},
                },
                "id:u1",
                "person.event",
            )
        ],
        SETTINGS,
        id="track: device event without a token → plain event",
    ),
    pytest.param(
        {"type": "track", "anonymousId": "a1", "event": "Application Installed", "context": DEVICE_CONTEXT},
        [
            (
                {
                    "type": "person",
                    "action": "event",
                    "identifiers": {"anonymous_id": "a1"},
                    "name": "Application Installed",
                    "id": REC_ID,
                    "timestamp": REC_S,
                    "attributes": {},
                },
                "anon:a1",
                "person.event",
            )
        ],
        SETTINGS,
        id="track: anonymous device event → plain anonymous event",
    ),
    pytest.param(
        {"type": "track", "userId": "u1", "event": "Application Uninstalled", "context": DEVICE_CONTEXT},
        [
            (
                {
                    "type": "person",
                    "action": "delete_device",
                    "identifiers": {"id": "u1"},
                    "device": {"token": "apns-tok"},
                },
                "id:u1",
                "person.delete_device",
            )
        ],
        SETTINGS,
        id="track: Application Uninstalled → delete_device",
    ),
    pytest.param(
        {"type": "track", "userId": "u1", "event": "User Deleted"},
        [({"type": "person", "action": "delete", "identifiers": {"id": "u1"}}, "id:u1", "person.delete")],
        SETTINGS,
        id="track: User Deleted → delete",
    ),
    pytest.param(
        {"type": "track", "userId": "a@b.io", "event": "User Suppressed"},
        [
            (
                {"type": "person", "action": "suppress", "identifiers": {"email": "a@b.io"}},
                "email:a@b.io",
                "person.suppress",
            )
        ],
        SETTINGS,
        id="track: User Suppressed → suppress",
    ),
    pytest.param(
        {"type": "track", "userId": "u1", "event": "User Unsuppressed"},
        [({"type": "person", "action": "unsuppress", "identifiers": {"id": "u1"}}, "id:u1", "person.unsuppress")],
        SETTINGS,
        id="track: User Unsuppressed → unsuppress",
    ),
    pytest.param(
        {"type": "track", "userId": "u1", "event": "Account Closed"},
        [({"type": "person", "action": "delete", "identifiers": {"id": "u1"}}, "id:u1", "person.delete")],
        settings(delete_events=("Account Closed",)),
        id="track: semantic event names are configurable",
    ),
    # ---- 3. page and screen -----------------------------------------------------------------------------
    pytest.param(
        {
            "type": "page",
            "userId": "u1",
            "name": "Home",
            "properties": {"url": "https://a.io/?q=1", "title": "Home page"},
            "context": {"page": {"url": "https://ignored.io/", "path": "/", "referrer": "https://g.co/"}},
        },
        [
            (
                {
                    "type": "person",
                    "action": "page",
                    "identifiers": {"id": "u1"},
                    "name": "https://a.io/?q=1",
                    "id": REC_ID,
                    "timestamp": REC_S,
                    "attributes": {
                        "url": "https://a.io/?q=1",
                        "title": "Home page",
                        "path": "/",
                        "referrer": "https://g.co/",
                    },
                },
                "id:u1",
                "person.page",
            )
        ],
        SETTINGS,
        id="page: name = properties.url; missing page fields from context.page",
    ),
    pytest.param(
        {"type": "page", "anonymousId": "a1", "context": {"page": {"url": "https://a.io/x", "search": "?s=1"}}},
        [
            (
                {
                    "type": "person",
                    "action": "page",
                    "identifiers": {"anonymous_id": "a1"},
                    "name": "https://a.io/x",
                    "id": REC_ID,
                    "timestamp": REC_S,
                    "attributes": {"url": "https://a.io/x", "search": "?s=1"},
                },
                "anon:a1",
                "person.page",
            )
        ],
        SETTINGS,
        id="page: context.page.url; anonymous",
    ),
    pytest.param(
        {"type": "page", "userId": "u1", "name": "Pricing"},
        [
            (
                {
                    "type": "person",
                    "action": "page",
                    "identifiers": {"id": "u1"},
                    "name": "Pricing",
                    "id": REC_ID,
                    "timestamp": REC_S,
                    "attributes": {},
                },
                "id:u1",
                "person.page",
            )
        ],
        SETTINGS,
        id="page: no URL → name",
    ),
    pytest.param(
        {"type": "page", "userId": "u1", "properties": {"url": "https://a.io/p?" + "utm=x&" * 20}},
        [
            (
                {
                    "type": "person",
                    "action": "page",
                    "identifiers": {"id": "u1"},
                    "name": "https://a.io/p",
                    "id": REC_ID,
                    "timestamp": REC_S,
                    "attributes": {"url": "https://a.io/p?" + "utm=x&" * 20},
                },
                "id:u1",
                "person.page",
            )
        ],
        SETTINGS,
        id="page: URL over 100 bytes → name without query, full URL in attributes",
    ),
    pytest.param(
        {"type": "screen", "userId": "u1", "name": "Cart", "properties": {"items": 2}, "messageId": "s-1"},
        [
            (
                {
                    "type": "person",
                    "action": "screen",
                    "identifiers": {"id": "u1"},
                    "name": "Cart",
                    "id": msg_id("s-1", CTX.timestamp_ms),
                    "timestamp": REC_S,
                    "attributes": {"items": 2},
                },
                "id:u1",
                "person.screen",
            )
        ],
        SETTINGS,
        id="screen: name = name",
    ),
    # ---- 4. group -----------------------------------------------------------------------------------------
    pytest.param(
        {
            "type": "group",
            "userId": "u1",
            "groupId": "acme",
            "traits": {"name": "Acme", "objectTypeId": "2", "x": None},
        },
        [
            (
                {
                    "type": "object",
                    "action": "identify",
                    "identifiers": {"object_type_id": "2", "object_id": "acme"},
                    "attributes": {"name": "Acme"},
                    "cio_relationships": [{"identifiers": {"id": "u1"}}],
                },
                "id:u1",
                "object.identify",
            )
        ],
        SETTINGS,
        id="group: object identify related to the user; objectTypeId removed",
    ),
    pytest.param(
        {"type": "group", "anonymousId": "a1", "groupId": 77, "traits": {"name": "Acme"}},
        [
            (
                {
                    "type": "object",
                    "action": "identify_anonymous",
                    "identifiers": {"object_type_id": "5", "object_id": "77"},
                    "attributes": {"name": "Acme"},
                    "cio_relationships": [{"identifiers": {"anonymous_id": "a1"}}],
                },
                "anon:a1",
                "object.identify_anonymous",
            )
        ],
        settings(default_object_type_id="5"),
        id="group: only anonymousId → identify_anonymous; default object type",
    ),
    pytest.param(
        {"type": "group", "groupId": "acme", "traits": {"object_type_id": 3}},
        [
            (
                {
                    "type": "object",
                    "action": "identify",
                    "identifiers": {"object_type_id": "3", "object_id": "acme"},
                    "attributes": {},
                },
                "object:3:acme",
                "object.identify",
            )
        ],
        SETTINGS,
        id="group: nobody to relate → object order key",
    ),
    # ---- 5. alias -----------------------------------------------------------------------------------------
    pytest.param(
        {"type": "alias", "userId": "u1", "previousId": "old@x.io"},
        [
            (
                {"type": "person", "action": "merge", "primary": {"id": "u1"}, "secondary": {"email": "old@x.io"}},
                "id:u1",
                "person.merge",
            )
        ],
        SETTINGS,
        id="alias: merge, email-looking previousId → email",
    ),
    pytest.param(
        {"type": "alias", "userId": "cio_9", "previousId": 12},
        [
            (
                {"type": "person", "action": "merge", "primary": {"cio_id": "9"}, "secondary": {"id": "12"}},
                "cio_id:9",
                "person.merge",
            )
        ],
        SETTINGS,
        id="alias: cio_ primary, numeric secondary",
    ),
    # ---- 6. v2 operations pass through --------------------------------------------------------------------
    pytest.param(
        {"type": "person", "action": "event", "identifiers": {"id": "u1"}, "name": "x", "timestamp": 1_735_718_400_250},
        [
            (
                {
                    "type": "person",
                    "action": "event",
                    "identifiers": {"id": "u1"},
                    "name": "x",
                    "timestamp": TS_S,
                    "id": ref_ulid(TS_MS, b"record:events/3/1042/0"),
                },
                "id:u1",
                "person.event",
            )
        ],
        SETTINGS,
        id="v2: event gets a ULID id; ms timestamp → s",
    ),
    pytest.param(
        {"type": "person", "action": "page", "identifiers": {"email": "A@b.io"}, "name": "/x", "id": "keep-me"},
        [
            (
                {"type": "person", "action": "page", "identifiers": {"email": "A@b.io"}, "name": "/x", "id": "keep-me"},
                "email:a@b.io",
                "person.page",
            )
        ],
        SETTINGS,
        id="v2: existing id kept",
    ),
    pytest.param(
        {
            "type": "object",
            "action": "identify",
            "identifiers": {"object_type_id": "1", "object_id": "acme"},
            "attributes": {"name": "Acme", "gone": None},
            "cio_relationships": [{"identifiers": {"email": "X@y.io"}, "relationship_attributes": {"role": "admin"}}],
        },
        [
            (
                {
                    "type": "object",
                    "action": "identify",
                    "identifiers": {"object_type_id": "1", "object_id": "acme"},
                    "attributes": {"name": "Acme", "gone": None},
                    "cio_relationships": [
                        {"identifiers": {"email": "X@y.io"}, "relationship_attributes": {"role": "admin"}}
                    ],
                },
                "email:x@y.io",
                "object.identify",
            )
        ],
        SETTINGS,
        id="v2: object op ordered by its related person; nulls are the producer's choice",
    ),
    pytest.param(
        {
            "type": "delivery",
            "action": "event",
            "identifiers": {"id": "dlv-1"},
            "name": "opened",
            "attributes": {"device_token": "t"},
        },
        [
            (
                {
                    "type": "delivery",
                    "action": "event",
                    "identifiers": {"id": "dlv-1"},
                    "name": "opened",
                    "attributes": {"device_token": "t"},
                },
                "delivery:dlv-1",
                "delivery.event",
            )
        ],
        SETTINGS,
        id="v2: delivery event",
    ),
    # ---- 7. integrations that do not disable Customer.io ---------------------------------------------------
    pytest.param(
        {"type": "track", "userId": "u1", "event": "E", "integrations": {"All": False, "Customer.io": True}},
        [
            (
                {
                    "type": "person",
                    "action": "event",
                    "identifiers": {"id": "u1"},
                    "name": "E",
                    "id": REC_ID,
                    "timestamp": REC_S,
                    "attributes": {},
                },
                "id:u1",
                "person.event",
            )
        ],
        SETTINGS,
        id="filter: All false but Customer.io true → sent",
    ),
    # ---- 11. dedup ids ------------------------------------------------------------------------------------
    pytest.param(
        {"type": "track", "userId": "u1", "event": "E", "messageId": "01jgfjjzfmyb1cy158j70ky1z1", "timestamp": TS},
        [
            (
                {
                    "type": "person",
                    "action": "event",
                    "identifiers": {"id": "u1"},
                    "name": "E",
                    "id": "01JGFJJZFMYB1CY158J70KY1Z1",
                    "timestamp": TS_S,
                    "attributes": {},
                },
                "id:u1",
                "person.event",
            )
        ],
        SETTINGS,
        id="ulid: a messageId that is a ULID is the id",
    ),
]


@pytest.mark.parametrize(("message", "expected", "config"), CASES)
def test_message_maps_to_exact_operation(message: Message, expected: list[Any], config: MappingSettings) -> None:
    """Each mapping rule produces exactly the documented v2 operation, order key and action."""
    assert mapped(message, config) == expected


FILTERED = [
    pytest.param({"type": "track", "userId": "u", "event": "E", "integrations": {"Customer.io": False}}, SETTINGS,
                 "integrations_disabled", id="Customer.io false"),
    pytest.param({"type": "identify", "userId": "u", "integrations": {"All": False}}, SETTINGS,
                 "integrations_disabled", id="All false"),
    pytest.param({"type": "identify", "userId": "u", "integrations": {"All": False, "Customer.io": {}}}, SETTINGS,
                 None, id="All false, Customer.io options object → sent"),
    pytest.param({"type": "track", "userId": "u", "event": "Debug"}, settings(deny_event_names=("Debug",)),
                 "event_denied", id="denied event"),
    pytest.param({"type": "track", "userId": "u", "event": "Other"}, settings(allow_event_names=("Order",)),
                 "event_denied", id="not an allowed event"),
    pytest.param({"type": "track", "userId": "u", "event": "Order"}, settings(allow_event_names=("Order",)),
                 None, id="allowed event"),
    pytest.param({"type": "person", "action": "event", "identifiers": {"id": "u"}, "name": "Debug"},
                 settings(deny_event_names=("Debug",)), "event_denied", id="denied v2 event"),
    pytest.param({"type": "page", "userId": "u", "name": "x"}, settings(deny_types=("page",)),
                 "type_denied", id="denied type"),
    pytest.param({"type": "alias", "userId": "u", "previousId": "p"}, settings(allow_types=("track",)),
                 "type_denied", id="not an allowed type"),
    pytest.param({"type": "bogus"}, settings(deny_types=("bogus",)), "type_denied", id="denied unknown type"),
]  # fmt: skip


@pytest.mark.parametrize(("message", "config", "reason"), FILTERED)
def test_filtering(message: Message, config: MappingSettings, reason: str | None) -> None:
    """integrations, event allow/deny and type allow/deny lists filter messages (or let them through)."""
    result = map_message(message, CTX, config)
    if reason is None:
        assert isinstance(result, tuple)
    else:
        assert result == Filtered(reason)


BAD = [
    ("not a dict", ["x"], "not_an_object", "message"),
    ("no type", {"userId": "u"}, "missing_field", "type"),
    ("type not a string", {"type": 3}, "invalid_field", "type"),
    ("unknown type", {"type": "purchase", "userId": "u"}, "unknown_type", "type"),
    ("userId object", {"type": "track", "userId": {"a": 1}, "event": "E"}, "invalid_identifier",
     "userId: must be a string or number (got object)"),
    ("userId boolean", {"type": "identify", "userId": True}, "invalid_identifier", "userId"),
    ("userId over 150 bytes", {"type": "identify", "userId": "é" * 76}, "limit_exceeded", "userId: 152 bytes"),
    ("no identifier", {"type": "identify", "traits": {"plan": "x"}}, "missing_identifier", "userId"),
    ("anonymous identify", {"type": "identify", "anonymousId": "a"}, "missing_identifier", "userId"),
    ("track without anyone", {"type": "track", "event": "E"}, "missing_identifier", "anonymousId"),
    ("anonymousId array", {"type": "track", "anonymousId": [1], "event": "E"}, "invalid_identifier", "anonymousId"),
    ("empty cio_id", {"type": "identify", "userId": "cio_"}, "invalid_identifier", "userId"),
    ("traits list", {"type": "identify", "userId": "u", "traits": [1, 2]}, "invalid_field",
     "traits: must be an object (got array)"),
    ("traits.email number", {"type": "identify", "traits": {"email": 5}}, "invalid_identifier", "traits.email"),
    ("properties string", {"type": "track", "userId": "u", "event": "E", "properties": "x"}, "invalid_field",
     "properties"),
    ("context string", {"type": "track", "event": "E", "context": "x"}, "invalid_field", "context"),
    ("no event", {"type": "track", "userId": "u"}, "missing_field", "event"),
    ("event number", {"type": "track", "userId": "u", "event": 5}, "invalid_field", "event"),
    ("page without name", {"type": "page", "userId": "u"}, "missing_field", "properties.url"),
    ("page url number", {"type": "page", "userId": "u", "properties": {"url": 1}}, "invalid_field", "properties.url"),
    ("screen without name", {"type": "screen", "userId": "u"}, "missing_field", "name"),
    ("group without groupId", {"type": "group", "userId": "u"}, "missing_identifier", "groupId"),
    ("objectTypeId word", {"type": "group", "groupId": "g", "traits": {"objectTypeId": "team"}}, "invalid_field",
     "traits.objectTypeId"),
    ("alias without previousId", {"type": "alias", "userId": "u"}, "missing_identifier", "previousId"),
    ("alias to itself", {"type": "alias", "userId": "u", "previousId": "u"}, "invalid_identifier", "previousId"),
    ("bad timestamp", {"type": "track", "userId": "u", "event": "E", "timestamp": "yesterday"}, "invalid_timestamp",
     "timestamp: not an ISO-8601 date or Unix time (got 'yesterday')"),
    ("timestamp object", {"type": "identify", "userId": "u", "timestamp": {}}, "invalid_timestamp", "timestamp"),
    ("timestamp bool", {"type": "identify", "userId": "u", "timestamp": True}, "invalid_timestamp", "timestamp"),
    ("negative timestamp", {"type": "identify", "userId": "u", "timestamp": -5}, "invalid_timestamp", "timestamp"),
    ("bad originalTimestamp", {"type": "identify", "userId": "u", "originalTimestamp": "2024-02-30"},
     "invalid_timestamp", "originalTimestamp"),
    ("bad createdAt", {"type": "identify", "userId": "u", "traits": {"createdAt": "soon"}}, "invalid_timestamp",
     "traits.createdAt"),
    ("messageId object", {"type": "track", "userId": "u", "event": "E", "messageId": {}}, "invalid_field",
     "messageId"),
    ("delete anonymous", {"type": "track", "anonymousId": "a", "event": "User Deleted"}, "missing_identifier",
     "userId"),
    ("token number", {"type": "track", "userId": "u", "event": "Application Opened",
                      "context": {"device": {"token": 5}}}, "invalid_field", "context.device.token"),
    ("web push platform", {"type": "track", "userId": "u", "event": "Application Opened",
                           "context": {"device": {"token": "t", "type": "web"}}}, "invalid_field",
     "context.device.type"),
    ("empty attribute name", {"type": "identify", "userId": "u", "traits": {"": 1}}, "invalid_field", "traits"),
    ("lone surrogate", {"type": "track", "userId": "u", "event": "E", "properties": {"x": "\ud800"}},
     "invalid_field", "properties"),
    ("int beyond 64 bits", {"type": "track", "userId": "u", "event": "E", "properties": {"x": 2**70}},
     "invalid_field", "properties"),
    ("v2 unknown action", {"type": "person", "action": "fly", "identifiers": {"id": "u"}}, "invalid_field",
     "action"),
    ("v2 two identifiers", {"type": "person", "action": "identify", "identifiers": {"id": "u", "email": "a@b.c"}},
     "invalid_identifier", "identifiers"),
    ("v2 no identifiers", {"type": "person", "action": "delete"}, "missing_identifier", "identifiers"),
    # Found by Hypothesis: str() of an int past 4,300 digits raised ValueError (internal_error).
    ("huge numeric messageId", {"type": "track", "event": "E", "userId": "u", "messageId": 10**5000}, "invalid_field", "messageId"),
    # Found by Hypothesis: anything but a list was passed through, and Customer.io would answer 400.
    ("v2 relationships not a list", {"type": "person", "action": "identify", "identifiers": {"id": 0},
        "cio_relationships": True}, "invalid_field", "cio_relationships"),
    ("v2 event without name", {"type": "person", "action": "event", "identifiers": {"id": "u"}}, "missing_field",
     "name"),
    ("v2 merge without secondary", {"type": "person", "action": "merge", "primary": {"id": "u"}},
     "missing_identifier", "secondary"),
    ("v2 object identifiers", {"type": "object", "action": "delete", "identifiers": {"object_id": "x"}},
     "invalid_identifier", "identifiers"),
    ("v2 device without token", {"type": "person", "action": "add_device", "identifiers": {"id": "u"},
                                 "device": {"platform": "ios"}}, "missing_field", "device.token"),
    ("v2 bad timestamp", {"type": "person", "action": "delete", "identifiers": {"id": "u"}, "timestamp": "x"},
     "invalid_timestamp", "timestamp"),
]  # fmt: skip


@pytest.mark.parametrize(("message", "reason", "names"), [pytest.param(*row[1:], id=row[0]) for row in BAD])
def test_bad_input_is_rejected_naming_the_field(message: Any, reason: str, names: str) -> None:
    """Malformed messages become a Rejection with a known reason and a one-line message naming the field."""
    result = map_message(message, CTX, SETTINGS)
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    assert result.reason in REASONS
    assert names in result.message
    assert "\n" not in result.message


# ---- 9. limits -------------------------------------------------------------------------------------------

TRUNCATE = settings(oversize_policy="truncate")
LONG_NAME = "É" * 60  # 120 bytes


@pytest.mark.parametrize(
    ("message", "reason", "names"),
    [
        pytest.param({"type": "track", "userId": "u", "event": LONG_NAME}, "limit_exceeded", "event: 120 bytes, limit 100",
                     id="event name"),
        pytest.param({"type": "identify", "userId": "u", "traits": {"bio": "x" * 1001}}, "limit_exceeded",
                     "traits.bio: 1001 bytes, limit 1000", id="attribute value"),
        pytest.param({"type": "identify", "userId": "u", "traits": {"a": {"b": ["é" * 501]}}}, "limit_exceeded",
                     "traits.a.b[0]: 1002 bytes", id="nested attribute value"),
        pytest.param({"type": "identify", "userId": "u", "traits": {"n" * 151: 1}}, "limit_exceeded",
                     "attribute name over 150 bytes", id="attribute name"),
        pytest.param({"type": "identify", "userId": "u", "traits": {f"k{i}": i for i in range(301)}},
                     "limit_exceeded", "traits: 301 attributes, limit 300", id="attribute count"),
        pytest.param({"type": "group", "groupId": "g" * 151}, "limit_exceeded", "groupId: 151 bytes", id="object id"),
        pytest.param({"type": "track", "userId": "u", "event": "E", "properties": {"p": "x" * 40_000}}, "too_large",
                     "operation: ", id="operation size"),
    ],
)  # fmt: skip
def test_dead_letter_policy_refuses_values_over_the_limits(message: Message, reason: str, names: str) -> None:
    """Under dead_letter, any value over Customer.io's limits rejects the message, naming the field."""
    result = map_message(message, CTX, SETTINGS)
    assert isinstance(result, Rejection)
    assert (result.reason, names in result.message) == (reason, True), result


def test_event_data_over_100k_is_refused_even_when_operations_may_be_larger() -> None:
    """Event data has its own 100,000-byte limit."""
    message = {"type": "track", "userId": "u", "event": "E", "properties": {"p": "x" * 100_000}}
    result = map_message(message, CTX, SETTINGS, max_operation_bytes=500_000)
    assert isinstance(result, Rejection)
    assert result.reason == "limit_exceeded"
    assert result.message.startswith("properties: 100008 bytes of event data")


def test_truncate_policy_cuts_strings_names_and_counts() -> None:
    """Under truncate, strings are cut at a UTF-8 boundary, names shortened, attributes beyond 300 dropped."""
    traits: dict[str, object] = {f"k{i:03d}": i for i in range(310)}
    traits.update({"bio": "é" * 600, "n" * 200: 1})
    [(identify, _, _)] = mapped({"type": "identify", "userId": "u", "anonymousId": "a", "traits": traits}, TRUNCATE)
    attributes = identify["attributes"]
    assert len(attributes) == 300
    assert attributes["anonymous_id"] == "a"  # added attributes survive truncation
    assert attributes["k000"] == 0
    [(event, _, _)] = mapped({"type": "track", "userId": "u", "event": LONG_NAME}, TRUNCATE)
    assert event["name"] == "É" * 50
    [(nested, _, _)] = mapped({"type": "identify", "userId": "u", "traits": {"bio": "é" * 600}}, TRUNCATE)
    assert nested["attributes"]["bio"] == "é" * 500


def test_truncate_policy_shrinks_an_oversized_event_then_gives_up() -> None:
    """An event too big to send has its strings cut to 1000 bytes; still too big → too_large."""
    fits = {"type": "track", "userId": "u", "event": "E", "properties": {"p": "x" * 40_000}}
    [(event, _, _)] = mapped(fits, TRUNCATE)
    assert event["attributes"] == {"p": "x" * 1000}
    too_big = {"type": "track", "userId": "u", "event": "E", "properties": {f"p{i}": "x" * 900 for i in range(40)}}
    result = map_message(too_big, CTX, TRUNCATE)
    assert isinstance(result, Rejection)
    assert result.reason == "too_large"


def test_identifiers_are_never_truncated() -> None:
    """A cut identifier would be another person: refused whatever the policy."""
    result = map_message({"type": "identify", "userId": "u" * 151}, CTX, TRUNCATE)
    assert result == Rejection("limit_exceeded", "userId: 151 bytes, limit 150")


def test_smaller_max_operation_bytes_is_honoured() -> None:
    """The caller's max_operation_bytes bounds every operation."""
    message = {"type": "identify", "userId": "u", "traits": {f"k{i}": "v" * 100 for i in range(20)}}
    assert isinstance(map_message(message, CTX, SETTINGS, 5_000), tuple)
    result = map_message(message, CTX, SETTINGS, 1_000)
    assert isinstance(result, Rejection)
    assert result.reason == "too_large"


# ---- 8. message timestamp precedence ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timestamp": TS, "originalTimestamp": "2020-01-01T00:00:00Z"}, TS_S),
        ({"originalTimestamp": TS}, TS_S),
        ({"timestamp": None, "originalTimestamp": 1_735_718_400}, TS_S),
        ({}, REC_S),
    ],
)
def test_timestamp_precedence(fields: dict[str, Any], expected: int) -> None:
    """timestamp, then originalTimestamp, then the Kafka record time."""
    [(op, _, _)] = mapped({"type": "identify", "userId": "u", **fields}, EVENT_TIME)
    assert op["timestamp"] == expected


def test_record_without_time_sends_no_timestamp() -> None:
    """A record with no timestamp (-1) and a message without one: Customer.io uses the receive time."""
    ctx = dataclasses.replace(CTX, timestamp_ms=-1)
    result = map_message({"type": "track", "userId": "u", "event": "E"}, ctx, SETTINGS)
    assert isinstance(result, tuple)
    op = orjson.loads(result[0].body)
    assert "timestamp" not in op
    assert op["id"] == ref_ulid(0, b"record:events/3/1042/0")


# ---- 11. dedup ids -----------------------------------------------------------------------------------------


def test_ids_are_deterministic_and_distinct_per_record() -> None:
    """Same input → same id; another offset or batch index → another id; ids sort by message time."""
    message = {"type": "track", "userId": "u", "event": "E"}
    first = mapped(message)[0][0]["id"]
    assert mapped(message)[0][0]["id"] == first
    other = map_message(message, dataclasses.replace(CTX, index=1), SETTINGS)
    assert isinstance(other, tuple)
    assert orjson.loads(other[0].body)["id"] != first
    early = mapped({**message, "messageId": "z", "timestamp": "2024-01-01T00:00:00Z"})[0][0]["id"]
    late = mapped({**message, "messageId": "a", "timestamp": "2024-01-01T00:00:00.001Z"})[0][0]["id"]
    assert early < late


# ---- helpers for the delivery engine --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "name", "v2"),
    [
        ({"type": "track", "event": "Order"}, "Order", False),
        ({"type": "track", "event": 5}, None, False),
        ({"type": "identify"}, None, False),
        ({"type": "person", "action": "event", "name": "Order"}, "Order", True),
        ({"type": "object", "action": "delete"}, None, True),
        ({"type": "person"}, None, False),
        ({"type": ["person"], "action": "x"}, None, False),
    ],
)
def test_event_name_and_v2_detection(message: Message, name: str | None, v2: bool) -> None:
    """message_event_name gives the track event for routing; is_v2_operation spots ready-made operations."""
    assert message_event_name(message) == name
    assert is_v2_operation(message) is v2


def test_mapper_is_built_once_per_settings_and_reusable() -> None:
    """map_message and a Mapper built from the same settings agree."""
    message = {"type": "identify", "userId": "u", "traits": {"a": 1}}
    assert Mapper(SETTINGS).map(message, CTX) == map_message(message, CTX, SETTINGS)


def test_input_is_not_modified() -> None:
    """Mapping never mutates the message (records may be retried or dead-lettered as they were)."""
    message = {
        "type": "page",
        "userId": "u",
        "properties": {"title": "t", "at": "2024-01-01T00:00:00Z", "nested": {"at": "2024-01-01"}},
        "context": {"page": {"url": "https://a.io"}},
        "traits": {"createdAt": "2024-01-01"},
    }
    before = orjson.dumps(message)
    mapped(message)
    mapped({**message, "type": "identify"})
    assert orjson.dumps(message) == before


def test_an_operation_holds_about_its_serialized_size() -> None:
    """A buffered operation costs memory in proportion to its body, not orjson's 4 KiB write buffer.

    Operations wait in the sink's buffer until delivered (10,000 of them by default); the byte budget counts
    ``len(body)``, which must be what they hold.
    """
    message = {"type": "track", "userId": "u1", "event": "Visited", "properties": {"page": "/home"}}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        results = [map_message(message, CTX, SETTINGS) for _ in range(500)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    bodies = 0
    for result in results:
        assert isinstance(result, tuple)
        bodies += sum(len(operation.body) for operation in result)
    # Each body's bytes plus the objects around it (the operation, its key, the tuple): under 2 KiB each,
    # where orjson's buffer alone is 4 KiB.
    assert held < bodies + 500 * 1_500, f"{held} bytes held for {bodies} bytes of bodies"


def _only_operation(message: Message) -> Any:
    result = map_message(message, CTX, SETTINGS)
    assert isinstance(result, tuple), result
    (operation,) = result
    return orjson.loads(operation.body)


def test_a_device_event_with_its_token_in_properties_registers_the_device() -> None:
    """Customer.io's own JavaScript example sends ``track("Device Created or Updated", {device: {token,
    type}})``: the device is under properties. It was sent as a plain custom event, the device never added."""
    added = _only_operation(
        {
            "type": "track",
            "userId": "u1",
            "event": "Device Created or Updated",
            "properties": {"device": {"token": "fcm-tok", "type": "android"}, "plan": "pro"},
        }
    )
    assert added == {
        "type": "person",
        "action": "add_device",
        "identifiers": {"id": "u1"},
        "device": {"token": "fcm-tok", "platform": "android", "last_used": REC_S, "attributes": {"plan": "pro"}},
    }
    deleted = _only_operation(
        {"type": "track", "userId": "u1", "event": "Device Deleted", "properties": {"device": {"token": "fcm-tok"}}}
    )
    assert deleted == {
        "type": "person",
        "action": "delete_device",
        "identifiers": {"id": "u1"},
        "device": {"token": "fcm-tok"},
    }


def test_the_context_device_wins_over_a_device_in_properties() -> None:
    added = _only_operation(
        {
            "type": "track",
            "userId": "u1",
            "event": "Device Created or Updated",
            "context": {"device": {"token": "ctx-tok", "type": "ios"}},
            "properties": {"device": {"token": "prop-tok", "type": "android"}},
        }
    )
    assert added["device"]["token"] == "ctx-tok"
    assert added["device"]["platform"] == "ios"
    assert added["device"]["attributes"] == {"device": '{"token":"prop-tok","type":"android"}'}


def test_a_device_in_properties_with_a_token_of_the_wrong_type_is_refused_naming_it() -> None:
    result = map_message(
        {"type": "track", "userId": "u1", "event": "Device Deleted", "properties": {"device": {"token": 5}}},
        CTX,
        SETTINGS,
    )
    assert result == Rejection("invalid_field", "properties.device.token: must be a string (got number)")


def test_a_device_in_properties_without_a_known_platform_is_refused_naming_it() -> None:
    result = map_message(
        {
            "type": "track",
            "userId": "u1",
            "event": "Device Created or Updated",
            "properties": {"device": {"token": "t", "type": "windows"}},
        },
        CTX,
        SETTINGS,
    )
    assert result == Rejection(
        "invalid_field", "properties.device.type: push platform must be ios or android (got 'windows')"
    )


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        ("2020-01-01T00:00:00Z", 1_577_836_800),
        ("2020-01-01", 1_577_836_800),
        (1_577_836_800_000, 1_577_836_800),  # milliseconds
        (1_577_836_800, 1_577_836_800),
        ("1577836800", 1_577_836_800),
    ],
)
def test_a_v2_identifys_created_at_is_sent_as_unix_seconds(created_at: object, expected: int) -> None:
    """Customer.io reads created_at as Unix seconds only: an ISO string or milliseconds passed through was
    stored as given and silently broke segments and campaigns keyed on it (reference §3.3)."""
    op = _only_operation(
        {"type": "person", "action": "identify", "identifiers": {"id": "u1"}, "attributes": {"created_at": created_at}}
    )
    assert op["attributes"] == {"created_at": expected}


def test_a_v2_identifys_unreadable_created_at_is_refused_naming_it() -> None:
    result = map_message(
        {"type": "person", "action": "identify", "identifiers": {"id": "u1"}, "attributes": {"created_at": "soon"}},
        CTX,
        SETTINGS,
    )
    assert result == Rejection(
        "invalid_timestamp", "attributes.created_at: not an ISO-8601 date or Unix time (got 'soon')"
    )


_ACME = {"object_type_id": "1", "object_id": "acme"}


@pytest.mark.parametrize("created_at", ["2020-01-01T00:00:00Z", 1_577_836_800_000, "1577836800"])
@pytest.mark.parametrize("action", ["identify", "identify_anonymous"])
def test_a_v2_object_identifys_created_at_is_sent_as_unix_seconds(action: str, created_at: object) -> None:
    """As for a person: an object's created_at in milliseconds or ISO was passed through unchanged."""
    op = _only_operation(
        {"type": "object", "action": action, "identifiers": _ACME, "attributes": {"created_at": created_at}}
    )
    assert op["attributes"] == {"created_at": 1_577_836_800}


@pytest.mark.parametrize("last_used", ["2020-01-01T00:00:00Z", 1_577_836_800_000, 1_577_836_800, "1577836800"])
def test_a_v2_add_devices_last_used_is_sent_as_unix_seconds(last_used: object) -> None:
    """device.last_used is Unix seconds (reference §3.3); milliseconds passed through read as year ~52,000."""
    device = {"token": "t", "platform": "ios", "last_used": last_used, "attributes": {"app_version": "1"}}
    op = _only_operation({"type": "person", "action": "add_device", "identifiers": {"id": "u1"}, "device": device})
    assert op["device"] == {**device, "last_used": 1_577_836_800}


def test_a_v2_add_devices_unreadable_last_used_is_refused_naming_it() -> None:
    device = {"token": "t", "platform": "ios", "last_used": "yesterday"}
    result = map_message(
        {"type": "person", "action": "add_device", "identifiers": {"id": "u1"}, "device": device}, CTX, SETTINGS
    )
    assert result == Rejection(
        "invalid_timestamp", "device.last_used: not an ISO-8601 date or Unix time (got 'yesterday')"
    )


def test_a_v2_add_devices_attribute_values_are_sent_as_strings() -> None:
    """Customer.io types device attributes as strings: a boolean push_enabled passed through was refused."""
    attributes = {"push_enabled": True, "retries": 3, "meta": {"a": 1}, "gone": None, "os": "17.2"}
    device = {"token": "t", "platform": "ios", "attributes": attributes}
    op = _only_operation({"type": "person", "action": "add_device", "identifiers": {"id": "u1"}, "device": device})
    assert op["device"]["attributes"] == {
        "push_enabled": "true",
        "retries": "3",
        "meta": '{"a":1}',
        "gone": None,
        "os": "17.2",
    }
    assert check_operation(op) is None  # and the fake Customer.io accepts it
