"""Batches close on count, byte budget and linger, and their body is the exact v2 batch JSON."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from connector.sink.batcher import Batcher
from connector.sink.mapping.model import Operation


def op(n: int, size: int = 0) -> Operation:
    body = orjson.dumps({"type": "person", "action": "event", "identifiers": {"id": str(n)}, "name": "x" * size})
    return Operation(body, f"id:{n}", "person.event")


def test_flushes_at_count() -> None:
    """The batch is handed out when it reaches max_operations."""
    batcher: Batcher[int] = Batcher(max_operations=3, max_bytes=100_000, linger_seconds=1)
    assert batcher.add(op(1), 1, 0.0) is None
    assert batcher.add(op(2), 2, 0.0) is None
    full = batcher.add(op(3), 3, 0.0)
    assert full is not None
    assert full.tags == [1, 2, 3]


def test_body_is_valid_batch_json_of_exact_size() -> None:
    """The body parses as {"batch": [...]} and its length is what the byte budget counted."""
    batcher: Batcher[int] = Batcher(max_operations=2, max_bytes=100_000, linger_seconds=1)
    batcher.add(op(1), 1, 0.0)
    batch = batcher.add(op(2), 2, 0.0)
    assert batch is not None
    body = batch.body()
    assert orjson.loads(body)["batch"][1]["identifiers"] == {"id": "2"}
    assert len(body) == batch.body_bytes


def test_linger_closes_a_partial_batch() -> None:
    """A partial batch is due only after linger_seconds."""
    batcher: Batcher[int] = Batcher(max_operations=100, max_bytes=100_000, linger_seconds=0.5)
    batcher.add(op(1), 1, 10.0)
    assert batcher.due(10.4) is None
    due = batcher.due(10.5)
    assert due is not None
    assert len(due) == 1


@given(st.lists(st.integers(min_value=0, max_value=30_000), min_size=1, max_size=60))
def test_byte_budget_is_never_exceeded(sizes: list[int]) -> None:
    """No batch body is larger than max_bytes, and no operation is lost or reordered."""
    batcher: Batcher[int] = Batcher(max_operations=1000, max_bytes=100_000, linger_seconds=1)
    batches = []
    for i, size in enumerate(sizes):
        full = batcher.add(op(i, size), i, 0.0)
        if full is not None:
            batches.append(full)
    rest = batcher.flush()
    if rest is not None:
        batches.append(rest)
    assert [t for b in batches for t in b.tags] == list(range(len(sizes)))
    for batch in batches:
        assert len(batch.body()) == batch.body_bytes <= 100_000


def test_split_keeps_order_and_sizes() -> None:
    """Halves keep submission order and recompute their body size."""
    batcher: Batcher[int] = Batcher(max_operations=5, max_bytes=100_000, linger_seconds=1)
    batch = None
    for i in range(5):
        batch = batcher.add(op(i), i, 0.0) or batch
    assert batch is not None
    first, second = batch.split()
    assert first.tags == [0, 1]
    assert second.tags == [2, 3, 4]
    assert len(first.body()) == first.body_bytes
    assert len(second.body()) == second.body_bytes
