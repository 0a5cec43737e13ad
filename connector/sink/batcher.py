"""Per-lane batches of serialized operations; flush on count, bytes or linger (pure; time passed in).

The request body is assembled from the operations' bytes without re-serializing anything:
``{"batch":[`` + ops joined by ``,`` + ``]}``; the byte budget is checked on exactly that size.

A batch holds operations of one kind only: v2 operations, or operations of one Track API v1 call
(``Operation.v1``, same ``path``). An operation of another kind closes the open batch and opens the next,
so the batches of a lane, sent one after another, keep the operations in submission order. Consecutive
v1 operations of the same call merge, up to their ``max_items`` (1,000 ids for a segment; 1 for a metric)
and the byte budget; the body of a v1 batch is ``{"ids":[`` + ids + ``]}``, or the one operation's body
when ``max_items`` is 1. Merging only joins neighbours in one lane: ids of one segment spread over lanes,
or interleaved with other operations, go in several calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from connector.sink.mapping.model import Operation, V1Call

T = TypeVar("T")  # what travels with each operation (the record's ticket)

_PREFIX = b'{"batch":['
_SUFFIX = b"]}"
ENVELOPE_BYTES = len(_PREFIX) + len(_SUFFIX)
_IDS_PREFIX = b'{"ids":['


class Batch(Generic[T]):
    """Operations bound for one request, in submission order.

    A plain slotted class, not a dataclass: mypyc (setup.py) cannot compile a generic dataclass.
    """

    __slots__ = ("body_bytes", "opened_at", "operations", "tags", "v1")

    def __init__(
        self,
        operations: list[Operation] | None = None,
        tags: list[T] | None = None,
        body_bytes: int = ENVELOPE_BYTES,  # of the v2 envelope also for a v1 batch: an upper bound of its body
        opened_at: float = 0.0,
        v1: V1Call | None = None,  # the v1 call all its operations go in, None for a v2 batch
    ) -> None:
        self.operations: list[Operation] = [] if operations is None else operations
        self.tags: list[T] = [] if tags is None else tags
        self.body_bytes = body_bytes
        self.opened_at = opened_at
        self.v1 = v1

    def __len__(self) -> int:
        return len(self.operations)

    @property
    def operation_bytes(self) -> int:
        """The operations' own serialized bytes (the body without its envelope and commas)."""
        return self.body_bytes - ENVELOPE_BYTES - max(0, len(self.operations) - 1)

    @property
    def max_operations(self) -> int | None:
        """The most operations its kind allows in one request (None: the batcher's own limit)."""
        return None if self.v1 is None else self.v1.max_items

    def body(self) -> bytes:
        """The request body: ``/api/v2/batch``'s, or the v1 call's."""
        if self.v1 is None:
            return _PREFIX + b",".join(op.body for op in self.operations) + _SUFFIX
        if self.v1.max_items == 1:
            return self.operations[0].body
        return _IDS_PREFIX + b",".join(op.body for op in self.operations) + _SUFFIX

    def split(self) -> tuple[Batch[T], Batch[T]]:
        """Two halves, in order (used to isolate a bad item after a whole-batch 400)."""
        mid = len(self.operations) // 2
        return self._slice(0, mid), self._slice(mid, len(self.operations))

    def select(self, keep: Callable[[T], bool]) -> Batch[T]:
        """The items whose tag passes ``keep``."""
        chosen = [i for i, tag in enumerate(self.tags) if keep(tag)]
        return self._pick(chosen)

    def _slice(self, start: int, stop: int) -> Batch[T]:
        return self._pick(list(range(start, stop)))

    def _pick(self, indexes: list[int]) -> Batch[T]:
        ops = [self.operations[i] for i in indexes]
        size = ENVELOPE_BYTES + sum(len(op.body) for op in ops) + max(0, len(ops) - 1)
        return Batch(ops, [self.tags[i] for i in indexes], size, self.opened_at, self.v1)


class Batcher(Generic[T]):
    """Accumulates operations into batches bounded by count and serialized bytes."""

    def __init__(self, max_operations: int, max_bytes: int, linger_seconds: float) -> None:
        self.max_operations = max_operations
        self.max_bytes = max_bytes
        self.linger_seconds = linger_seconds
        self._open: Batch[T] | None = None

    def add(self, operation: Operation, tag: T, now: float) -> Batch[T] | None:
        """Add one operation; return a batch that is full and must be sent, if any.

        An operation that would push the body over the byte budget, or of another kind than the open
        batch (v2, or another v1 call), closes the open batch first, so a returned batch never exceeds
        ``max_bytes`` (each operation is itself far below it) and never mixes kinds. A batch that is full
        the moment it opens while another closed (a v1 call of one item) waits for ``take_full``.
        """
        size = len(operation.body)
        current = self._open
        if (
            operation.v1 is None
            and current is not None
            and current.v1 is None
            and current.body_bytes + size + 1 <= self.max_bytes
        ):
            # The common case, a v2 operation that fits the open v2 batch (not full: it closes when it fills).
            current.body_bytes += size + 1
            operations = current.operations
            operations.append(operation)
            current.tags.append(tag)
            if len(operations) >= self.max_operations:
                self._open = None
                return current
            return None
        if current is not None and (
            current.body_bytes + size + 1 > self.max_bytes
            or current.v1 != operation.v1
            or len(current.operations) >= self._limit(current)
        ):
            # The open batch goes out and this operation opens the next one.
            # (With max_operations == 1 no v2 batch stays open, so this never coincides with a full count.)
            self._open = None
            self._append(operation, tag, now)
            return current
        batch = self._append(operation, tag, now)
        if len(batch.operations) >= self._limit(batch):
            self._open = None
            return batch
        return None

    def take_full(self) -> Batch[T] | None:
        """The open batch if it already holds all its kind allows (after ``add`` closed another)."""
        current = self._open
        if current is not None and len(current.operations) >= self._limit(current):
            self._open = None
            return current
        return None

    def _limit(self, batch: Batch[T]) -> int:
        # A v1 call has its own limit (Customer.io's 1,000 ids), independent of the v2 batch size setting.
        limit = batch.max_operations
        return self.max_operations if limit is None else limit

    def _append(self, operation: Operation, tag: T, now: float) -> Batch[T]:
        current = self._open
        if current is None:
            current = self._open = Batch(opened_at=now, v1=operation.v1)
        current.body_bytes += len(operation.body) + (1 if current.operations else 0)
        current.operations.append(operation)
        current.tags.append(tag)
        return current

    @property
    def open_tags(self) -> list[T]:
        """Tags of the batch still being filled (empty if none)."""
        return self._open.tags if self._open is not None else []

    def due(self, now: float) -> Batch[T] | None:
        """The open batch if it has lingered long enough."""
        current = self._open
        if current is not None and now - current.opened_at >= self.linger_seconds:
            self._open = None
            return current
        return None

    def flush(self) -> Batch[T] | None:
        """The open batch, whatever its age (shutdown, rebalance)."""
        current, self._open = self._open, None
        return current if current is not None and current.operations else None
