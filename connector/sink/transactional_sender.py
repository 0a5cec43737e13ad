"""Transactional email, the sending half: ``/v1/send/email`` bodies (built by
``connector.sink.mapping.transactional.build_send_email``) → Customer.io's App API.

``TransactionalSender`` sends the body for a pinned workspace: its own App API rate limiter per
workspace, transient failures retried forever with the retry policy's backoff, and the returned
``delivery_id`` handed to an optional ``delivery_sink`` (to be produced to the delivery topic and later
joined with reporting webhooks).

``TransactionalWorkers`` are the sink's side of it: the runner hands each record's send over as a job
(its ticket held for the workspace) and the workers resolve every job's ticket exactly once — released
after the send, or dead-lettered when the App API rejects it. A rejected App key holds the job, re-tried
every ``auth_reprobe_seconds``, so its record stays uncommitted until the key is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from connector.cio.client import CustomerIOClient
from connector.cio.region import ResolvedWorkspace
from connector.errors import (
    AuthError,
    ConnectorError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.sink.limits import RateLimiter
from connector.sink.retry import Retry, RetryPolicy, Sleep, retry_transient, with_retries
from connector.sink.tickets import DeadLetterReason, Ticket

SEND_EMAIL_PATH = "/v1/send/email"
WORKERS = 4  # concurrent sends of the sink (each still waits for its workspace's App API rate limiter)

log = get_logger("sink.transactional")

DeliverySink = Callable[[str, bytes, bytes], Awaitable[None]]


class TransactionalSender:
    """Sends ``/v1/send/email`` bodies for pinned workspaces; one App API rate limiter per workspace."""

    def __init__(
        self,
        client: CustomerIOClient,
        policy: RetryPolicy,
        rate_per_second: float,
        metrics: Metrics,
        delivery_sink: DeliverySink | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """``rate_per_second`` is ``TransactionalSettings.rate_limit_per_second`` (App API, per workspace)."""
        self._client = client
        self._policy = policy
        self._rate = rate_per_second
        self._metrics = metrics
        self._delivery_sink = delivery_sink
        self._sleep = sleep
        self._limiters: dict[str, RateLimiter] = {}

    def _limiter(self, workspace: str) -> RateLimiter:
        limiter = self._limiters.get(workspace)
        if limiter is None:
            waits = self._metrics.rate_limit_waits.labels(workspace, "app")
            wait_seconds = self._metrics.rate_limit_wait_seconds.labels(workspace, "app")

            def on_wait(seconds: float) -> None:
                waits.inc()
                wait_seconds.inc(seconds)

            limiter = self._limiters[workspace] = RateLimiter(self._rate, on_wait)
        return limiter

    async def send(
        self, ws: ResolvedWorkspace, body: bytes, key: bytes | None, *, message_id: str | None = None
    ) -> str:
        """Send one email; return Customer.io's ``delivery_id``.

        Transient failures (408/429/5xx, network) are retried without limit, waiting the policy's backoff
        (Retry-After honoured, capped); cancel the task to stop. ``PermanentDeliveryError`` (400/404/422…,
        Customer.io's message in it) is for the caller to dead-letter; ``AuthError`` (401/403, a region
        redirect, or no App API key configured) means the workspace's App key must be fixed. Both are
        re-raised. After a success the delivery record — ``{"delivery_id", "workspace", "queued_at",
        "transactional_message_id", "messageId"?}`` — goes to ``delivery_sink(delivery_id, value, key)``;
        the key is the input record's key (the delivery id when it has none); a ``ConnectorError`` from the sink (broker unavailable) is logged, not raised, because the email
        is already queued and raising would invite a duplicate send. Returns "" if Customer.io's 2xx
        carried no delivery_id (the email is queued; nothing is reported).
        """
        counts = self._metrics.transactional_sends
        auth = ws.app_auth
        if auth is None:
            counts.labels(ws.name, "auth_failed").inc()
            raise AuthError(f"workspace {ws.name!r} has no App API key configured for transactional email")
        limiter = self._limiter(ws.name)
        attempts = 1

        async def post() -> Any:
            await limiter.acquire()
            return await self._client.post_app(
                ws.app_url, SEND_EMAIL_PATH, auth, body, labels=ws.labels, endpoint="send_email"
            )

        def count(cause: str) -> None:
            self._metrics.retries.labels(ws.name, cause).inc()

        def on_retry(failures: int, exc: TransientDeliveryError, delay: float) -> None:
            nonlocal attempts
            attempts = failures + 1
            log.warning(
                "Transactional send failed; retrying.",
                workspace=ws.name,
                attempt=failures,
                status=exc.status,
                delay_seconds=round(delay, 3),
                error=str(exc),
            )

        try:
            answer = await with_retries(
                post,
                TransientDeliveryError,
                self._policy,
                classify=retry_transient,
                count=count,
                on_retry=on_retry,
                sleep=self._sleep,
            )
        except AuthError as exc:
            counts.labels(ws.name, "auth_failed").inc()
            self._metrics.auth_failures.labels(ws.name, "app").inc()
            log.error("Transactional send: App API key rejected.", workspace=ws.name, error=str(exc))
            raise
        except PermanentDeliveryError as exc:
            counts.labels(ws.name, "rejected").inc()
            log.warning("Transactional send rejected.", workspace=ws.name, status=exc.status, error=str(exc))
            raise

        counts.labels(ws.name, "sent").inc()
        delivery_id = answer.get("delivery_id") if isinstance(answer, dict) else None
        if not isinstance(delivery_id, str) or not delivery_id:
            log.warning("Transactional send accepted without a delivery_id.", workspace=ws.name)
            return ""
        queued_at = answer.get("queued_at") if isinstance(answer, dict) else None
        template = _template_of(body)
        log.info(
            "Transactional email queued.",
            workspace=ws.name,
            delivery_id=delivery_id,
            transactional_message_id=template,
            attempts=attempts,
        )
        if self._delivery_sink is not None:
            record: dict[str, Any] = {
                "delivery_id": delivery_id,
                "workspace": ws.name,
                "queued_at": queued_at if isinstance(queued_at, int) and not isinstance(queued_at, bool) else None,
                "transactional_message_id": template,
            }
            if message_id is not None:
                record["messageId"] = message_id
            try:
                await self._delivery_sink(
                    delivery_id, orjson.dumps(record), key if key is not None else delivery_id.encode()
                )
            except ConnectorError as exc:
                log.error(
                    "Transactional delivery id not reported.",
                    workspace=ws.name,
                    delivery_id=delivery_id,
                    error=str(exc),
                )
        return delivery_id


@dataclass(frozen=True, slots=True)
class TransactionalJob:
    """One record's send, handed over by the runner; its ticket is held for ``destination``."""

    destination: ResolvedWorkspace
    body: bytes
    ticket: Ticket


