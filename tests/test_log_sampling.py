"""The dead-letter log sampler: the first few per reason in each window, then one summary with the rest."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.log_sampling import LogSampler, Summary


def test_the_first_events_of_a_reason_are_logged_then_counted() -> None:
    sampler = LogSampler(burst=3, window_seconds=60.0, now=0.0)
    admitted = [sampler.admit("not_json", now=1.0) for _ in range(1000)]
    assert admitted[:3] == [True, True, True]
    assert not any(admitted[3:])
    assert sampler.summary(now=60.0) == Summary(60.0, {"not_json": 997})


def test_each_reason_has_its_own_allowance() -> None:
    sampler = LogSampler(burst=2, window_seconds=60.0, now=0.0)
    for _ in range(5):
        sampler.admit("not_json", now=1.0)
    assert sampler.admit("rejected", now=2.0)
    assert sampler.admit("rejected", now=2.0)
    assert not sampler.admit("rejected", now=2.0)
    assert sampler.summary(now=60.0) == Summary(60.0, {"not_json": 3, "rejected": 1})


def test_a_new_window_logs_the_first_events_again() -> None:
    """A burst an hour later is news: its first events are logged, not folded into a summary."""
    sampler = LogSampler(burst=1, window_seconds=60.0, now=0.0)
    assert sampler.admit("not_json", now=0.0)
    assert not sampler.admit("not_json", now=59.0)
    assert sampler.admit("not_json", now=3600.0)
    assert not sampler.admit("not_json", now=3600.5)


def test_a_summary_reports_each_suppressed_event_once_and_nothing_when_quiet() -> None:
    sampler = LogSampler(burst=0, window_seconds=60.0, now=0.0)
    sampler.admit("too_large", now=10.0)
    assert sampler.summary(now=60.0) == Summary(60.0, {"too_large": 1})
    assert sampler.summary(now=120.0) is None


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="window_seconds"):
        LogSampler(burst=1, window_seconds=0.0, now=0.0)


@given(
    burst=st.integers(0, 5),
    events=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 30)), max_size=200),
    summaries_every=st.floats(1, 100),
)
def test_every_event_is_either_logged_or_in_exactly_one_summary(
    burst: int, events: list[tuple[str, float]], summaries_every: float
) -> None:
    sampler = LogSampler(burst=burst, window_seconds=10.0, now=0.0)
    now, next_summary = 0.0, summaries_every
    logged: Counter[str] = Counter()
    summarized: Counter[str] = Counter()
    logged_in_window: Counter[tuple[str, int]] = Counter()  # (reason, 10 s slot)
    for key, step in events:
        now += step
        if now >= next_summary:
            summary = sampler.summary(now)
            if summary is not None:
                summarized.update(summary.suppressed)
            next_summary = now + summaries_every
        if sampler.admit(key, now):
            logged[key] += 1
            logged_in_window[key, int(now // 10.0)] += 1
    final = sampler.summary(now)
    if final is not None:
        summarized.update(final.suppressed)
    assert logged + summarized == Counter(key for key, _ in events)
    # Windows last at least 10 s, so a 10 s slot overlaps at most two of them: at most two allowances.
    assert all(count <= 2 * burst for count in logged_in_window.values())
