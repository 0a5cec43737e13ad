"""Which offsets may be committed: the highest contiguous resolved prefix per partition (pure).

A record is *resolved* once every operation it produced was accepted by Customer.io or it was written to
the dead-letter topic (or it was filtered). Records resolve out of order (lanes run concurrently), so a
partition commits ``offset + 1`` of the last record of the resolved prefix — Kafka's committed offset is
the next record to read, which is why it is ``+ 1``.

Offsets that never arrive as records — aborted transactions' records and transaction markers under
``read_committed``, offsets removed by compaction — are gaps the prefix steps over: only fetched offsets
are waited for. A gap at the end of what was fetched (the commit marker after a transaction's last
record) is covered by ``catch_up``: a partition with nothing in flight commits the consumer's position,
so its lag reaches 0.

A revoked partition's tracker is dropped, and its ``generation`` changes, so late completions of its
records cannot be committed after revocation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from connector.kafka import Partition


@dataclass(slots=True)
class PartitionOffsets:
    """Offsets of one partition in fetch order, and which of them are resolved."""

    generation: int
    pending: deque[int] = field(default_factory=deque)
    resolved: set[int] = field(default_factory=set)
    committable: int | None = None  # next offset to commit (last resolved prefix offset + 1)
    committed: int | None = None  # what was last committed
    first_seen: int = -1  # first offset fetched since assignment (lag before the first commit)

    def extend(self, offsets: Sequence[int]) -> None:
        """Records were fetched, in increasing offset order."""
        if offsets and self.first_seen < 0:
            self.first_seen = offsets[0]
        self.pending.extend(offsets)

    def resolve(self, offset: int) -> None:
        """A record is done; advance the prefix as far as it goes."""
        pending = self.pending
        if pending and pending[0] == offset:
            pending.popleft()
            last = offset
            resolved = self.resolved
            while pending and pending[0] in resolved:
                last = pending.popleft()
                resolved.discard(last)
            self.committable = last + 1
        else:
            self.resolved.add(offset)

    def catch_up(self, position: int) -> None:
        """The consumer reads ``position`` next: when nothing is in flight, every offset before it was
        resolved or never delivered as a record, so ``position`` may be committed (never moves back)."""
        if self.pending:
            return  # an unresolved record: the prefix stops there
        if self.first_seen < 0:
            self.first_seen = position
        if self.committable is None or position > self.committable:
            self.committable = position

    @property
    def in_flight(self) -> int:
        """Records fetched and not yet part of the resolved prefix."""
        return len(self.pending)


class OffsetTracker:
    """Per-partition trackers for the currently assigned partitions."""

    def __init__(self) -> None:
        self._partitions: dict[Partition, PartitionOffsets] = {}
        self._generation = 0

    def tracker(self, partition: Partition) -> PartitionOffsets:
        """The tracker of an assigned partition, created on first use."""
        tracker = self._partitions.get(partition)
        if tracker is None:
            self._generation += 1
            tracker = self._partitions[partition] = PartitionOffsets(self._generation)
        return tracker

    def is_tracked(self, partition: Partition) -> bool:
        """Whether the partition is assigned and has seen records."""
        return partition in self._partitions

    def is_current(self, partition: Partition, generation: int) -> bool:
        """Whether a record fetched under ``generation`` still belongs to this member."""
        return self.current(partition, generation) is not None

    def current(self, partition: Partition, generation: int) -> PartitionOffsets | None:
        """The partition's tracker if a record fetched under ``generation`` still belongs to this member."""
        tracker = self._partitions.get(partition)
        return tracker if tracker is not None and tracker.generation == generation else None

    def to_commit(self) -> dict[Partition, int]:
        """Offsets that advanced since the last commit."""
        return {
            p: t.committable
            for p, t in self._partitions.items()
            if t.committable is not None and t.committable != t.committed
        }

    def mark_committed(self, offsets: dict[Partition, int]) -> None:
        """Remember what the broker accepted."""
        for partition, offset in offsets.items():
            tracker = self._partitions.get(partition)
            if tracker is not None:
                tracker.committed = offset

    def revoke(self, partitions: list[Partition]) -> None:
        """Forget partitions this member no longer owns; their late completions are ignored."""
        for partition in partitions:
            self._partitions.pop(partition, None)

    def in_flight(self, partitions: list[Partition] | None = None) -> int:
        """Unresolved records, over all or the given partitions."""
        if partitions is None:
            return sum(t.in_flight for t in self._partitions.values())
        return sum(t.in_flight for p in partitions if (t := self._partitions.get(p)) is not None)

    def partitions(self) -> list[Partition]:
        """Partitions with a tracker."""
        return list(self._partitions)
