"""Backoff, token bucket and AIMD arithmetic (pure)."""

from __future__ import annotations

import random

import pytest

from connector.sink.limits import AimdLimit, TokenBucket
from connector.sink.retry import RetryPolicy


@pytest.mark.parametrize("attempt", [1, 2, 5, 10, 40])
def test_backoff_is_full_jitter_within_bounds(attempt: int) -> None:
    """Delays are uniform in [0, min(max, initial·2^(n-1))]."""
    policy = RetryPolicy(initial_seconds=0.1, max_seconds=5.0)
    rng = random.Random(1)
    delays = [policy.delay(attempt, rng=rng) for _ in range(200)]
    ceiling = min(5.0, 0.1 * 2 ** (attempt - 1))
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # jitter actually spreads


def test_retry_after_is_a_floor_but_capped() -> None:
    """Retry-After is honoured, but a huge value is capped."""
    policy = RetryPolicy(initial_seconds=0.1, max_seconds=1.0, retry_after_cap_seconds=10.0)
    assert policy.delay(1, retry_after=3.0) >= 3.0
    assert policy.delay(1, retry_after=86_400) == 10.0


def test_token_bucket_spaces_requests_at_the_rate() -> None:
    """After the burst, each request waits 1/rate."""
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert bucket.reserve(0.0) == 0
    assert bucket.reserve(0.0) == 0
    assert bucket.reserve(0.0) == pytest.approx(0.1)
    assert bucket.reserve(0.0) == pytest.approx(0.2)
    assert bucket.reserve(1.0) == 0  # refilled


def test_aimd_grows_on_success_and_halves_on_backpressure() -> None:
    """Additive increase, multiplicative decrease, within [1, max]."""
    limit = AimdLimit(maximum=16, initial=4, decrease=0.5)
    for _ in range(100):
        limit.on_success()
    assert 8 < limit.limit <= 16
    before = limit.limit
    limit.on_backpressure()
    assert limit.limit == pytest.approx(before * 0.5)
    for _ in range(50):
        limit.on_backpressure()
    assert limit.permits == 1
