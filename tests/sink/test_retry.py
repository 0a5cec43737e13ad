"""``with_retries``, the one retry loop, and ``retry_cause``, the one retry label: no real waits.

Time is injected: ``Sleeps`` records every wait the loop asks for and returns at once, and the policy's
jitter comes from a seeded ``random.Random``, so each expected delay is computed, not timed.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from connector.errors import AuthError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from connector.metrics import Metrics, retry_cause
from connector.sink.retry import Retry, RetryPolicy, retry_transient, with_retries

POLICY = RetryPolicy(initial_seconds=1.0, max_seconds=8.0, retry_after_cap_seconds=60.0)
SEED = 7


class Sleeps:
    """A ``sleep`` that records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Flaky:
    """An attempt that raises ``failures`` in turn, then returns "done"; counts its calls."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def transient(status: int | None, retry_after: float | None = None) -> TransientDeliveryError:
    """A 408/429/5xx (or network, ``None``) failure as the client raises it."""
    return TransientDeliveryError(f"answered {status}", status=status, retry_after=retry_after)


async def test_retried_until_success_with_the_policys_backoff() -> None:
    """Three 503s then a success: three waits of the policy's backoff for failures 1, 2, 3, each counted
    as 5xx and reported to ``on_retry`` with its number; the attempt's value is returned."""
    call, sleeps = Flaky(transient(503), transient(503), transient(503)), Sleeps()
    counted: list[str] = []
    reported: list[tuple[int, str, float]] = []

    result = await with_retries(
        call,
        TransientDeliveryError,
        POLICY,
        classify=retry_transient,
        count=counted.append,
        on_retry=lambda n, exc, delay: reported.append((n, str(exc), delay)),
        sleep=sleeps,
        rng=random.Random(SEED),
    )

    expected_rng = random.Random(SEED)
    expected = [POLICY.delay(n, None, expected_rng) for n in (1, 2, 3)]
    assert result == "done"
    assert call.calls == 4
    assert sleeps.waits == expected
    assert counted == ["5xx"] * 3
    assert reported == [(n, "answered 503", delay) for n, delay in zip((1, 2, 3), expected, strict=True)]


async def test_retry_after_is_honoured_and_capped() -> None:
    """A 429's Retry-After is waited out (above the tiny backoff); a huge one is cut to the policy's cap."""
    policy = RetryPolicy(initial_seconds=0.001, max_seconds=0.001, retry_after_cap_seconds=60.0)
    call, sleeps = Flaky(transient(429, 3.0), transient(429, 86_400.0)), Sleeps()
    counted: list[str] = []

    await with_retries(
        call, TransientDeliveryError, policy, classify=retry_transient, count=counted.append, sleep=sleeps
    )

    assert sleeps.waits == [3.0, 60.0]
    assert counted == ["429", "429"]


@pytest.mark.parametrize(
    "failure",
    [
        PermanentDeliveryError("answered 400", status=400),
        AuthError("answered 401", status=401),
        ValueError("a bug"),
    ],
)
async def test_failures_outside_retry_on_are_raised_at_once(failure: Exception) -> None:
    """Only the ``retry_on`` type is retried: a 400, a 401 or a bug is raised after one call, no wait."""
    call, sleeps = Flaky(failure), Sleeps()
    counted: list[str] = []
    with pytest.raises(type(failure)) as raised:
        await with_retries(
            call, TransientDeliveryError, POLICY, classify=retry_transient, count=counted.append, sleep=sleeps
        )
    assert raised.value is failure
    assert (call.calls, sleeps.waits, counted) == (1, [], [])


async def test_a_failure_classified_permanent_is_raised_without_retrying() -> None:
    """A 503 is retried; the 401 that follows is classified permanent (None) and raised as it is."""
    rejected = AuthError("answered 401", status=401)
    call, sleeps = Flaky(transient(503), rejected), Sleeps()

    def classify(exc: DeliveryError) -> Retry | None:
        return None if isinstance(exc, AuthError) else Retry()

    with pytest.raises(AuthError) as raised:
        await with_retries(call, DeliveryError, POLICY, classify=classify, sleep=sleeps, rng=random.Random(SEED))
    assert raised.value is rejected
    assert call.calls == 2
    assert len(sleeps.waits) == 1


