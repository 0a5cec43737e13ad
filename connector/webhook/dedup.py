"""A bounded set of recently produced webhook ``event_id``s (pure: time is passed in).

Customer.io delivers at least once; a retry of an event that already reached Kafka is answered 2xx
without producing it again. An id is remembered only *after* the broker acknowledged its record, for
``window_seconds``, and at most ``max_entries`` ids are kept (the oldest are forgotten first). The set
lives in memory: after a restart, or beyond the window, a retry is produced again, so consumers that
need exactly-once still de-duplicate on ``messageId``.
"""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    """Ids seen within the last ``window_seconds``, at most ``max_entries`` of them."""

    __slots__ = ("_expiry", "max_entries", "window_seconds")

    def __init__(self, window_seconds: float, max_entries: int) -> None:
        self.window_seconds = window_seconds
        self.max_entries = max_entries
        # id → expiry time, in insertion order. With a constant window and a clock that does not go
        # backwards, insertion order is expiry order, so expired ids are always at the front.
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def contains(self, event_id: str, now: float) -> bool:
        """Whether ``event_id`` was added less than ``window_seconds`` before ``now``."""
        expiry = self._expiry.get(event_id)
        return expiry is not None and now < expiry

    def add(self, event_id: str, now: float) -> None:
        """Remember ``event_id`` until ``now + window_seconds``; forget expired and surplus ids."""
        if self.window_seconds <= 0 or self.max_entries <= 0:
            return
        self._expiry.pop(event_id, None)
        self._expiry[event_id] = now + self.window_seconds
        self._evict(now)

    def _evict(self, now: float) -> None:
        entries = self._expiry
        while entries:
            oldest, expiry = next(iter(entries.items()))
            if expiry > now and len(entries) <= self.max_entries:
                break
            del entries[oldest]
