"""A ticket per consumed record: counts its unresolved operations and remembers why it failed.

The record is resolved when its ticket is sealed (mapping finished) and every operation it produced is
delivered or rejected. Then the runner either marks its offset done, or first writes the record to the
dead-letter topic (if anything was rejected) and marks it done after Kafka's ack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connector.kafka import Partition, Record


@dataclass(frozen=True, slots=True)
class DeadLetterReason:
    """Why (part of) a record was not delivered."""

    reason: str  # from model.REASONS
    message: str  # one line, names the field; never contains secrets
    workspace: str = ""
    status: int | None = None  # Customer.io's HTTP status, when it answered
    schema_id: int | None = None  # the registry schema id of a wire-format record that did not decode


class Ticket:
    """Completion state of one record."""

    __slots__ = (
        "_on_done",
        "dead_letter",
        "filtered",
        "generation",
        "partition",
        "pending",
        "record",
        "skipped",
        "workspaces",
    )

    def __init__(
        self, record: Record, partition: Partition, generation: int, on_done: Callable[[Ticket], None]
    ) -> None:
        self.record = record
        self.partition = partition
        self.generation = generation
        self.pending = 1  # held by the mapping stage until seal()
        self.dead_letter: DeadLetterReason | None = None
        self.filtered = 0
        self.skipped = False  # not delivered on purpose (a tombstone): nothing to send, nothing wrong
        self.workspaces: tuple[str, ...] = ()
        self._on_done = on_done

    def hold(self, workspace: str) -> None:
        """One more operation of this record is on its way to ``workspace``."""
        self.pending += 1
        if workspace not in self.workspaces:
            self.workspaces = (*self.workspaces, workspace)

    def reject(self, reason: DeadLetterReason) -> None:
        """Record a rejection (the first one is reported in the dead-letter headers)."""
        if self.dead_letter is None:
            self.dead_letter = reason

    def release(self) -> None:
        """One operation resolved (delivered or rejected)."""
        self.pending -= 1
        if self.pending == 0:
            self._on_done(self)

    def finished(self) -> None:
        """Report the record resolved to its owner: what ``release`` does when the last operation resolves,
        for a delivery that counts a whole batch's operations down itself (``WorkspaceDelivery``)."""
        self._on_done(self)

    def seal(self) -> None:
        """Mapping is finished: no more operations will be added."""
        self.pending -= 1  # release() inlined: once per record
        if self.pending == 0:
            self._on_done(self)

    @property
    def outcome(self) -> str:
        """delivered, dead_lettered, filtered or skipped (a label of connector_records_completed_total)."""
        if self.dead_letter is not None:
            return "dead_lettered"
        if self.skipped:
            return "skipped"
        if self.filtered and not self.workspaces:
            return "filtered"
        return "delivered"
