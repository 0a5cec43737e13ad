"""Track event names of the normalized webhooks: two presets, each a plain table (pure, no logic at run time).

``CONNECTOR_WEBHOOK_EVENT_NAMES`` picks one:

- ``rudderstack`` (the default): ``"<channel> <action>"`` as RudderStack's Customer.io source names them,
  extended by the same rule to the pairs it does not know (``RUDDERSTACK_NAMES`` in
  ``connector.webhook.normalize``).
- ``customerio``: the names Customer.io itself gives these metrics when it sends them to Data Pipelines
  (reference, Addendum C, current list): prefixes ``Email``, ``Push``, ``SMS``, ``In-App``, ``Webhook``,
  ``Slack``; ``dropped`` is ``Suppressed``; an in-app click is ``In-App Clicked``; subscription changes
  not caused by a message are ``Subscribed`` / ``Unsubscribed`` / ``Subscription Preferences Changed``.
  A pair Customer.io's list does not name (``undeliverable``, ``replied``, every WhatsApp metric, SMS
  ``dropped``…) keeps its ``rudderstack`` name, so no event loses its name.

Invariants: every known (object_type, metric) pair has a name in both tables; a pair in neither table is
``GENERIC_EVENT`` (``normalize.event_name``); the tables are only read.
"""

from __future__ import annotations

from connector.config import WebhookEventNames
from connector.webhook.normalize import RUDDERSTACK_NAMES, NameTable

# Addendum C, column "Customer.io verb" × "CIO channels": (verb, channels it is listed for).
_ALL_SIX = ("email", "push", "sms", "in_app", "webhook", "slack")
_JOURNEYS_PREFIXES = {
    "email": "Email",
    "push": "Push",
    "sms": "SMS",
    "in_app": "In-App",
    "webhook": "Webhook",
    "slack": "Slack",
}
_JOURNEYS_VERBS: dict[str, tuple[str, tuple[str, ...]]] = {
    "drafted": ("Drafted", _ALL_SIX),
    "attempted": ("Attempted", _ALL_SIX),
    "sent": ("Sent", _ALL_SIX),
    "delivered": ("Delivered", ("email", "push", "sms")),
    "opened": ("Opened", ("email", "push", "in_app")),
    "clicked": ("Link Clicked", _ALL_SIX),
    "converted": ("Converted", ("email", "push", "sms", "in_app", "webhook")),
    "bounced": ("Bounced", ("email", "push", "sms")),
    "dropped": ("Suppressed", ("email", "push")),
    "spammed": ("Marked as Spam", ("email",)),
    "failed": ("Failed", _ALL_SIX),
    "deferred": ("Deferred", ("email",)),
    "unsubscribed": ("Unsubscribed", ("email",)),
}
# Names that do not follow "<prefix> <verb>".
_JOURNEYS_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("in_app", "clicked"): "In-App Clicked",
    ("customer", "subscribed"): "Subscribed",
    ("customer", "unsubscribed"): "Unsubscribed",
    ("customer", "cio_subscription_preferences_changed"): "Subscription Preferences Changed",
}

CUSTOMERIO_NAMES: NameTable = {
    **RUDDERSTACK_NAMES,
    **{
        (object_type, metric): f"{_JOURNEYS_PREFIXES[object_type]} {verb}"
        for metric, (verb, object_types) in _JOURNEYS_VERBS.items()
        for object_type in object_types
    },
    **_JOURNEYS_EXCEPTIONS,
}

PRESETS: dict[WebhookEventNames, NameTable] = {"rudderstack": RUDDERSTACK_NAMES, "customerio": CUSTOMERIO_NAMES}
