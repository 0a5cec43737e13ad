"""Transactional email, the sending half: ``/v1/send/email`` bodies (built by
``connector.sink.mapping.transactional.build_send_email``) → Customer.io's App API.

``TransactionalSender`` sends the body for a pinned workspace: its own App API rate limiter per
workspace, transient failures retried forever with the retry policy's backoff, and the returned
``delivery_id`` handed to an optional ``delivery_sink`` (to be produced to the delivery topic and later
joined with reporting webhooks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from connector.cio.client import CustomerIOClient
from connector.cio.region import ResolvedWorkspace
from connector.errors import AuthError, ConnectorError, PermanentDeliveryError, TransientDeliveryError
from connector.logs import get_logger
from connector.metrics import Metrics, status_class
from connector.sink.limits import RateLimiter
from connector.sink.retry import RetryPolicy

SEND_EMAIL_PATH = "/v1/send/email"

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
    ) -> None:
        """``rate_per_second`` is ``TransactionalSettings.rate_limit_per_second`` (App API, per workspace)."""
        self._client = client
        self._policy = policy
        self._rate = rate_per_second
        self._metrics = metrics
        self._delivery_sink = delivery_sink
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
        if ws.app_auth is None:
            counts.labels(ws.name, "auth_failed").inc()
            raise AuthError(f"workspace {ws.name!r} has no App API key configured for transactional email")
        limiter = self._limiter(ws.name)
        attempt = 0
        while True:
            await limiter.acquire()
            try:
                answer = await self._client.post_app(
                    ws.app_url, SEND_EMAIL_PATH, ws.app_auth, body, labels=ws.labels, endpoint="send_email"
                )
                break
            except TransientDeliveryError as exc:
                attempt += 1
                delay = self._policy.delay(attempt, exc.retry_after)
                cause = "429" if exc.status == 429 else status_class(exc.status)
                self._metrics.retries.labels(ws.name, cause).inc()
                log.warning(
                    "Transactional send failed; retrying.",
                    workspace=ws.name,
                    attempt=attempt,
                    status=exc.status,
                    delay_seconds=round(delay, 3),
                    error=str(exc),
                )
                await asyncio.sleep(delay)
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
            attempts=attempt + 1,
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


def _template_of(body: bytes) -> int | str | None:
    """The template id of a body built by ``build_send_email`` (None if unreadable)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("transactional_message_id") if isinstance(doc, dict) else None
    return value if isinstance(value, int | str) else None