class TransactionalWorkers:
    """Sends the jobs the runner hands over, ``workers`` at a time; resolves each job's ticket exactly once."""

    def __init__(
        self,
        sender: TransactionalSender,
        policy: RetryPolicy,
        auth_reprobe_seconds: float,
        *,
        workers: int = WORKERS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._sender = sender
        self._policy = policy
        self._auth_reprobe_seconds = auth_reprobe_seconds
        self._workers = workers
        self._sleep = sleep
        self._queue: asyncio.Queue[TransactionalJob] = asyncio.Queue()
        self._unfinished = 0

    def submit(self, destination: ResolvedWorkspace, body: bytes, ticket: Ticket) -> None:
        """Queue one send; the ticket is held until it is sent or rejected."""
        ticket.hold(destination.name)
        self._unfinished += 1
        self._queue.put_nowait(TransactionalJob(destination, body, ticket))

    @property
    def pending(self) -> int:
        """Jobs queued and not yet taken by a worker (they hold memory: the runner's budget counts them)."""
        return self._queue.qsize()

    @property
    def unfinished(self) -> int:
        """Jobs queued or being sent: 0 when no transactional send can still resolve a record."""
        return self._unfinished

    async def run(self) -> None:
        """Run the workers until cancelled; a worker that crashes (a bug) makes this raise."""
        tasks = [asyncio.create_task(self._work(), name="transactional") for _ in range(self._workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            await self._send(job)

    async def _send(self, job: TransactionalJob) -> None:
        workspace = job.destination.name

        def classify(exc: DeliveryError) -> Retry | None:
            if isinstance(exc, PermanentDeliveryError):
                return None  # dead-lettered below
            if isinstance(exc, AuthError):
                return Retry(delay=self._auth_reprobe_seconds)  # held until the App key is fixed
            return Retry(delay=self._policy.max_seconds)  # pragma: no cover - send retries transient errors itself

        def on_retry(_failures: int, exc: DeliveryError, _delay: float) -> None:
            if isinstance(exc, AuthError):
                log.error("App API key rejected; transactional send held.", workspace=workspace, error=str(exc))
            else:  # pragma: no cover - as above
                log.error("Transactional send failed.", workspace=workspace, error=str(exc))

        try:
            await with_retries(
                lambda: self._sender.send(job.destination, job.body, job.ticket.record.key),
                DeliveryError,
                self._policy,
                classify=classify,
                on_retry=on_retry,
                sleep=self._sleep,
            )
        except PermanentDeliveryError as exc:
            job.ticket.reject(DeadLetterReason("rejected", f"App API rejected the send: {exc}", workspace, exc.status))
        self._unfinished -= 1
        job.ticket.release()


def _template_of(body: bytes) -> int | str | None:
    """The template id of a body built by ``build_send_email`` (None if unreadable)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("transactional_message_id") if isinstance(doc, dict) else None
    return value if isinstance(value, int | str) else None
