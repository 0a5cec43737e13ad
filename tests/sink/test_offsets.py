"""The committed offset is the highest contiguous resolved record + 1, whatever the completion order."""

from __future__ import annotations

import pytest

from connector.kafka import Partition
from connector.sink.offsets import OffsetTracker, PartitionOffsets

P = Partition("events", 0)


@pytest.mark.parametrize(
    ("fetched", "resolved", "expected"),
    [
        ([0, 1, 2], [0, 1, 2], 3),
        ([0, 1, 2], [2, 1], None),  # the head is still in flight: nothing to commit
        ([0, 1, 2], [1, 0], 2),
        ([0, 1, 2, 3], [3, 2, 0, 1], 4),
        ([5, 9, 12], [5, 12], 6),  # gaps (compaction, transaction markers) are fine
        ([5, 9, 12], [12, 9, 5], 13),
    ],
)
def test_contiguous_prefix(fetched: list[int], resolved: list[int], expected: int | None) -> None:
    """Only the resolved prefix of fetched offsets becomes committable."""
    tracker = PartitionOffsets(generation=1)
    for offset in fetched:
        tracker.extend([offset])
    for offset in resolved:
        tracker.resolve(offset)
    assert tracker.committable == expected


def test_to_commit_reports_each_advance_once() -> None:
    """After a commit is marked, the same offset is not offered again."""
    offsets = OffsetTracker()
    t = offsets.tracker(P)
    t.extend([0])
    t.resolve(0)
    assert offsets.to_commit() == {P: 1}
    offsets.mark_committed({P: 1})
    assert offsets.to_commit() == {}


def test_revoked_partition_is_never_committed_again() -> None:
    """Completions that arrive after revocation do not make the old partition committable."""
    offsets = OffsetTracker()
    t = offsets.tracker(P)
    t.extend([0])
    generation = t.generation
    offsets.revoke([P])
    assert not offsets.is_current(P, generation)
    reassigned = offsets.tracker(P)
    assert reassigned.generation != generation
    assert offsets.to_commit() == {}


def test_in_flight_counts_unresolved_records() -> None:
    """In-flight is what is fetched but not yet in the resolved prefix."""
    offsets = OffsetTracker()
    t = offsets.tracker(P)
    for offset in range(5):
        t.extend([offset])
    t.resolve(0)
    t.resolve(2)
    assert offsets.in_flight() == 4
    assert offsets.in_flight([Partition("other", 0)]) == 0


@pytest.mark.parametrize(
    ("fetched", "resolved", "position", "expected"),
    [
        ([0, 1, 2], [0, 1, 2], 4, 4),  # a trailing transaction marker at 3: commit past it
        ([], [], 7, 7),  # only aborted records and markers fetched: still committable
        ([0, 1, 2], [0, 2], 5, 1),  # 1 is unresolved: never past it
        ([0, 1, 2], [1, 2], 5, None),
        ([5, 9], [5, 9], 3, 10),  # never backwards (a position behind what was resolved)
    ],
)
def test_catch_up_commits_the_position_only_when_nothing_is_in_flight(
    fetched: list[int], resolved: list[int], position: int, expected: int | None
) -> None:
    """With nothing in flight the consumer's position is committable, so lag reaches 0 past gaps."""
    tracker = PartitionOffsets(generation=1)
    tracker.extend(fetched)
    for offset in resolved:
        tracker.resolve(offset)
    tracker.catch_up(position)
    assert tracker.committable == expected
