"""The webhook HTTP listener: read → verify → normalize → produce and await the ack → 2xx.

    POST <settings.path>
      503  closing (shutdown begun) or producer not connected        → Customer.io retries
      413  Content-Length over ``max_body_bytes``                     ┐ answered before any of the body
      401  signature headers missing or malformed                     │ is read, with Connection: close
      503  ``max_concurrent_reads`` bodies already being read (+ Retry-After)  ┘ (the rest is discarded)
      408  body not received within ``read_timeout_seconds``          → the connection is closed
      413  streamed (chunked) body over ``max_body_bytes`` (read with a cap)
      401  signature wrong or stale                                   (nothing is produced)
      400  not JSON, not an object, no ``event_id``, cannot be re-encoded (only after a valid signature)
      200  produced and acknowledged by the broker (acks=all), or a retry of an event already in Kafka
      503  no broker ack within ``produce_timeout_seconds``           → Customer.io retries
    GET /healthz   200 while the process runs
    GET /readyz    200 while the producer is connected and the listener is not closing, else 503
    other paths    404; other methods on the webhook path 405 — every body is a small JSON object

An unknown object type or metric is produced under a generic name and answered 200: a 4xx would stall
Customer.io's whole webhook stream for an hour.

Memory held by request bodies is bounded by ``max_concurrent_reads`` × ``max_body_bytes``: a body is
only read once its signature headers are well-formed and a read slot is free, and each read has a
deadline. A client that hangs up mid-body is one info line (it is not our fault, nor a bug).

The listener's lifecycle (bind, serve, graceful shutdown) is in ``connector.webhook.listener``.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from connector.webhook.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, check_headers, verify_body

__all__ = ["STATE", "ProducerLike", "WebhookState", "make_webhook_app"]

log = get_logger("webhook")

OUTCOMES = (
    "accepted",
    "duplicate",
    "bad_signature",
    "bad_request",
    "too_large",
    "unavailable",
    "closing",
    "busy",
    "timeout",
    "aborted",
)
# Customer.io keeps its own backoff; the header tells other clients (and humans) that 503 is temporary.
RETRY_AFTER_SECONDS = 1


@dataclass(slots=True, eq=False)
class WebhookState:
    """What the handlers share; one per application."""

    settings: WebhookSettings
    delivery: EventDelivery
    metrics: Metrics
    clock: Callable[[], float]
    closing: bool = False
    active: int = 0
    reading: int = 0  # requests whose body is being read (bounded by settings.max_concurrent_reads)
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
    # Everything that can be decided from the headers is decided before reading a byte of the body.
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        return _too_large(state, length)
    try:
        headers = check_headers(request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER))
    except SignatureError as exc:
        return _bad_signature(state, request, exc, unread=True)
    if state.reading >= settings.max_concurrent_reads:
        state.outcomes["busy"].inc()
        log.warning("Webhook refused: too many bodies being read.", limit=settings.max_concurrent_reads)
        return _unread(
            _reply(503, "too many webhook bodies being read, retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        )

    state.reading += 1
    try:
        async with asyncio.timeout(settings.read_timeout_seconds):
            body = await _read_capped(request, settings.max_body_bytes)
    except TimeoutError:
        state.outcomes["timeout"].inc()
        log.warning("Webhook body not received in time.", timeout_seconds=settings.read_timeout_seconds)
        return await _reply_and_hang_up(request, 408, f"body not received within {settings.read_timeout_seconds:g} s")
    except ConnectionError:
        # The client went away (aiohttp: ConnectionResetError "Connection lost"); nobody reads the answer.
        state.outcomes["aborted"].inc()
        log.info("Webhook request aborted by the client.", remote=request.remote)
        return _reply(400, "request aborted")
    finally:
        state.reading -= 1
    if body is None:
        return _too_large(state, length)  # streamed: the rest is left unread

    now = state.clock()
    try:
        verify_body(state.keys, headers, body, now=now, max_age=settings.max_timestamp_age_seconds)
    except SignatureError as exc:
        return _bad_signature(state, request, exc, unread=False)

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


def _too_large(state: WebhookState, length: int | None) -> web.Response:
    limit = state.settings.max_body_bytes
    state.outcomes["too_large"].inc()
    log.warning("Webhook body too large.", limit_bytes=limit, length=length)
    return _unread(_reply(413, f"body larger than {limit} bytes"))


def _bad_signature(state: WebhookState, request: web.Request, exc: SignatureError, *, unread: bool) -> web.Response:
    state.metrics.webhook_signature_failures.labels(reason=exc.reason).inc()
    state.outcomes["bad_signature"].inc()
    log.warning("Webhook signature rejected.", reason=exc.reason, remote=request.remote)
    response = _reply(401, "invalid signature")
    return _unread(response) if unread else response


def _unread(response: web.Response) -> web.Response:
    """Mark an answer given without reading the body: the connection closes after it.

    aiohttp then discards (never buffers) what the client still sends, for at most its lingering time,
    so that the client can read the answer before the socket closes.
    """
    response.force_close()
    return response


async def _reply_and_hang_up(request: web.Request, status: int, message: str) -> web.Response:
    """Send the answer, then close the connection at once (no lingering for a client already too slow)."""
    response = _unread(_reply(status, message))
    with contextlib.suppress(ConnectionError):  # the client may have given up meanwhile
        await response.prepare(request)
        await response.write_eof()
    request.protocol.force_close()
    return response


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
