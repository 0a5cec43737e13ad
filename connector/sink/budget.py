"""One memory bound per process: operations and bytes buffered, shared fairly by the workspaces (pure).

Every workspace's buffered operations and their serialized bytes count against one process-wide budget
(``CONNECTOR_MAX_BUFFERED_OPERATIONS`` and ``CONNECTOR_MAX_BUFFERED_BYTES``), so memory follows the
settings, not the number of workspaces. A workspace's *usage* is the larger of its two fractions of the
budget; usages add up, which can only over-count (never exceed) either bound.

Invariants:
- Fair share: a workspace holding operations may use ``1 / k`` of the budget, where ``k`` is the number of
  workspaces holding operations. At its share its intake stops (the runner pauses the partitions its
  operations came from) until it is below half of it, so intake does not toggle per record.
- A blocked workspace (credentials rejected, failing, or holding for a Retry-After) cannot drain: its
  intake stops whatever it holds, and what it holds counts against the others' room only up to the
  current share. A workspace stopped while it held more (it was alone, then others got work) therefore
  never starves them; that excess is the one way the total can pass the budget, by at most one budget.
- Process bound: when the flowing workspaces (plus records waiting for the dead-letter writer or a
  transactional send) fill what the blocked ones leave, all intake stops until the flowing ones are
  below half of that room. Between passes one fetch can overshoot (at most ``CONNECTOR_MAX_POLL_RECORDS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple


class Holding(NamedTuple):
    """What one workspace buffers now, and whether it can drain."""

    operations: int
    bytes: int
    blocked: bool


@dataclass(frozen=True, slots=True)
class Plan:
    """The intake decision of one backpressure pass."""

    full: bool  # the process is at its bound: no partition is fetched
    held_back: frozenset[str]  # workspaces whose partitions are paused (blocked, or at their share)
    flush: frozenset[str]  # workspaces whose open batches go out now: their intake just stopped


class BufferBudget:
    """The process-wide budget and its hysteresis state (which workspaces are at their share, full)."""

    def __init__(self, max_operations: int, max_bytes: int) -> None:
        if max_operations < 1 or max_bytes < 1:
            raise ValueError("the budget needs at least one operation and one byte")
        self.max_operations = max_operations
        self.max_bytes = max_bytes
        self.full = False
        self._at_share: set[str] = set()

    def usage(self, operations: int, nbytes: int) -> float:
        """Fraction of the budget used by ``operations`` of ``nbytes`` serialized bytes."""
        return max(operations / self.max_operations, nbytes / self.max_bytes)

    def plan(self, holdings: Mapping[str, Holding], pending_records: int = 0) -> Plan:
        """Decide intake from every workspace's holding; ``pending_records`` wait outside the workspaces."""
        usages = {name: self.usage(h.operations, h.bytes) for name, h in holdings.items()}
        share = 1.0 / max(1, sum(1 for u in usages.values() if u > 0))
        held_back: set[str] = set()
        flush: set[str] = set()
        blocked_room = 0.0  # what blocked workspaces hold, each counted up to the share
        flowing = pending_records / self.max_operations
        at_share = self._at_share
        for name, used in usages.items():
            if holdings[name].blocked:
                at_share.discard(name)
                held_back.add(name)
                blocked_room += min(used, share)
                continue
            flowing += used
            if name in at_share:
                if used < share / 2:
                    at_share.discard(name)
                else:
                    held_back.add(name)
            elif used >= share:
                at_share.add(name)
                held_back.add(name)
                flush.add(name)
        room = 1.0 - blocked_room
        # flowing > 0: with nothing flowing there is nothing to stop, and a workspace without work yet
        # must be able to fetch its first records (then it has a share, and the blocked ones count less).
        if not self.full and flowing >= room and flowing > 0:
            self.full = True
            flush.update(name for name in holdings if not holdings[name].blocked)
        elif self.full and flowing < room / 2:
            self.full = False
        return Plan(self.full, frozenset(held_back), frozenset(flush))
