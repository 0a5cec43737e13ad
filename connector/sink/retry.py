"""Retries: the policy as a value (full-jitter exponential backoff, Retry-After honoured but capped; pure),
and ``with_retries``, the one retry loop of the service.

There is no attempt limit by default on purpose: a transient failure is backpressure, not loss. The engine
keeps the batch, pauses the partitions feeding the workspace, and keeps trying at most every ``max_seconds``.

Every retrying call goes through ``with_retries`` (transactional sends, their held jobs, dead-letter writes,
start-up region resolution) except the delivery lanes, whose loop interleaves AIMD, credential probes and
bisection; they use the same ``RetryPolicy`` and the same ``retry_cause`` label. (The OAuth token fetch in
``kafka_auth.py`` is outside the sink and has its own bounded loop: a few attempts, then a one-line error
naming the setting, because a Kafka client waiting on a token has no backpressure to apply.) Invariants of the loop:
- only exceptions of the ``retry_on`` type are classified; anything else, and a classification of None
  (permanent), is re-raised as it is, after exactly the attempts made so far;
- cancellation is never classified (``CancelledError`` is not an ``Exception``): it stops the loop in the
  attempt or in the wait;
- time is injected (``sleep``, ``rng``), so the loop is tested without real waits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from connector.config import SinkSettings
from connector.errors import TransientDeliveryError
from connector.metrics import retry_cause

T = TypeVar("T")
E = TypeVar("E", bound=Exception)

Sleep = Callable[[float], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff bounds in seconds."""

    initial_seconds: float = 0.2
    max_seconds: float = 30.0
    retry_after_cap_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: SinkSettings) -> RetryPolicy:
        """The policy configured for the sink."""
        return cls(settings.retry_initial_seconds, settings.retry_max_seconds, settings.retry_after_cap_seconds)

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = first retry).

        Full jitter (uniform in [0, min(max, initial·2^(attempt-1))]) spreads replicas' retries apart; a
        server's Retry-After is a floor, capped so a bogus value cannot stall the pipeline for hours.
        """
        ceiling = min(self.max_seconds, self.initial_seconds * (2 ** min(attempt - 1, 30)))
        jittered = (rng or random).uniform(0.0, ceiling)
        if retry_after is not None:
            return max(jittered, min(retry_after, self.retry_after_cap_seconds))
        return jittered


@dataclass(frozen=True, slots=True)
class Retry:
    """A failed attempt worth retrying, and how.

    ``cause`` is the ``connector_retries_total`` label to count it under (None: not counted);
    ``retry_after`` the server's Retry-After, a floor on the policy's backoff (capped by the policy);
    ``delay`` a fixed wait instead of the backoff (a credential re-probe period, say).
    """

    cause: str | None = None
    retry_after: float | None = None
    delay: float | None = None


def retry_transient(exc: TransientDeliveryError) -> Retry:
    """A Customer.io 408/429/5xx or network failure: back off (Retry-After honoured), counted by cause."""
    return Retry(retry_cause(exc.status), exc.retry_after)


def _backoff(_exc: Exception) -> Retry:
    return Retry()


async def with_retries(
    call: Callable[[], Awaitable[T]],
    retry_on: type[E],
    policy: RetryPolicy,
    *,
    classify: Callable[[E], Retry | None] = _backoff,
    count: Callable[[str], None] | None = None,
    on_retry: Callable[[int, E, float], None] | None = None,
    max_attempts: int | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """``await call()`` until it returns, retrying the ``retry_on`` failures that ``classify`` says to retry.

    After failure number n (n = 1, 2, …) classified ``Retry``: ``count(cause)`` when it has a cause, then
    ``on_retry(n, exc, delay)`` (the caller logs there), then ``sleep(delay)`` — ``Retry.delay`` if given,
    else ``policy.delay(n, retry_after, rng)``. A failure classified None (permanent), any other exception,
    and failure number ``max_attempts`` (when given) are re-raised. Cancel the task to stop.
    """
    failures = 0
    while True:
        try:
            return await call()
        except retry_on as exc:
            failures += 1
            decision = classify(exc)
            if decision is None or (max_attempts is not None and failures >= max_attempts):
                raise
            wait = decision.delay if decision.delay is not None else policy.delay(failures, decision.retry_after, rng)
            if count is not None and decision.cause is not None:
                count(decision.cause)
            if on_retry is not None:
                on_retry(failures, exc, wait)
            await sleep(wait)
