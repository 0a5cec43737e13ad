"""Customer.io reporting-webhook payload → a Segment-spec ``track`` event (pure).

Output schema (the value of each Kafka record, JSON)::

    {
      "type": "track",
      "event": "Email Link Clicked",             # EVENT NAMES below; unknown → "Customer.io Event"
      "messageId": "<event_id>",                 # stable across Customer.io retries
      "userId": "<identifiers.id or customer_id>",          # omitted when neither is set
      "anonymousId": "<identifiers.email or email_address or identifiers.cio_id>",  # only without userId
      "timestamp": "2025-01-01T00:04:05.000Z",   # the payload's ``timestamp`` (Unix s); receivedAt if invalid
      "originalTimestamp": <same as timestamp>,
      "receivedAt": "<when the listener received it>",
      "context": {
        "integration": {"name": "Customer.io", "version": "<connector version>"},
        "library": {"name": "cio-connector", "version": "<connector version>"},
        "workspace": "<workspace name>",             # only from /webhooks/customerio/<workspace name>
        "traits": {"email": ..., "cioId": ...}          # the person's identifiers, when present
      },
      "integrations": {"Customer.io": false},   # never sent back to Customer.io by the sink
      "properties": {
        "eventId": "<event_id>", "objectType": "<raw object_type>", "metric": "<raw metric>",
        "deliveryId", "campaignId", "actionId", "journeyId", "parentActionId", "triggerEventId",
        "broadcastId", "triggerId", "newsletterId", "contentId", "transactionalMessageId", ...
        "recipient" | "recipients", "emailSubject", "link": {"url", "id"}, "reason", "content", ...
      }
    }

Property names follow RudderStack's Customer.io source: ``subject`` → ``emailSubject``, ``href`` /
``link_id`` → ``link.url`` / ``link.id``, ``failure_message`` → ``reason``; every other ``data`` field
(ids, ``recipient(s)``, ``machine``, ``proxied``, ``tracked_response``, ``inbound_event_id``, ``to``, fields
Customer.io adds later…) is kept under its camelCase name. ``identifiers`` and ``customer_id`` become
``userId``/``anonymousId``/``context.traits``. Null values are left out.

EVENT NAMES (preset ``rudderstack``, the default; ``customerio`` is in ``connector.webhook.names``):
``"<channel> <action>"`` for every known object type and metric —
channel: customer ``Customer``, email ``Email``, push ``Push``, sms ``SMS``, in_app ``In-App Message``,
slack ``Slack Message``, webhook ``Webhook Message``, whatsapp ``WhatsApp Message``; action: the metric
in the past tense, except clicked ``Link Clicked``, spammed ``Marked as Spam`` and
cio_subscription_preferences_changed ``Subscription Preferences Changed``. This reproduces
RudderStack's names where it has one (``Email Link Clicked``, ``Email Marked as Spam``, ``Push Opened``,
``Slack Message Sent``…) and extends the same rule to the rest (``In-App Message Link Clicked``,
``WhatsApp Message Delivered``, ``Email Undeliverable``, ``SMS Replied``,
``Customer Subscription Preferences Changed``). An unknown object type or metric is still an event:
``"Customer.io Event"``, with the raw values in ``properties``; its metric labels are ``"other"``.

Kafka record: key = userId, else the email, else ``cio_id``, else ``event_id`` (a person's events stay
in one partition, in order); headers ``event_id``, ``object_type``, ``metric`` (raw values, UTF-8), and
``workspace`` (its name) for a webhook received on a workspace's path. The workspace is named only there:
events of the single-workspace path are exactly as before workspaces existed.
An event over ``MAX_RECORD_BYTES`` loses ``properties.content``/``headers`` (message bodies) and gets
``properties.contentOmitted: true``; one still too large is a DecodeError (400).

Errors: ``parse`` and ``normalize`` return a value or raise ``DecodeError`` (a 400), never anything else.
A payload that cannot be written back as JSON is ``DecodeError("unencodable")``: orjson reads up to 1024
levels of nesting but writes only 254, and writes no integer beyond 64 bits.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from connector import __version__
from connector.errors import DecodeError

Headers = tuple[tuple[str, bytes], ...]
NameTable = Mapping[tuple[str, str], str]  # (object_type, metric) → track event name

GENERIC_EVENT = "Customer.io Event"
OTHER = "other"

CHANNELS: dict[str, str] = {
    "customer": "Customer",
    "email": "Email",
    "push": "Push",
    "in_app": "In-App Message",
    "sms": "SMS",
    "slack": "Slack Message",
    "webhook": "Webhook Message",
    "whatsapp": "WhatsApp Message",
}
ACTIONS: dict[str, str] = {
    "subscribed": "Subscribed",
    "unsubscribed": "Unsubscribed",
    "cio_subscription_preferences_changed": "Subscription Preferences Changed",
    "drafted": "Drafted",
    "attempted": "Attempted",
    "sent": "Sent",
    "delivered": "Delivered",
    "opened": "Opened",
    "clicked": "Link Clicked",
    "converted": "Converted",
    "bounced": "Bounced",
    "dropped": "Dropped",
    "deferred": "Deferred",
    "spammed": "Marked as Spam",
    "failed": "Failed",
    "undeliverable": "Undeliverable",
    "replied": "Replied",
}

# The rudderstack preset as a table: every known channel × every known action.
RUDDERSTACK_NAMES: NameTable = {
    (object_type, metric): f"{channel} {action}"
    for object_type, channel in CHANNELS.items()
    for metric, action in ACTIONS.items()
}

_MESSAGE = ("drafted", "attempted", "sent", "failed", "undeliverable", "clicked")
# Every (object_type, metric) of Customer.io's reporting-webhooks event table, including the "(c)" ones that exist only
# as configurable event types. Names are derived for any known pair, listed here or not.
DOCUMENTED_PAIRS: frozenset[tuple[str, str]] = frozenset(
    [("customer", m) for m in ("subscribed", "unsubscribed", "cio_subscription_preferences_changed")]
    + [(ot, m) for ot in CHANNELS if ot != "customer" for m in _MESSAGE]
    + [(ot, "converted") for ot in ("email", "push", "in_app", "sms", "slack", "webhook", "whatsapp")]
    + [(ot, "delivered") for ot in ("email", "push", "sms", "whatsapp")]
    + [(ot, "opened") for ot in ("email", "push", "in_app", "whatsapp")]
    + [(ot, "bounced") for ot in ("email", "push", "sms", "whatsapp")]
    + [(ot, "dropped") for ot in ("email", "push", "sms", "whatsapp")]
    + [("email", "unsubscribed"), ("email", "deferred"), ("email", "spammed")]
    + [(ot, "replied") for ot in ("sms", "whatsapp")]
)

# data field → property name (None: not copied; other fields are camelCased). Ids and recipients of
# the reference's schema are listed so the common fields cost one lookup.
_PROPERTY_NAMES: dict[str, str | None] = {
    "identifiers": None,
    "customer_id": None,
    "href": None,
    "link_id": None,
    "subject": "emailSubject",
    "failure_message": "reason",
    "delivery_id": "deliveryId",
    "campaign_id": "campaignId",
    "action_id": "actionId",
    "parent_action_id": "parentActionId",
    "journey_id": "journeyId",
    "trigger_event_id": "triggerEventId",
    "broadcast_id": "broadcastId",
    "trigger_id": "triggerId",
    "newsletter_id": "newsletterId",
    "content_id": "contentId",
    "transactional_message_id": "transactionalMessageId",
    "recipient": "recipient",
    "recipients": "recipients",
    "email_address": "emailAddress",
}
_UNLISTED = "\0unlisted"
_INTEGRATION = {"name": "Customer.io", "version": __version__}
_LIBRARY = {"name": "cio-connector", "version": __version__}
_CONTEXT = {"integration": _INTEGRATION, "library": _LIBRARY}
_INTEGRATIONS = {"Customer.io": False}
_MAX_UNIX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_BODY_FIELDS = ("content", "headers")
# Kafka's default record limit is 1 MiB (producer max.request.size, broker message.max.bytes); the
# key, headers and batch framing need some room too.
MAX_RECORD_BYTES = 900_000


class NormalizedEvent(NamedTuple):
    """One webhook, ready to produce: the Segment event, its Kafka key and headers, bounded labels.

    Immutable as a NamedTuple rather than a frozen dataclass: one is built per webhook, and a frozen
    dataclass's ``__init__`` sets each of its eight fields through ``object.__setattr__``.
    """

    event_id: str
    event: dict[str, Any]
    value: bytes  # the event as compact JSON: the record value
    key: bytes
    headers: Headers
    object_type_label: str
    metric_label: str
    workspace: str = ""  # the workspace whose path received it ("" on the single-workspace path)


def event_name(object_type: str, metric: str, names: NameTable = RUDDERSTACK_NAMES) -> str:
    """The track event name of a (object_type, metric) pair in ``names``; ``GENERIC_EVENT`` when unknown."""
    return names.get((object_type, metric), GENERIC_EVENT)


def event_id_of(payload: Mapping[str, Any]) -> str:
    """The payload's ``event_id`` as a string; DecodeError when it is missing or not a string/integer."""
    raw = payload.get("event_id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, str) and raw.strip():
        return raw
    raise DecodeError("missing_event_id", "event_id is missing or not a non-empty string")


def parse(body: bytes) -> dict[str, Any]:
    """The JSON object of a webhook body; DecodeError when it is not JSON or not an object."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise DecodeError("not_json", "body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise DecodeError("not_object", "body is not a JSON object")
    return payload


def normalize(
    payload: Mapping[str, Any], received_at: float, *, names: NameTable = RUDDERSTACK_NAMES, workspace: str = ""
) -> NormalizedEvent:
    """Turn a parsed payload into a NormalizedEvent; only a missing ``event_id`` is an error (DecodeError).

    ``names`` is the event-name preset's table; ``workspace`` (when not "") is named in ``context.workspace``
    and the ``workspace`` header.
    """
    event_id = event_id_of(payload)
    object_type = _text(payload.get("object_type"))
    metric = _text(payload.get("metric"))
    raw_data = payload.get("data")
    data = _mapping(raw_data)

    identifiers = data.get("identifiers")
    ids = _mapping(identifiers)
    user_id = _id(ids.get("id")) or _id(data.get("customer_id"))
    email = _id(ids.get("email")) or _id(data.get("email_address"))
    cio_id = _id(ids.get("cio_id"))

    received = _iso(received_at)
    seconds = _unix_seconds(payload.get("timestamp"))
    timestamp = received if seconds is None else _iso(seconds)

    traits: dict[str, Any] = {}
    if email:
        traits["email"] = email
    if cio_id:
        traits["cioId"] = cio_id
    # The constant parts are shared between events: they are only ever serialized, never changed.
    context: dict[str, Any] = _CONTEXT
    if workspace:
        context = {"integration": _INTEGRATION, "library": _LIBRARY, "workspace": workspace}
        if traits:
            context["traits"] = traits
    elif traits:
        context = {"integration": _INTEGRATION, "library": _LIBRARY, "traits": traits}

    event: dict[str, Any] = {"type": "track", "event": event_name(object_type, metric, names), "messageId": event_id}
    if user_id:
        event["userId"] = user_id
    elif email or cio_id:
        event["anonymousId"] = email or cio_id
    event["timestamp"] = event["originalTimestamp"] = timestamp
    event["receivedAt"] = received
    event["context"] = context
    event["integrations"] = _INTEGRATIONS
    event["properties"] = _properties(event_id, object_type, metric, data, raw_data)
    key = user_id or email or cio_id or event_id
    return NormalizedEvent(
        event_id=event_id,
        event=event,
        value=_encode(event),
        key=key.encode(),
        headers=_headers(event_id, object_type, metric, workspace),
        object_type_label=object_type if object_type in CHANNELS else OTHER,
        metric_label=metric if metric in ACTIONS else OTHER,
        workspace=workspace,
    )


def _headers(event_id: str, object_type: str, metric: str, workspace: str) -> Headers:
    headers: Headers = (
        ("event_id", event_id.encode()),
        ("object_type", object_type.encode()),
        ("metric", metric.encode()),
    )
    return (*headers, ("workspace", workspace.encode())) if workspace else headers


def _properties(event_id: str, object_type: str, metric: str, data: Mapping[str, Any], raw_data: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, value in data.items():
        if value is None:
            continue
        renamed = _PROPERTY_NAMES.get(name, _UNLISTED)
        if renamed is _UNLISTED:
            properties[_camel(name)] = value
        elif renamed is not None:
            properties[renamed] = value
    href, link_id = data.get("href"), data.get("link_id")
    if href is not None or link_id is not None:
        properties["link"] = {k: v for k, v in (("url", href), ("id", link_id)) if v is not None}
    if raw_data is not None and raw_data is not data:  # ``data`` is ``raw_data`` when that is a mapping
        properties["data"] = raw_data  # not the documented shape; kept rather than lost
    properties["eventId"] = event_id
    properties["objectType"] = object_type
    properties["metric"] = metric
    return properties


_camel_cache: dict[str, str] = {}


def _dumps(value: Any) -> bytes:
    """orjson.dumps, its error as a DecodeError (its messages are fixed phrases, never the values)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise DecodeError("unencodable", f"body cannot be re-encoded as JSON: {exc}") from None


def _encode(event: dict[str, Any]) -> bytes:
    """The event as JSON, without message bodies if it would not fit in a Kafka record."""
    value = _dumps(event)
    if len(value) <= MAX_RECORD_BYTES:
        return value
    # A "sent" event with Body Content can carry a whole e-mail. Kafka would refuse the record for good,
    # and a 503 would then stall Customer.io's stream for 7 days, so the bodies are dropped instead.
    properties = event["properties"]
    for name in _BODY_FIELDS:
        properties.pop(name, None)
    properties["contentOmitted"] = True
    value = _dumps(event)
    if len(value) > MAX_RECORD_BYTES:
        raise DecodeError("too_large", f"event larger than {MAX_RECORD_BYTES} bytes even without message content")
    return value


def _camel(name: str) -> str:
    camel = _camel_cache.get(name)
    if camel is None:
        head, *rest = name.split("_")
        camel = head + "".join(part[:1].upper() + part[1:] for part in rest)
        if len(_camel_cache) < 1024:  # field names are a small set; never let odd payloads grow it
            _camel_cache[name] = camel
    return camel


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one. A JSON object is a dict: checked first, as an
    ``isinstance`` against the ``Mapping`` ABC costs a Python-level ``__instancecheck__`` call."""
    if isinstance(value, dict):
        return value
    return value if value is not None and isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else _dumps(value).decode())


def _id(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _unix_seconds(value: Any) -> float | None:
    if isinstance(value, str):
        value = _decimal_string(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value <= _MAX_UNIX_SECONDS else None


def _decimal_string(text: str) -> float | None:
    """``"123"`` or ``"123.5"`` in ASCII digits, else None (``float()`` alone also takes "١٢", "1_000", " 12",
    "1e3" and "nan"); the length bound keeps a hostile string from costing anything."""
    if not (0 < len(text) <= 32 and text.isascii()):
        return None
    whole, dot, fraction = text.partition(".")
    if not whole.isdigit() or (dot and not fraction.isdigit()):
        return None
    return float(text)


_second_prefixes: dict[int, str] = {}


def _iso(seconds: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC); the date-time part of recent seconds is remembered."""
    whole = math.floor(seconds)
    prefix = _second_prefixes.get(whole)
    if prefix is None:
        if len(_second_prefixes) >= 64:
            _second_prefixes.clear()
        prefix = _second_prefixes[whole] = dt.datetime.fromtimestamp(whole, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if seconds == whole:  # Customer.io's timestamps are whole seconds: no rounding, no formatting
        return prefix + ".000Z"
    return f"{prefix}.{min(999, round((seconds - whole) * 1000)):03d}Z"
