"""Which asyncio event loop runs the service: ``CONNECTOR_EVENT_LOOP`` = auto, asyncio or uvloop.

uvloop is optional (the ``[fast]`` extra) and never required: ``auto`` uses it when it is installed and
the standard loop otherwise; ``uvloop`` insists, and a missing uvloop is a configuration error (exit 2)
rather than a silent fallback. Measured on the sink and the webhook listener in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from connector.config.settings import EventLoopChoice
from connector.errors import ConfigError

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
T = TypeVar("T")


def loop_factory(choice: EventLoopChoice) -> LoopFactory | None:
    """The loop factory for ``choice`` (None: asyncio's default); ConfigError if uvloop is required but missing."""
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                "CONNECTOR_EVENT_LOOP", "uvloop is not installed (pip install 'cio-connector[fast]')"
            ) from None
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice) -> T:
    """``asyncio.run(main)`` on the chosen event loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