async def test_max_attempts_raises_the_last_failure_without_a_final_wait() -> None:
    """Three attempts at most: the third failure is raised, after two waits (none after the last)."""
    last = transient(None)
    call, sleeps = Flaky(transient(None), transient(None), last, transient(None)), Sleeps()
    with pytest.raises(TransientDeliveryError) as raised:
        await with_retries(call, TransientDeliveryError, POLICY, max_attempts=3, sleep=sleeps)
    assert raised.value is last
    assert call.calls == 3
    assert len(sleeps.waits) == 2


async def test_a_fixed_delay_replaces_the_backoff_and_no_cause_is_not_counted() -> None:
    """``Retry(delay=…)`` (a re-probe period) is waited as it is, every time; without a cause nothing is counted."""
    call, sleeps = Flaky(transient(503), transient(503)), Sleeps()
    counted: list[str] = []
    await with_retries(
        call,
        TransientDeliveryError,
        POLICY,
        classify=lambda _exc: Retry(delay=0.25),
        count=counted.append,
        sleep=sleeps,
    )
    assert sleeps.waits == [0.25, 0.25]
    assert counted == []


async def test_cancellation_stops_it_while_waiting() -> None:
    """Cancelled during its wait, the loop ends with CancelledError and never calls the attempt again."""
    waiting = asyncio.Event()

    async def forever(_seconds: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    call = Flaky(transient(503), transient(503))
    task = asyncio.create_task(with_retries(call, TransientDeliveryError, POLICY, sleep=forever))
    await asyncio.wait_for(waiting.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.calls == 1


async def test_cancellation_during_an_attempt_is_never_classified() -> None:
    """Even with ``retry_on=Exception``, cancelling a running attempt ends the loop: it is not a failure."""
    started = asyncio.Event()
    classified: list[Exception] = []

    async def hangs() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    def classify(exc: Exception) -> Retry:
        classified.append(exc)
        return Retry(delay=0.0)

    task = asyncio.create_task(with_retries(hangs, Exception, POLICY, classify=classify))
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert classified == []


@pytest.mark.parametrize(
    ("status", "cause"),
    [(None, "network"), (429, "429"), (408, "4xx"), (500, "5xx"), (503, "5xx"), (504, "5xx")],
)
def test_retry_cause_is_the_status_class_with_429_apart(status: int | None, cause: str) -> None:
    """The ``cause`` label of connector_retries_total: rate limiting (429) is told apart from other 4xx."""
    assert retry_cause(status) == cause
    assert retry_transient(transient(status)).cause == cause


async def test_retries_are_counted_on_connector_retries_total_by_cause() -> None:
    """Wired as the transactional sender wires it: one sample per cause, under the workspace."""
    metrics = Metrics()
    call = Flaky(transient(429, 0.0), transient(None), transient(502), transient(502))

    def count(cause: str) -> None:
        metrics.retries.labels("acme", cause).inc()

    await with_retries(call, TransientDeliveryError, POLICY, classify=retry_transient, count=count, sleep=Sleeps())

    def sample(cause: str) -> float | None:
        return metrics.registry.get_sample_value("connector_retries_total", {"workspace": "acme", "cause": cause})

    assert (sample("429"), sample("network"), sample("5xx")) == (1.0, 1.0, 2.0)


async def test_real_sleep_is_the_default() -> None:
    """Without an injected ``sleep`` the loop still waits the (here zero) backoff and retries."""
    call = Flaky(transient(503))
    no_wait = RetryPolicy(initial_seconds=0.0, max_seconds=0.0, retry_after_cap_seconds=0.0)
    assert await with_retries(call, TransientDeliveryError, no_wait) == "done"
    assert call.calls == 2
