"""The bounded TTL set of produced event ids (pure, clock passed in)."""

from __future__ import annotations

from connector.webhook.dedup import RecentIds


def test_remembers_within_the_window_only() -> None:
    """An id is known until window_seconds after it was added, then forgotten."""
    ids = RecentIds(window_seconds=60, max_entries=10)
    ids.add("a", now=100)
    assert ids.contains("a", now=100)
    assert ids.contains("a", now=159.9)
    assert not ids.contains("a", now=160)
    assert not ids.contains("b", now=100)


def test_expired_ids_are_evicted_on_add() -> None:
    """Adding after the window frees the expired entries (memory stays bounded by traffic in the window)."""
    ids = RecentIds(window_seconds=10, max_entries=100)
    for i in range(5):
        ids.add(str(i), now=i)
    ids.add("late", now=13.5)
    assert len(ids) == 2
    assert ids.contains("4", now=13.5)
    assert ids.contains("late", now=13.5)


def test_bounded_by_max_entries_oldest_first() -> None:
    """Beyond max_entries the oldest ids are forgotten first."""
    ids = RecentIds(window_seconds=3600, max_entries=3)
    for i, event_id in enumerate("abcde"):
        ids.add(event_id, now=i)
    assert len(ids) == 3
    assert [ids.contains(e, now=5) for e in "abcde"] == [False, False, True, True, True]


def test_re_adding_refreshes_position_and_expiry() -> None:
    """Adding a known id again moves it to the back and extends its window."""
    ids = RecentIds(window_seconds=10, max_entries=2)
    ids.add("a", now=0)
    ids.add("b", now=1)
    ids.add("a", now=2)
    ids.add("c", now=3)  # evicts b, the oldest, not a
    assert ids.contains("a", now=11)
    assert not ids.contains("b", now=3)
    assert ids.contains("c", now=3)


def test_disabled_by_zero_window_or_size() -> None:
    """A zero window or zero size remembers nothing (every retry is produced again)."""
    for ids in (RecentIds(window_seconds=0, max_entries=10), RecentIds(window_seconds=10, max_entries=0)):
        ids.add("a", now=0)
        assert not ids.contains("a", now=0)
        assert len(ids) == 0


def test_clock_going_backwards_does_not_break_bounds() -> None:
    """A wall clock stepping back never lets the set grow past max_entries."""
    ids = RecentIds(window_seconds=10, max_entries=3)
    for i, now in enumerate([100, 50, 101, 40, 102, 30]):
        ids.add(str(i), now=now)
        assert len(ids) <= 3
