"""The replication factor of the topics the connector creates (dead letters, webhook events)."""

from __future__ import annotations

import pytest

from connector.kafka import created_replication


@pytest.mark.parametrize(("brokers", "replication"), [(1, 1), (2, 2), (3, 3), (4, 3), (12, 3)])
def test_a_created_output_topic_is_replicated_three_times_or_on_every_broker_of_a_smaller_cluster(
    brokers: int, replication: int
) -> None:
    # One replica would lose acknowledged dead letters and webhooks with its broker; three is what managed
    # clusters require (Confluent Cloud refuses fewer) and what production topics use.
    assert created_replication(brokers) == replication


def test_a_cluster_whose_metadata_lists_no_broker_still_gets_a_valid_factor() -> None:
    assert created_replication(0) == 1
