"""Place newly assigned partitions without a committed offset where ``CONNECTOR_START_FROM`` says (I/O).

Runs inside the rebalance callback, before the first fetch of the assignment: the partitions are paused
while the broker is asked, so no record is read from the consumer's fallback position
(``auto_offset_reset``, which stays ``earliest`` for a committed offset that retention has deleted).
Each partition placed here is logged with its offset, so where a new group started is on record.

When the broker cannot be asked after a few attempts, the partitions stay paused and ``failure`` is set:
the runner raises it (the process restarts), rather than reading from a position nobody chose.
"""

from __future__ import annotations

import asyncio

from connector.config import KafkaSettings
from connector.errors import BrokerUnavailableError
from connector.kafka import Consumer, Partition, group_committed_offsets
from connector.logs import get_logger
from connector.sink.start import EARLIEST, Offsets, StartFrom, effective_start, start_offsets

log = get_logger("sink.start")

ATTEMPTS = 5
BACKOFF_SECONDS = 1.0


class StartPositioner:
    """Seeks a group's uncommitted partitions to their start position as they are assigned."""

    def __init__(self, consumer: Consumer, kafka: KafkaSettings, group_id: str, start: StartFrom) -> None:
        self._consumer = consumer
        self._kafka = kafka
        self._group_id = group_id
        self._start = start
        self.failure: BrokerUnavailableError | None = None

    async def place(self, partitions: list[Partition]) -> None:
        """Seek those of ``partitions`` the group never committed; log each."""
        consumer = self._consumer
        if not partitions:
            return
        consumer.pause(partitions)  # before any await: nothing is fetched from a fallback position
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._place(consumer, partitions)
                break
            except BrokerUnavailableError as exc:
                if attempt == ATTEMPTS:
                    self.failure = exc
                    log.error("Cannot find where new partitions start; they stay paused.", error=str(exc))
                    return
                await asyncio.sleep(BACKOFF_SECONDS * attempt)
        consumer.resume(partitions)

    async def _place(self, consumer: Consumer, partitions: list[Partition]) -> None:
        committed = await group_committed_offsets(self._kafka, self._group_id)
        new = [p for p in partitions if p not in committed]
        if not new:
            return
        start = effective_start(self._start, bool(committed))
        end = await consumer.end_offsets(new)
        beginning = await consumer.beginning_offsets(new) if start.kind == EARLIEST else {}
        at_time = await consumer.offsets_for_time(new, start.timestamp_ms) if start.timestamp_ms is not None else {}
        chosen = start_offsets(start, new, Offsets(beginning, end, at_time))
        for partition in sorted(chosen):
            offset = chosen[partition]
            consumer.seek(partition, offset)
            log.info(
                "No committed offset; partition starts here.",
                topic=partition.topic,
                partition=partition.partition,
                offset=offset,
                end_offset=end[partition],
                start_from=str(start),
                reason="new group: CONNECTOR_START_FROM" if not committed else "partition new to the group",
                fallback_to_latest=start.kind == "at" and partition not in at_time,
            )
