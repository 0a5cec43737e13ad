"""TransactionalWorkers, the sink's transactional sends, against the fake App API over real sockets.

The runner hands each send over as a job (``submit``) and seals the record's ticket; the workers resolve the
ticket exactly once: released after the send, dead-lettered when the App API rejects it, held (not
resolved) while the App key is rejected. Every wait is on a condition, never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest

from connector.cio.client import CustomerIOClient
from connector.cio.region import ResolvedWorkspace, resolve_workspace
from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import Partition
from connector.metrics import Metrics
from connector.sink.mapping.model import Message
from connector.sink.mapping.transactional import build_send_email
from connector.sink.retry import RetryPolicy
from connector.sink.tickets import DeadLetterReason, Ticket
from connector.sink.transactional_sender import TransactionalSender, TransactionalWorkers
from tests.sink.memory_sink import FAKE, Resolved, record, sink_settings, wait_for

NO_BACKOFF = RetryPolicy(initial_seconds=0.0, max_seconds=0.0, retry_after_cap_seconds=0.0)
REPROBE_SECONDS = 0.01


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    async with FakeCustomerIO([FAKE]) as server:
        yield server


@contextlib.asynccontextmanager
async def working(fake: FakeCustomerIO) -> AsyncIterator[tuple[TransactionalWorkers, ResolvedWorkspace]]:
    """Running workers sending to the fake's ``demo`` workspace (pinned to the EU listener)."""
    settings = sink_settings(fake)
    metrics = Metrics()
    async with CustomerIOClient(10.0, metrics) as client:
        ws = await resolve_workspace(client, settings.endpoints, settings.workspaces[0])
        sender = TransactionalSender(client, NO_BACKOFF, 1000.0, metrics)
        workers = TransactionalWorkers(sender, NO_BACKOFF, REPROBE_SECONDS)
        task = asyncio.create_task(workers.run())
        try:
            yield workers, ws
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def hand_over(workers: TransactionalWorkers, ws: ResolvedWorkspace, body: bytes, resolved: Resolved) -> Ticket:
    """What the runner does for one transactional record: submit its send, then seal its ticket."""
    ticket = Ticket(record(0, b"{}", topic="txn"), Partition("txn", 0), 1, resolved)
    workers.submit(ws, body, ticket)
    ticket.seal()
    return ticket


def email_body() -> bytes:
    """A send the fake App API accepts."""
    message: Message = {
        "type": "track",
        "userId": "u-1",
        "event": "Transactional Email Requested",
        "properties": {"transactional_message_id": 7, "to": "ana@example.com"},
    }
    body = build_send_email(message)
    assert isinstance(body, bytes)
    return body


def app_answers(fake: FakeCustomerIO, status: int) -> int:
    """Requests the fake answered with ``status`` for ``demo`` (the workspace lookup included)."""
    counts: dict[str, int] = fake.state.stats()["requests"].get(FAKE.name, {}).get("eu", {})
    return counts.get(str(status), 0)


async def test_a_sent_job_releases_its_ticket(fake: FakeCustomerIO) -> None:
    """The email reaches the App API once and the record resolves as delivered to the workspace."""
    resolved = Resolved()
    async with working(fake) as (workers, ws):
        ticket = hand_over(workers, ws, email_body(), resolved)
        await wait_for(lambda: resolved.tickets == [ticket], "the ticket resolved")
    assert len(fake.state.emails) == 1
    assert (ticket.outcome, ticket.workspaces, workers.pending) == ("delivered", (ws.name,), 0)


async def test_a_send_the_app_api_rejects_is_dead_lettered_with_its_message(fake: FakeCustomerIO) -> None:
    """A 400 is not retried: the ticket resolves once, carrying the App API's message and status."""
    resolved = Resolved()
    body = orjson.dumps({"to": "ana@example.com", "identifiers": {"id": "u-1"}})
    async with working(fake) as (workers, ws):
        ticket = hand_over(workers, ws, body, resolved)
        await wait_for(lambda: resolved.tickets == [ticket], "the ticket resolved")
    reason = ticket.dead_letter
    assert isinstance(reason, DeadLetterReason)
    assert (reason.reason, reason.workspace, reason.status) == ("rejected", ws.name, 400)
    assert reason.message.startswith("App API rejected the send: ")
    assert "transactional_message_id" in reason.message
    assert app_answers(fake, 400) == 1
    assert fake.state.emails == []


async def test_a_rejected_app_key_holds_the_job_until_the_key_works(fake: FakeCustomerIO) -> None:
    """While the App key answers 401 the send is re-probed and its record stays unresolved (uncommitted);
    once the key works the email is sent once and the record resolves, not dead-lettered."""
    resolved = Resolved()
    async with working(fake) as (workers, ws):
        fake.state.revoke(FAKE.name)
        ticket = hand_over(workers, ws, email_body(), resolved)
        await wait_for(lambda: app_answers(fake, 401) >= 3, "the send re-probed twice")
        assert resolved.tickets == []
        assert workers.unfinished == 1  # what the runner's shutdown waits for
        fake.state.restore(FAKE.name)
        await wait_for(lambda: resolved.tickets == [ticket], "the ticket resolved")
        assert workers.unfinished == 0
    assert ticket.dead_letter is None
    assert len(fake.state.emails) == 1
