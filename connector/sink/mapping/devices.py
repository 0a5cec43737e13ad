"""Device track events → person ``add_device`` / ``delete_device`` (Customer.io's Track API device
operations; devices as the Segment destination sends them) (pure).

The push token is ``context.device.token``, else ``properties.device.token`` (where Customer.io's own
JavaScript example puts the device: ``track("Device Created or Updated", {device: {token, type}})``); the
platform comes from that device's ``type``, else ``context.os.name``: ``android``, or any Apple system (iOS, iPadOS, tvOS, watchOS, macOS…) as ``ios``
— the only two Customer.io knows. ``last_used`` is the message time. Device attributes are strings:
the event's properties (JSON text for non-strings) and ``device_os``, ``device_model``, ``app_version``
and ``device_locale`` from the context, which win over same-named properties.
"""

from __future__ import annotations

from typing import Any, Final

from connector.sink.mapping.identifiers import Identity
from connector.sink.mapping.model import Message, MessageContext, Planned
from connector.sink.mapping.rules import Rules
from connector.sink.mapping.timestamps import message_ms
from connector.sink.mapping.validation import Invalid, get_object, get_string, label, serialize, show

_APPLE: Final = frozenset(
    {"ios", "ipados", "tvos", "watchos", "visionos", "macos", "mac os", "mac os x", "osx", "iphone os", "apple"}
)
_FROM_CONTEXT: Final = (
    ("device_os", "os", "version"),
    ("device_model", "device", "model"),
    ("app_version", "app", "version"),
    ("device_locale", None, "locale"),
)
_EMPTY: Final[dict[str, Any]] = {}


def plan_device(
    rules: Rules, action: str, message: Message, ctx: MessageContext, *, who: Identity, props: dict[str, Any]
) -> Planned | None:
    """The device operation of a device event, or None when it has no token (it is then a plain event)."""
    context = get_object(message, "context", "context") or _EMPTY
    device = get_object(context, "device", "context.device") or _EMPTY
    token = get_string(device, "token", "context.device.token")
    where = "context.device"
    if not token and "device" in props:
        where = "properties.device"
        device = get_object(props, "device", "properties.device") or _EMPTY
        token = get_string(device, "token", "properties.device.token")
        if token:
            props = {key: value for key, value in props.items() if key != "device"}  # not a device attribute
    if not token:
        return None
    if action == "delete_device":
        op = {"type": "person", "action": action, "identifiers": who[0], "device": {"token": token}}
        return op, who[1], "person.delete_device", "context.device"
    sections = {
        "device": device,
        "os": get_object(context, "os", "context.os") or _EMPTY,
        "app": get_object(context, "app", "context.app") or _EMPTY,
        None: context,
    }
    strings: dict[str, Any] = {}
    for key, value in props.items():
        text = as_device_string(value, "properties." + label(str(key)))
        if text is not None:
            strings[key] = text
    for name, section, key in _FROM_CONTEXT:
        text = as_device_string(sections[section].get(key), f"context.{section}.{key}" if section else "context." + key)
        if text:
            strings[name] = text
    entry: dict[str, Any] = {"token": token, "platform": _platform(device, sections["os"], where)}
    ms = message_ms(message, ctx)
    if ms is not None:
        entry["last_used"] = ms // 1000
    attributes = rules.attributes.stored(strings, "properties", rules.plain_names, convert=False)
    if attributes:
        entry["attributes"] = attributes
    op = {"type": "person", "action": "add_device", "identifiers": who[0], "device": entry}
    return op, who[1], "person.add_device", "properties"


def as_device_string(value: Any, field: str) -> str | None:
    """A device attribute value as Customer.io types it: a string (booleans ``"true"``/``"false"``,
    anything else its JSON text); None stays None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return serialize(value, field).decode()


def _platform(device: dict[str, Any], os: dict[str, Any], where: str) -> str:
    for raw in (device.get("type"), os.get("name")):
        if isinstance(raw, str):
            name = raw.strip().lower()
            if name == "android":
                return "android"
            if name in _APPLE:
                return "ios"
    shown = show(device.get("type") if device.get("type") is not None else os.get("name"))
    raise Invalid("invalid_field", f"{where}.type: push platform must be ios or android (got {shown})")
