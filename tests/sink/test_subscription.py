"""The pattern subscription matches whole topic names and never the connector's own output topics."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from connector.config import load_settings
from connector.sink.subscription import output_topics, subscription_pattern

# Kafka topic names: ASCII letters, digits, '.', '_' and '-'.
TOPIC = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789._-", min_size=1, max_size=40)
PATTERNS = st.sampled_from([".*", "events\\..*", "a.*", "[a-z]+", "prod-.*-v[0-9]", "x|y", "events"])


@given(pattern=PATTERNS, topic=TOPIC, excluded=st.lists(TOPIC, max_size=3))
def test_matches_exactly_the_full_matches_not_excluded(pattern: str, topic: str, excluded: list[str]) -> None:
    """aiokafka's re.match accepts a topic iff the user's pattern matches it whole and it is not excluded."""
    accepted = re.compile(subscription_pattern(pattern, excluded)).match(topic) is not None
    assert accepted == (re.fullmatch(pattern, topic) is not None and topic not in excluded)


def test_prefix_alone_does_not_match() -> None:
    """`events` does not pick up `events-archive` (whole-name semantics, as Kafka Connect's topics.regex)."""
    assert re.match(subscription_pattern("events", []), "events-archive") is None


def test_output_topics_are_the_dead_letter_webhook_and_delivery_topics() -> None:
    """Every topic the connector writes to is excluded from its pattern."""
    settings = load_settings(
        {
            "CONNECTOR_DLQ_TOPIC": "my-dlq",
            "CONNECTOR_WEBHOOK_TOPIC": "my-hooks",
            "CONNECTOR_TRANSACTIONAL_DELIVERY_TOPIC": "my-deliveries",
        }
    )
    assert output_topics(settings) == ("my-dlq", "my-hooks", "my-deliveries")
    assert re.match(subscription_pattern("my-.*", output_topics(settings)), "my-dlq") is None
