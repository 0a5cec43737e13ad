"""Sampling of repeated warnings: the first few per key in each window are logged, the rest only counted.

A burst of 100 000 undecodable records must not write 100 000 warning lines (the log would bury everything
else and cost more than the records), yet an operator must still learn how many there were. So, per key
(a dead-letter reason) and per window of ``window_seconds``:

- the first ``burst`` events are admitted: the caller logs them in full;
- later ones are counted, not logged;
- ``summary``, called by the owner every window and at shutdown, returns the counts suppressed since the
  previous summary, per key, each event exactly once.

Pure: the caller passes the time in (``time.monotonic()``), so tests drive it without clocks or sleeps.
Metrics are not sampled — the caller counts every event there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    """Events counted but not logged over the last ``seconds``, per key (keys in sorted order)."""

    seconds: float
    suppressed: dict[str, int]


class LogSampler:
    """Admits the first ``burst`` events per key per window; counts the rest for a periodic summary."""

    __slots__ = ("_admitted", "_burst", "_last_summary", "_suppressed", "_window_seconds", "_window_start")

    def __init__(self, burst: int, window_seconds: float, now: float) -> None:
        if burst < 0 or window_seconds <= 0:
            raise ValueError("burst must be >= 0 and window_seconds > 0")
        self._burst = burst
        self._window_seconds = window_seconds
        self._window_start = now  # of the burst allowance
        self._last_summary = now
        self._admitted: Counter[str] = Counter()
        self._suppressed: Counter[str] = Counter()

    @property
    def window_seconds(self) -> float:
        """Length of a window (the period of the summary)."""
        return self._window_seconds

    def admit(self, key: str, now: float) -> bool:
        """Whether to log this event in full; False means it was counted for the next summary instead."""
        if now - self._window_start >= self._window_seconds:
            self._admitted.clear()
            self._window_start = now
        if self._admitted[key] < self._burst:
            self._admitted[key] += 1
            return True
        self._suppressed[key] += 1
        return False

    def summary(self, now: float) -> Summary | None:
        """The events suppressed since the previous summary (each reported exactly once); None if none.

        The caller calls it every ``window_seconds`` and once at shutdown.
        """
        seconds, self._last_summary = now - self._last_summary, now
        if not self._suppressed:
            return None
        counts = dict(sorted(self._suppressed.items()))
        self._suppressed.clear()
        return Summary(seconds, counts)
