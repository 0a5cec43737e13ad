"""The event-name presets (rudderstack, customerio) and the workspace in normalized events (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import WebhookEventNames
from connector.webhook.names import CUSTOMERIO_NAMES, PRESETS
from connector.webhook.normalize import (
    ACTIONS,
    CHANNELS,
    DOCUMENTED_PAIRS,
    GENERIC_EVENT,
    RUDDERSTACK_NAMES,
    event_name,
    normalize,
)
from tests.webhook.cio_payloads import EXPECTED_NAMES, webhook

RECEIVED = 1_735_689_846.25

# Customer.io's own Journeys names (reference, Addendum C), written out, for every documented pair where
# they differ from the rudderstack preset. Every other documented pair keeps its rudderstack name.
CUSTOMERIO_DIFFERENCES: dict[tuple[str, str], str] = {
    ("customer", "subscribed"): "Subscribed",
    ("customer", "unsubscribed"): "Unsubscribed",
    ("customer", "cio_subscription_preferences_changed"): "Subscription Preferences Changed",
    ("email", "dropped"): "Email Suppressed",
    ("push", "dropped"): "Push Suppressed",
    ("in_app", "drafted"): "In-App Drafted",
    ("in_app", "attempted"): "In-App Attempted",
    ("in_app", "sent"): "In-App Sent",
    ("in_app", "opened"): "In-App Opened",
    ("in_app", "clicked"): "In-App Clicked",
    ("in_app", "converted"): "In-App Converted",
    ("in_app", "failed"): "In-App Failed",
    ("slack", "drafted"): "Slack Drafted",
    ("slack", "attempted"): "Slack Attempted",
    ("slack", "sent"): "Slack Sent",
    ("slack", "clicked"): "Slack Link Clicked",
    ("slack", "failed"): "Slack Failed",
    ("webhook", "drafted"): "Webhook Drafted",
    ("webhook", "attempted"): "Webhook Attempted",
    ("webhook", "sent"): "Webhook Sent",
    ("webhook", "clicked"): "Webhook Link Clicked",
    ("webhook", "converted"): "Webhook Converted",
    ("webhook", "failed"): "Webhook Failed",
}


def test_customerio_preset_uses_customer_ios_own_names() -> None:
    """Every documented pair: Customer.io's Journeys name where it has one, else the rudderstack name."""
    assert set(CUSTOMERIO_DIFFERENCES) <= DOCUMENTED_PAIRS
    for pair in DOCUMENTED_PAIRS:
        expected = CUSTOMERIO_DIFFERENCES.get(pair, EXPECTED_NAMES[pair])
        assert event_name(*pair, CUSTOMERIO_NAMES) == expected, pair


@pytest.mark.parametrize(
    ("object_type", "metric", "name"),
    [
        ("email", "clicked", "Email Link Clicked"),  # the same in both camps
        ("email", "spammed", "Email Marked as Spam"),
        ("email", "unsubscribed", "Email Unsubscribed"),
        ("email", "deferred", "Email Deferred"),
        ("slack", "converted", "Slack Message Converted"),  # not in Customer.io's list: rudderstack name
        ("sms", "dropped", "SMS Dropped"),
        ("whatsapp", "dropped", "WhatsApp Message Dropped"),
        ("in_app", "undeliverable", "In-App Message Undeliverable"),
        ("carrier_pigeon", "sent", GENERIC_EVENT),
        ("email", "teleported", GENERIC_EVENT),
    ],
)
def test_customerio_preset_outside_its_list(object_type: str, metric: str, name: str) -> None:
    """Pairs Customer.io does not name keep a name; unknown ones are the generic event."""
    assert event_name(object_type, metric, CUSTOMERIO_NAMES) == name


def test_default_preset_is_unchanged() -> None:
    """rudderstack (the default) is exactly the names published before the presets existed."""
    for pair, name in EXPECTED_NAMES.items():
        assert event_name(*pair) == name
        assert RUDDERSTACK_NAMES[pair] == name


# --- property: the preset changes the name and nothing else; the workspace adds exactly its two places ---

_chars = st.characters(codec="utf-8")  # what YAML names and JSON payloads can hold: no lone surrogates
_texts = st.text(_chars, max_size=12)
_object_types = st.sampled_from([*CHANNELS, "carrier_pigeon", ""]) | _texts
_metrics = st.sampled_from([*ACTIONS, "teleported", ""]) | _texts
_values = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _texts
_data = st.dictionaries(
    st.sampled_from(["customer_id", "email_address", "subject", "href", "link_id", "recipient", "campaign_id", "x_y"]),
    _values,
    max_size=5,
)
_identifiers = st.fixed_dictionaries({}, optional={"id": _values, "email": _values, "cio_id": _values})


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Webhook payloads of known and unknown object types and metrics, with odd data."""
    object_type, metric = draw(_object_types), draw(_metrics)
    payload = webhook(object_type, metric) if object_type in CHANNELS and draw(st.booleans()) else {}
    data = {**payload.get("data", {}), **draw(_data)}
    if draw(st.booleans()):
        data["identifiers"] = draw(_identifiers)
    return {
        "event_id": draw(st.text("0123456789ABCDEFGHJKMNPQRSTVWXYZ-", min_size=1, max_size=26)),
        "object_type": object_type,
        "metric": metric,
        "timestamp": draw(st.none() | st.integers(0, 2_000_000_000)),
        "data": data,
    }


@settings(max_examples=300, deadline=None)
@given(
    payload=payloads(),
    preset=st.sampled_from(sorted(PRESETS)),
    workspace=st.text(_chars, min_size=1, max_size=20),
)
def test_presets_and_workspace_change_only_their_fields(
    payload: dict[str, Any], preset: WebhookEventNames, workspace: str
) -> None:
    """For any payload: the preset decides ``event`` (its table, else the generic name) and nothing else; a
    workspace adds ``context.workspace`` and the ``workspace`` header, and changes nothing else."""
    table = PRESETS[preset]
    plain = normalize(payload, RECEIVED)
    named = normalize(payload, RECEIVED, names=table)
    placed = normalize(payload, RECEIVED, names=table, workspace=workspace)

    pair = (payload["object_type"], payload["metric"])
    assert named.event["event"] == table.get(pair, GENERIC_EVENT)
    assert named.event == {**plain.event, "event": named.event["event"]}
    assert (named.key, named.headers, named.object_type_label, named.metric_label) == (
        plain.key,
        plain.headers,
        plain.object_type_label,
        plain.metric_label,
    )
    assert "workspace" not in plain.event["context"]
    assert plain.workspace == ""

    assert placed.event["context"] == {**named.event["context"], "workspace": workspace}
    assert {**placed.event, "context": named.event["context"]} == named.event
    assert placed.headers == (*named.headers, ("workspace", workspace.encode()))
    assert placed.workspace == workspace
    assert placed.key == named.key
