"""``start_eagerly``: the coroutine's first stretch runs in the caller's step; after its first wait it
behaves as a task would (results, exceptions, cancellation, a loop closed under it)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from connector.eager import start_eagerly


async def test_the_coroutine_runs_up_to_its_first_wait_before_the_call_returns() -> None:
    steps: list[str] = []
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def work() -> None:
        steps.append("queued")
        steps.append(await gate)

    task = start_eagerly(work(), "work")
    assert steps == ["queued"]  # create_task would not have started it yet
    assert task is not None
    gate.set_result("acknowledged")
    await task
    assert steps == ["queued", "acknowledged"]


async def test_a_coroutine_that_never_waits_is_finished_with_no_task() -> None:
    done: list[bool] = []

    async def work() -> None:
        done.append(True)

    assert start_eagerly(work(), "work") is None
    assert done == [True]


async def test_an_error_before_the_first_wait_is_raised_to_the_caller() -> None:
    async def work() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        start_eagerly(work(), "work")


async def test_the_awaited_future_s_exception_reaches_the_coroutine() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    caught: list[BaseException] = []

    async def work() -> None:
        try:
            await gate
        except LookupError as exc:
            caught.append(exc)
            raise

    task = start_eagerly(work(), "work")
    assert task is not None
    gate.set_exception(LookupError("refused"))
    with pytest.raises(LookupError, match="refused"):
        await task
    assert [str(exc) for exc in caught] == ["refused"]


async def test_later_waits_carry_on_in_the_task() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    second: asyncio.Future[int] = loop.create_future()
    seen: list[int] = []

    async def work() -> None:
        seen.append(await first)
        await asyncio.sleep(0)  # a bare yield
        seen.append(await second)

    task = start_eagerly(work(), "work")
    assert task is not None
    first.set_result(1)
    await asyncio.sleep(0)
    second.set_result(2)
    await task
    assert seen == [1, 2]


async def test_cancelling_the_task_cancels_the_wait_inside_the_coroutine() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[str] = []
    task = start_eagerly(_wait_for(gate, cleaned), "work")
    assert task is not None
    await asyncio.sleep(0)  # the task is waiting on the gate
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cancelled"]
    assert gate.cancelled()  # as a task cancels the future it awaits


async def test_cancelling_the_task_after_its_future_finished_still_cancels_the_coroutine() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[str] = []
    task = start_eagerly(_wait_for(gate, cleaned), "work")
    assert task is not None
    await asyncio.sleep(0)
    gate.set_result(None)  # the task's wake-up is queued ...
    task.cancel()  # ... and the cancellation arrives before it runs
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cancelled"]


def test_a_task_destroyed_while_waiting_closes_the_coroutine() -> None:
    """A loop closed with the task still waiting: the coroutine is closed too (its finally runs), no error."""
    closed: list[str] = []

    async def work() -> None:
        try:
            await asyncio.get_running_loop().create_future()  # never finished
        finally:
            closed.append("closed")

    async def main() -> None:
        start_eagerly(work(), "work")

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    gc.collect()
    assert closed == ["closed"]


async def _wait_for(gate: asyncio.Future[None], seen: list[str]) -> None:
    """Await ``gate``; note in ``seen`` whether it was cancelled there or went on."""
    try:
        await gate
    except asyncio.CancelledError:
        seen.append("cancelled")
        raise
    seen.append("went on")
