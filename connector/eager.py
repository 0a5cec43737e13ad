"""Start a coroutine now, in the caller's step, instead of at the event loop's next turn.

``asyncio.create_task`` (before Python 3.12's eager tasks) only schedules a coroutine: its first line runs
after every callback already queued. ``start_eagerly`` runs it at once, up to its first real wait, and
hands the rest to a task, so what the coroutine does before waiting (queue records in a producer) is done
when the call returns. After that first wait the task behaves as ``create_task`` would have: the
coroutine sees the awaited future's result, exception or cancellation, and cancelling the task cancels
what the coroutine awaits (or is thrown into it when that has finished already).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def start_eagerly(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
    """Run ``coro`` until it first waits; None if it finished, else the task running the rest.

    Raises what ``coro`` raises before its first wait.
    """
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_carry_on(coro, waiting), name=name)


async def _carry_on(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Drive ``coro`` from a wait on ``waiting`` (what it yielded: a future, or None for a bare yield)."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            elif asyncio.isfuture(waiting):
                waiting._asyncio_future_blocking = False  # as a task does with a yielded future
                await waiting  # the coroutine reads the outcome itself when resumed
            else:
                waiting = coro.throw(RuntimeError(f"start_eagerly: coroutine yielded {waiting!r}"))
                continue
        except asyncio.CancelledError as exc:
            if waiting is None or not waiting.cancelled():  # this task was cancelled, not what it awaited
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
                continue
        except GeneratorExit:  # this task is being destroyed (its loop closed while it waited): close coro too
            coro.close()
            raise
        except BaseException:  # noqa: BLE001, S110 - the future's exception: the coroutine gets it from result()
            pass
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
