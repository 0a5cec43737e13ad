"""What the sink subscribes to: its topics by name, or the regular expression aiokafka matches (pure).

``CONNECTOR_INPUT_TOPIC_PATTERN`` matches whole topic names (as Kafka Connect's ``topics.regex``), while
aiokafka tests ``re.match`` (a prefix): the pattern is anchored at the end here. The connector's own
output topics — dead letters, webhook events, transactional delivery ids — are always excluded: they are
not Segment-spec input, and consuming the dead-letter topic would dead-letter its records again, forever.
Excluding them (rather than refusing a pattern that matches them) keeps catch-all patterns such as
``.*`` or ``prod\\..*`` usable without a hand-written negative lookahead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from connector.config import Settings


def output_topics(settings: Settings) -> tuple[str, ...]:
    """Topics this connector writes to, which it must never consume by pattern."""
    topics = [settings.sink.dlq_topic, settings.webhook.topic]
    if settings.transactional.delivery_topic:
        topics.append(settings.transactional.delivery_topic)
    return tuple(dict.fromkeys(topics))


def subscription_pattern(pattern: str, excluded: Iterable[str]) -> str:
    """A regex for ``re.match`` that accepts the names ``pattern`` fully matches, except ``excluded``."""
    names = "|".join(re.escape(name) for name in excluded)
    guard = f"(?!(?:{names})\\Z)" if names else ""
    return f"{guard}(?:{pattern})\\Z"
