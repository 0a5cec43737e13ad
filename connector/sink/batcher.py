"""Per-lane batches of serialized operations; flush on count, bytes or linger (pure; time passed in).

The request body is assembled from the operations' bytes without re-serializing anything:
``{"batch":[`` + ops joined by ``,`` + ``]}``; the byte budget is checked on exactly that size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from connector.sink.mapping.model import Operation

T = TypeVar("T")  # what travels with each operation (the record's ticket)

_PREFIX = b'{"batch":['
_SUFFIX = b"]}"
ENVELOPE_BYTES = len(_PREFIX) + len(_SUFFIX)


@dataclass(slots=True)
class Batch(Generic[T]):
    """Operations bound for one request, in submission order."""

    operations: list[Operation] = field(default_factory=list)
    tags: list[T] = field(default_factory=list)
    body_bytes: int = ENVELOPE_BYTES
    opened_at: float = 0.0

    def __len__(self) -> int:
        return len(self.operations)

    @property
    def operation_bytes(self) -> int:
        """The operations' own serialized bytes (the body without its envelope and commas)."""
        return self.body_bytes - ENVELOPE_BYTES - max(0, len(self.operations) - 1)

    def body(self) -> bytes:
        """The ``/api/v2/batch`` request body."""
        return _PREFIX + b",".join(op.body for op in self.operations) + _SUFFIX

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
        return Batch(ops, [self.tags[i] for i in indexes], size, self.opened_at)


class Batcher(Generic[T]):
    """Accumulates operations into batches bounded by count and serialized bytes."""

    def __init__(self, max_operations: int, max_bytes: int, linger_seconds: float) -> None:
        self.max_operations = max_operations
        self.max_bytes = max_bytes
        self.linger_seconds = linger_seconds
        self._open: Batch[T] | None = None

    def add(self, operation: Operation, tag: T, now: float) -> Batch[T] | None:
        """Add one operation; return a batch that is full and must be sent, if any.

        An operation that would push the body over the byte budget closes the open batch first, so a
        returned batch never exceeds ``max_bytes`` (each operation is itself far below it).
        """
        size = len(operation.body)
        current = self._open
        if current is not None and current.body_bytes + size + 1 > self.max_bytes:
            # Over the byte budget: the open batch goes out and this operation opens the next one.
            # (With max_operations == 1 no batch stays open, so this never coincides with a full count.)
            self._open = None
            self._append(operation, tag, now)
            return current
        batch = self._append(operation, tag, now)
        if len(batch.operations) >= self.max_operations:
            self._open = None
            return batch
        return None

    def _append(self, operation: Operation, tag: T, now: float) -> Batch[T]:
        current = self._open
        if current is None:
            current = self._open = Batch(opened_at=now)
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
