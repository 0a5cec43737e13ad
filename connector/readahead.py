"""The Kafka consumer's read-ahead, bounded for the process rather than per partition (pure).

aiokafka fetches ahead: every assigned partition without unconsumed data is asked for up to
``max_partition_fetch_bytes``, and what comes back stays in memory until the sink takes it. That is a bound
per partition, so memory would grow with the partitions assigned (50 one-partition topics: 50 × 2 MiB).
Here the per-partition size is the process budget (``CONNECTOR_FETCH_BUDGET_BYTES``) divided by the
partitions assigned, re-derived at every assignment.

Invariants:
- Never above ``ceiling`` (the size used before: ``min(CONNECTOR_FETCH_MAX_BYTES, 2 MiB)``), so few
  partitions fetch as before.
- Never below ``MIN_PARTITION_FETCH_BYTES`` (or the ceiling, if lower): a record batch larger than its
  partition's fetch size may come back incomplete, which aiokafka reports as an error and skips. The floor
  is the broker's default ``message.max.bytes``, the largest batch a default topic holds; so past
  ``budget / floor`` partitions the read-ahead is ``partitions × floor``, above the budget.
"""

from __future__ import annotations

# Kafka's default message.max.bytes (1 MiB + 12 bytes of log overhead): the largest batch a topic with the
# broker's defaults accepts, which each partition's fetch must be able to hold whole.
MIN_PARTITION_FETCH_BYTES = 1_048_588
MAX_PARTITION_FETCH_BYTES = 2 * 1_048_576  # aiokafka's per-partition size as used until now (the ceiling)


def partition_fetch_bytes(budget: int, partitions: int, fetch_max_bytes: int) -> int:
    """Bytes to fetch per partition when ``partitions`` are assigned and share ``budget`` of read-ahead."""
    ceiling = min(fetch_max_bytes, MAX_PARTITION_FETCH_BYTES)
    floor = min(MIN_PARTITION_FETCH_BYTES, ceiling)
    return max(floor, min(ceiling, budget // max(1, partitions)))
