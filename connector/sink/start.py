"""Where a consumer group starts reading a partition it has no committed offset for (pure).

``CONNECTOR_START_FROM`` (and ``offsets reset --to``) is ``earliest``, ``latest`` or an ISO-8601 time with
a time zone. It applies only to a *new group*: one without a committed offset on any partition. A
partition that a group with committed offsets has never committed (one added to the topic, or a new topic
matching the pattern) starts at ``earliest`` whatever the setting: every record on it is new to the group,
and starting at ``latest`` would skip those produced before the consumer noticed the partition.
Partitions with a committed offset always resume from it.

For a time, a partition starts at its first offset whose timestamp is at or after that time, or at its
end when it has none (every record is older).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

EARLIEST: Literal["earliest"] = "earliest"
LATEST: Literal["latest"] = "latest"

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class StartFrom:
    """``earliest``, ``latest``, or ``at`` a time (``timestamp_ms``, epoch milliseconds)."""

    kind: Literal["earliest", "latest", "at"]
    timestamp_ms: int | None = None

    def __str__(self) -> str:
        if self.timestamp_ms is None:
            return self.kind
        moment = dt.datetime.fromtimestamp(self.timestamp_ms / 1000, dt.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_start_from(text: str) -> StartFrom:
    """``earliest``, ``latest`` or an ISO-8601 time with a zone (``2025-05-01T00:00:00Z``); ValueError if not."""
    value = text.strip()
    if value.lower() in (EARLIEST, LATEST):
        return StartFrom(EARLIEST if value.lower() == EARLIEST else LATEST)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"must be earliest, latest or an ISO-8601 time such as 2025-05-01T00:00:00Z (got {text!r})"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"the time needs a time zone, such as Z or +02:00 (got {text!r})")
    timestamp_ms = int(moment.timestamp() * 1000)
    if timestamp_ms < 0:
        raise ValueError(f"the time must be after 1970-01-01 (got {text!r})")
    return StartFrom("at", timestamp_ms)


@dataclass(frozen=True, slots=True)
class Offsets(Generic[P]):
    """What the broker says about some partitions: first and end offsets, and (for a time) the first
    offset at or after it (absent: no such record)."""

    beginning: Mapping[P, int]
    end: Mapping[P, int]
    at_time: Mapping[P, int]


def start_offsets(start: StartFrom, partitions: Collection[P], offsets: Offsets[P]) -> dict[P, int]:
    """The offset each partition starts at under ``start``."""
    chosen: dict[P, int] = {}
    for partition in partitions:
        if start.kind == EARLIEST:
            chosen[partition] = offsets.beginning[partition]
        elif start.kind == LATEST:
            chosen[partition] = offsets.end[partition]
        else:
            chosen[partition] = offsets.at_time.get(partition, offsets.end[partition])
    return chosen


def effective_start(start: StartFrom, group_has_commits: bool) -> StartFrom:
    """The setting for a new group; ``earliest`` for a partition new to a group that has commits."""
    return StartFrom(EARLIEST) if group_has_commits else start
