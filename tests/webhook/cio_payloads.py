"""Customer.io reporting-webhook payloads for tests, shaped after Customer.io's reporting-webhooks schema."""

from __future__ import annotations

from typing import Any

import orjson

from connector.webhook.signature import sign

SIGNING_KEY = "whsec-test-key-1"
TIMESTAMP = 1_735_689_845  # 2025-01-01T00:04:05Z

# Every (object_type, metric) of Customer.io's reporting-webhooks event table, "(c)" ones included, with the event name
# we publish for it.
EXPECTED_NAMES: dict[tuple[str, str], str] = {
    ("customer", "subscribed"): "Customer Subscribed",
    ("customer", "unsubscribed"): "Customer Unsubscribed",
    ("customer", "cio_subscription_preferences_changed"): "Customer Subscription Preferences Changed",
    ("email", "unsubscribed"): "Email Unsubscribed",
    ("email", "drafted"): "Email Drafted",
    ("email", "attempted"): "Email Attempted",
    ("email", "sent"): "Email Sent",
    ("email", "delivered"): "Email Delivered",
    ("email", "opened"): "Email Opened",
    ("email", "clicked"): "Email Link Clicked",
    ("email", "converted"): "Email Converted",
    ("email", "bounced"): "Email Bounced",
    ("email", "dropped"): "Email Dropped",
    ("email", "deferred"): "Email Deferred",
    ("email", "spammed"): "Email Marked as Spam",
    ("email", "failed"): "Email Failed",
    ("email", "undeliverable"): "Email Undeliverable",
    ("push", "drafted"): "Push Drafted",
    ("push", "attempted"): "Push Attempted",
    ("push", "sent"): "Push Sent",
    ("push", "delivered"): "Push Delivered",
    ("push", "opened"): "Push Opened",
    ("push", "clicked"): "Push Link Clicked",
    ("push", "converted"): "Push Converted",
    ("push", "bounced"): "Push Bounced",
    ("push", "dropped"): "Push Dropped",
    ("push", "failed"): "Push Failed",
    ("push", "undeliverable"): "Push Undeliverable",
    ("in_app", "drafted"): "In-App Message Drafted",
    ("in_app", "attempted"): "In-App Message Attempted",
    ("in_app", "sent"): "In-App Message Sent",
    ("in_app", "opened"): "In-App Message Opened",
    ("in_app", "clicked"): "In-App Message Link Clicked",
    ("in_app", "converted"): "In-App Message Converted",
    ("in_app", "failed"): "In-App Message Failed",
    ("in_app", "undeliverable"): "In-App Message Undeliverable",
    ("sms", "drafted"): "SMS Drafted",
    ("sms", "attempted"): "SMS Attempted",
    ("sms", "sent"): "SMS Sent",
    ("sms", "delivered"): "SMS Delivered",
    ("sms", "clicked"): "SMS Link Clicked",
    ("sms", "converted"): "SMS Converted",
    ("sms", "bounced"): "SMS Bounced",
    ("sms", "dropped"): "SMS Dropped",
    ("sms", "failed"): "SMS Failed",
    ("sms", "undeliverable"): "SMS Undeliverable",
    ("sms", "replied"): "SMS Replied",
    ("slack", "drafted"): "Slack Message Drafted",
    ("slack", "attempted"): "Slack Message Attempted",
    ("slack", "sent"): "Slack Message Sent",
    ("slack", "clicked"): "Slack Message Link Clicked",
    ("slack", "converted"): "Slack Message Converted",
    ("slack", "failed"): "Slack Message Failed",
    ("slack", "undeliverable"): "Slack Message Undeliverable",
    ("webhook", "drafted"): "Webhook Message Drafted",
    ("webhook", "attempted"): "Webhook Message Attempted",
    ("webhook", "sent"): "Webhook Message Sent",
    ("webhook", "clicked"): "Webhook Message Link Clicked",
    ("webhook", "converted"): "Webhook Message Converted",
    ("webhook", "failed"): "Webhook Message Failed",
    ("webhook", "undeliverable"): "Webhook Message Undeliverable",
    ("whatsapp", "drafted"): "WhatsApp Message Drafted",
    ("whatsapp", "attempted"): "WhatsApp Message Attempted",
    ("whatsapp", "sent"): "WhatsApp Message Sent",
    ("whatsapp", "delivered"): "WhatsApp Message Delivered",
    ("whatsapp", "opened"): "WhatsApp Message Opened",
    ("whatsapp", "clicked"): "WhatsApp Message Link Clicked",
    ("whatsapp", "converted"): "WhatsApp Message Converted",
    ("whatsapp", "bounced"): "WhatsApp Message Bounced",
    ("whatsapp", "dropped"): "WhatsApp Message Dropped",
    ("whatsapp", "failed"): "WhatsApp Message Failed",
    ("whatsapp", "undeliverable"): "WhatsApp Message Undeliverable",
    ("whatsapp", "replied"): "WhatsApp Message Replied",
}

