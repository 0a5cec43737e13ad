"""The default CONNECTOR_RATE_LIMIT against a workspace whose real limit is lower: 429s cost time, never data.

The default (500 req/s per replica) is chosen for Customer.io's soft 1,000 req/s. If a workspace's real limit
is lower, the fake Customer.io answers 429 with Retry-After; the connector must absorb them (AIMD cut and a
workspace-wide hold) and deliver every operation exactly once, then commit every offset.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

from connector.config import KafkaSettings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from tests.integration.harness import (
    committed_and_end,
    connector_env,
    messages_as_records,
    produce,
    read_all,
    running,
    wait_for,
)
from tests.integration.test_sink_delivery import canonical, expected_operations, sample_messages

pytestmark = pytest.mark.integration

REAL_LIMIT = 4.0  # requests per second the fake's workspace allows: far below the connector's default


async def test_default_rate_limit_above_the_real_one_loses_nothing(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO
) -> None:
    """Default rate limit, a workspace allowing 4 req/s: 429s are retried, each event delivered exactly once."""
    topic, dlq = await topic_factory(partitions=2), await topic_factory()
    messages = sample_messages(3_000, seed=17)
    expected = expected_operations(messages)
    await produce(kafka_settings, topic, messages_as_records(messages))
    fake.state.set_faults(rate_limit_per_second=REAL_LIMIT)
    env = connector_env(kafka_settings.bootstrap_servers, fake, [topic], dlq)
    del env["CONNECTOR_RATE_LIMIT"]  # the default under test
    settings = load_settings(env, role="sink")
    assert settings.sink.rate_limit_per_second > REAL_LIMIT
    async with running(settings) as connector:
        await wait_for(
            lambda: sum(fake.state.stats()["accepted_operations"].values()) >= expected.total(),
            180,
            "all operations despite 429s",
        )
        await wait_for(
            lambda: (
                connector.sample("connector_records_completed_total", {"topic": topic, "outcome": "delivered"})
                >= len(messages)
            ),
            30,
            "every record completed",
        )
        throttled_retries = connector.sample("connector_retries_total", {"workspace": "default", "cause": "429"})
        dead = connector.sample("connector_records_completed_total", {"topic": topic, "outcome": "dead_lettered"})
    assert fake.state.stats()["throttled"]["demo"], "the fake's rate limit was never hit"
    assert throttled_retries > 0
    got = collections.Counter(canonical(r["operation"]) for r in fake.state.operations_for("demo"))
    assert got == expected, "an operation was lost or delivered twice"
    assert dead == 0
    positions = await committed_and_end(kafka_settings, settings.sink.group_id, topic, 2)
    assert all(committed == end for committed, end in positions), positions
    assert (await read_all(kafka_settings, dlq, expect=1, timeout=2)) == []
