"""Test doubles of the webhook tests: an in-memory producer, a settable clock, test settings."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp.test_utils import TestClient

from connector.config import Secret, WebhookSettings
from connector.errors import BrokerUnavailableError, RecordTooLargeError
from connector.kafka import Record3
from tests.webhook.cio_payloads import SIGNING_KEY, TIMESTAMP


class FakeProducer:
    """Records what is produced; ``fail``, ``gate`` and ``too_large_above`` script the broker's behaviour."""

    def __init__(self) -> None:
        self.started = True
        self.records: list[tuple[str, bytes | None, bytes, tuple[tuple[str, bytes], ...]]] = []
        self.calls = 0  # records handed to the producer
        self.batches: list[int] = []  # how many records each send_batch carried
        self.fail: BaseException | None = None
        self.gate: asyncio.Event | None = None
        self.too_large_above: int | None = None  # a value longer than this is refused alone, as Producer does

    async def send_batch(self, topic: str, records: Sequence[Record3]) -> list[BrokerUnavailableError | None]:
        """Wait for the gate (if any), then fail the whole batch, or record each record (or refuse it)."""
        self.calls += len(records)
        self.batches.append(len(records))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        outcomes: list[BrokerUnavailableError | None] = []
        for key, value, headers in records:
            if self.too_large_above is not None and len(value) > self.too_large_above:
                outcomes.append(RecordTooLargeError(f"record larger than {self.too_large_above} bytes"))
            else:
                self.records.append((topic, key, value, tuple(headers)))
                outcomes.append(None)
        return outcomes


def webhook_settings(**overrides: Any) -> WebhookSettings:
    """Listener settings for tests: one signing key, short produce timeout."""
    base = WebhookSettings(signing_keys=(Secret(SIGNING_KEY),), produce_timeout_seconds=0.2, port=0, host="127.0.0.1")
    return dataclasses.replace(base, **overrides)


class Clock:
    """A settable wall clock (starts at the test payloads' timestamp)."""

    def __init__(self, now: float = TIMESTAMP + 1) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds (polled), failing after ``timeout`` seconds: a wait on an event the
    test can observe, never a guess at how long something takes."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the conditions are counters of fakes without events
            await asyncio.sleep(0.005)
