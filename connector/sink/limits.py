"""Per-workspace flow control: a token-bucket rate limiter and an AIMD concurrency limit.

Both keep their arithmetic pure (``reserve(now)``, ``on_success``/``on_backpressure``) and wrap it in a
small asyncio waiter, so one workspace's 429 storm only ever slows that workspace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` requests per second with bursts up to ``burst`` (pure; time is passed in)."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._last = now

    def reserve(self, now: float) -> float:
        """Take one token; return how long the caller must wait before using it (0 if available now)."""
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class RateLimiter:
    """Awaitable token bucket; reports waits through ``on_wait(seconds)``."""

    def __init__(
        self,
        rate: float,
        on_wait: Callable[[float], None] = lambda _s: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bucket = TokenBucket(rate, now=clock())
        self._clock = clock
        self._on_wait = on_wait

    async def acquire(self) -> None:
        """Wait for a token."""
        delay = self._bucket.reserve(self._clock())
        if delay > 0:
            self._on_wait(delay)
            await asyncio.sleep(delay)


class AimdLimit:
    """Adaptive in-flight limit: additive increase on success, multiplicative decrease on backpressure.

    As in Vector's adaptive request concurrency: the limit grows by about one per window of successful
    responses and is cut by ``decrease`` on 429, 5xx or timeouts (pure arithmetic).
    """

    __slots__ = ("decrease", "limit", "maximum", "minimum")

    def __init__(self, maximum: int, *, initial: int | None = None, minimum: int = 1, decrease: float = 0.7) -> None:
        self.maximum = float(maximum)
        self.minimum = float(minimum)
        self.decrease = decrease
        self.limit = float(initial if initial is not None else min(maximum, 4))

    def on_success(self) -> None:
        """A response came back without signs of overload."""
        self.limit = min(self.maximum, self.limit + 1.0 / self.limit)

    def on_backpressure(self) -> None:
        """The server pushed back (429/5xx/timeout)."""
        self.limit = max(self.minimum, self.limit * self.decrease)

    @property
    def permits(self) -> int:
        """Whole requests allowed in flight now."""
        return max(1, int(self.limit))


class ConcurrencyLimiter:
    """Awaitable AIMD limit on in-flight requests."""

    def __init__(self, maximum: int, on_change: Callable[[int, float], None] = lambda _n, _l: None) -> None:
        self.aimd = AimdLimit(maximum)
        self.in_flight = 0
        self._changed = asyncio.Condition()
        self._on_change = on_change

    async def acquire(self) -> None:
        """Wait until another request may start."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.aimd.permits)
            self.in_flight += 1
        self._on_change(self.in_flight, self.aimd.limit)

    async def release(self, *, backpressure: bool | None) -> None:
        """A request finished; adapt the limit (unless ``backpressure`` is None: nothing was sent)."""
        async with self._changed:
            self.in_flight -= 1
            if backpressure:
                self.aimd.on_backpressure()
            elif backpressure is False:
                self.aimd.on_success()
            self._changed.notify_all()
        self._on_change(self.in_flight, self.aimd.limit)
