"""The webhook HTTP listener: read → verify → normalize → produce and await the ack → 2xx.

    POST <settings.path>
      503  closing (shutdown begun) or producer not connected        → Customer.io retries
      413  body over ``max_body_bytes`` (read with a cap)
      401  signature missing, malformed, wrong or stale               (nothing is produced)
      400  not JSON, not an object, no ``event_id``                   (only after a valid signature)
      200  produced and acknowledged by the broker (acks=all), or a retry of an event already in Kafka
      503  no broker ack within ``produce_timeout_seconds``           → Customer.io retries
    GET /healthz   200 while the process runs
    GET /readyz    200 while the producer is connected and the listener is not closing, else 503
    other paths    404; other methods on the webhook path 405 — every body is a small JSON object

An unknown object type or metric is produced under a generic name and answered 200: a 4xx would stall
Customer.io's whole webhook stream for an hour.

The listener's lifecycle (bind, serve, graceful shutdown) is in ``connector.webhook.listener``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import Counter

from connector.config import WebhookSettings
from connector.errors import BrokerUnavailableError, DecodeError, SignatureError
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.webhook.dedup import RecentIds
from connector.webhook.delivery import EventDelivery, ProducerLike
from connector.webhook.normalize import normalize, parse
from connector.webhook.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

__all__ = ["STATE", "ProducerLike", "WebhookState", "make_webhook_app"]

log = get_logger("webhook")

OUTCOMES = ("accepted", "duplicate", "bad_signature", "bad_request", "too_large", "unavailable", "closing")


@dataclass(slots=True, eq=False)
class WebhookState:
    """What the handlers share; one per application."""

    settings: WebhookSettings
    delivery: EventDelivery
    metrics: Metrics
    clock: Callable[[], float]
    closing: bool = False
    active: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    outcomes: dict[str, Counter] = field(default_factory=dict)
    keys: tuple[bytes, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        self.keys = tuple(key.reveal().encode() for key in self.settings.signing_keys)
        # Labelled children resolved once: labels() takes a lock and builds a tuple on every call.
        self.outcomes = {o: self.metrics.webhook_requests.labels(outcome=o) for o in OUTCOMES}

    def readiness(self) -> tuple[bool, str]:
        """(ready, detail): webhooks are accepted while the producer is connected and we are not closing."""
        if self.closing:
            return False, "shutting down"
        if not self.delivery.producer.started:
            return False, "Kafka producer not connected"
        return True, "ok"


STATE = web.AppKey("webhook_state", WebhookState)


def make_webhook_app(
    settings: WebhookSettings,
    producer: ProducerLike,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
    *,
    max_pending: int = 10_000,
) -> web.Application:
    """The listener's application: the webhook route, /healthz and /readyz. ``clock`` is wall time."""
    delivery = EventDelivery(
        producer,
        settings.topic,
        produce_timeout=settings.produce_timeout_seconds,
        recent=RecentIds(settings.dedup_window_seconds, settings.dedup_max_entries),
        metrics=metrics,
        clock=clock,
        max_pending=max_pending,
    )
    state = WebhookState(settings, delivery, metrics, clock)
    state.idle.set()
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[STATE] = state
    app.router.add_route("*", settings.path, _receive)
    app.router.add_route("*", "/healthz", _healthz)
    app.router.add_route("*", "/readyz", _readyz)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


# --- handlers ----------------------------------------------------------------------------------------
# No middleware on the hot path: every route takes any method and answers 405 itself, and a catch-all
# route answers 404, so every error body is the same small JSON shape.

_JSON = "application/json"
_ACCEPTED = b'{"message":"accepted"}'
_DUPLICATE = b'{"message":"duplicate"}'


def _reply(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


def _method_not_allowed(allowed: str) -> web.Response:
    return _reply(405, "Method Not Allowed", {"Allow": allowed})


async def _not_found(_request: web.Request) -> web.Response:
    return _reply(404, "Not Found")


async def _healthz(request: web.Request) -> web.Response:
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET, HEAD")
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET, HEAD")
    ready, detail = request.app[STATE].readiness()
    return web.json_response({"ready": ready, "message": detail}, status=200 if ready else 503)


async def _receive(request: web.Request) -> web.Response:
    if request.method != "POST":
        return _method_not_allowed("POST")
    state = request.app[STATE]
    if state.closing:
        state.outcomes["closing"].inc()
        return _reply(503, "shutting down, retry later")
    state.active += 1
    state.idle.clear()
    try:
        return await _handle(state, request)
    finally:
        state.active -= 1
        if state.active == 0:
            state.idle.set()


async def _handle(state: WebhookState, request: web.Request) -> web.Response:
    settings, metrics = state.settings, state.metrics
    body = await _read_capped(request, settings.max_body_bytes)
    if body is None:
        state.outcomes["too_large"].inc()
        log.warning("Webhook body too large.", limit_bytes=settings.max_body_bytes, length=request.content_length)
        return _reply(413, f"body larger than {settings.max_body_bytes} bytes")

    now = state.clock()
    try:
        verify(
            state.keys,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            body,
            now=now,
            max_age=settings.max_timestamp_age_seconds,
        )
    except SignatureError as exc:
        metrics.webhook_signature_failures.labels(reason=exc.reason).inc()
        state.outcomes["bad_signature"].inc()
        log.warning("Webhook signature rejected.", reason=exc.reason, remote=request.remote)
        return _reply(401, "invalid signature")

    try:
        event = normalize(parse(body), now)
    except DecodeError as exc:
        state.outcomes["bad_request"].inc()
        log.warning("Webhook payload rejected.", reason=exc.reason, error=str(exc), length=len(body))
        return _reply(400, str(exc))

    try:
        outcome = await state.delivery.deliver(event)
    except BrokerUnavailableError as exc:
        state.outcomes["unavailable"].inc()
        log.warning("Webhook not stored in Kafka; answering 503.", event_id=event.event_id, error=str(exc))
        return _reply(503, "event not stored, retry later")
    state.outcomes[outcome].inc()
    if outcome == "duplicate":
        metrics.webhook_duplicates.inc()
    if log.is_debug():
        log.debug("Webhook stored.", event_id=event.event_id, outcome=outcome, event=event.event["event"])
    return web.Response(body=_ACCEPTED if outcome == "accepted" else _DUPLICATE, content_type=_JSON)


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds ``limit`` bytes (never buffers more than that)."""
    length = request.content_length
    if length is not None:
        # aiohttp's parser stops the body at Content-Length, so reading it all is bounded by the check.
        return None if length > limit else await request.content.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