_RECIPIENT = {
    "email": "ana@example.com",
    "in_app": "user-1042",
    "sms": "+15555550100",
    "whatsapp": "+15555550100",
    "slack": "#signups",
    "webhook": "https://hooks.example.com/in",
}
_FAILING = frozenset({"attempted", "bounced", "dropped", "failed", "undeliverable"})


def message_data(object_type: str, metric: str) -> dict[str, Any]:
    """``data`` of one event, with the fields Customer.io's webhook schema lists for that channel and metric (campaign variant)."""
    identifiers = {"id": "user-1042", "email": "ana@example.com", "cio_id": "a10b000001"}
    if object_type == "customer" or metric in ("subscribed", "unsubscribed", "cio_subscription_preferences_changed"):
        data: dict[str, Any] = {
            "customer_id": "user-1042",
            "email_address": "ana@example.com",
            "identifiers": identifiers,
        }
        if metric == "cio_subscription_preferences_changed":
            data["content"] = '{"topics":{"topic_1":true}}'
        return data
    data = {
        "campaign_id": 12,
        "action_id": 87,
        "parent_action_id": 86,
        "journey_id": "01JGD8ZZ0Y1X2W3V4T5S6R7Q8P",
        "trigger_event_id": "01JGD8ZYAB12CD34EF56GH78JK",
        "delivery_id": f"dlv-{object_type}-{metric}",
        "customer_id": "user-1042",
        "identifiers": identifiers,
    }
    if object_type == "push":
        data["recipients"] = [
            {"device_id": "fcm:eeC2XC_NVPo", "device_platform": "android"},
            {"device_id": "5f2c9eapns", "device_platform": "ios", "failure_message": "BadDeviceToken"},
        ]
    else:
        data["recipient"] = _RECIPIENT[object_type]
    if object_type == "email":
        data["subject"] = "Your order has shipped"
    if metric in _FAILING and object_type != "push":
        data["failure_message"] = "550 5.1.1 no such user"
    if metric == "clicked":
        data.update(href="https://shop.example.com/sale?utm_source=cio", link_id=3)
        if object_type == "email":
            data["machine"] = False
        if object_type == "in_app":
            data["tracked_response"] = "accept"
    if metric == "opened" and object_type == "email":
        data.update(proxied=False, prefetched=False, synthetic=False)
    if metric == "replied":
        data.update(inbound_event_id="01JGDINBOUND0000000000000", to="+15555550199")
    if metric == "sent" and object_type in ("email", "webhook", "push"):
        data["content"] = "<p>Hello</p>"
    return data


def webhook(object_type: str, metric: str, event_id: str | None = None, **data: Any) -> dict[str, Any]:
    """A complete payload; ``data`` fields given as keywords replace the generated ones."""
    return {
        "event_id": event_id or f"01JGD9A1B2-{object_type}-{metric}",
        "object_type": object_type,
        "metric": metric,
        "timestamp": TIMESTAMP,
        "data": {**message_data(object_type, metric), **data},
    }


def signed(
    body: bytes | dict[str, Any], key: str = SIGNING_KEY, timestamp: int = TIMESTAMP
) -> tuple[bytes, dict[str, str]]:
    """The body (JSON-encoded if a dict) and the headers Customer.io would send with it."""
    raw = orjson.dumps(body) if isinstance(body, dict) else body
    ts = str(timestamp)
    return raw, {
        "X-CIO-Timestamp": ts,
        "X-CIO-Signature": sign(key, ts, raw),
        "Content-Type": "application/json",
    }
