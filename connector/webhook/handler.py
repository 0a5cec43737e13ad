"""The webhook HTTP listener: read → verify → normalize → produce and await the ack → 2xx.

    POST <settings.path>                 signed with CIO_WEBHOOK_SIGNING_KEYS (the single-workspace path)
    POST <settings.path>/<workspace>     signed with that workspace's webhook_signing_keys (config file)
      404  no workspace of that name has webhook signing keys (or the single path has no keys): checked
           first, and no other workspace's key is ever tried on it
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

Workspaces: each path has its own keys and its own labelled metric children (``workspace`` label: the
workspace's name, "" for the single path and for refused unknown names, so the label stays bounded). An
event received on a workspace's path names it (``context.workspace`` and the ``workspace`` header).

Memory held by request bodies is bounded by ``max_concurrent_reads`` × ``max_body_bytes``: a body is
only read once its signature headers are well-formed and a read slot is free, and each read has a
deadline. A client that hangs up mid-body is one info line (it is not our fault, nor a bug).

The listener's lifecycle (bind, serve, graceful shutdown) is in ``connector.webhook.listener``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import Counter

from connector.config import Secret, WebhookSettings
from connector.errors import BrokerUnavailableError, DecodeError, SignatureError
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.webhook.dedup import RecentIds
from connector.webhook.delivery import EventDelivery, ProducerLike
from connector.webhook.names import PRESETS
from connector.webhook.normalize import NameTable, normalize, parse
from connector.webhook.signature import REASONS as SIGNATURE_REASONS
from connector.webhook.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignedHeaders,
    check_headers,
    verify_body,
)

__all__ = ["ProducerLike", "WebhookApp", "WebhookPath", "WebhookState", "make_webhook_app"]

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
    "unknown_workspace",
)
# Customer.io keeps its own backoff; the header tells other clients (and humans) that 503 is temporary.
RETRY_AFTER_SECONDS = 1


@dataclass(slots=True, eq=False)
class WebhookPath:
    """One served path: the workspace it names ("" for the single path), its keys, its metric children."""

    workspace: str
    keys: tuple[bytes, ...] = field(repr=False)
    outcomes: dict[str, Counter]
    signature_failures: dict[str, Counter]
    duplicates: Counter

    @classmethod
    def of(cls, workspace: str, keys: Iterable[Secret], metrics: Metrics) -> WebhookPath:
        """The path of ``workspace`` with ``keys``; labelled children resolved once (labels() takes a lock)."""
        return cls(
            workspace=workspace,
            keys=tuple(key.reveal().encode() for key in keys),
            outcomes={o: metrics.webhook_requests.labels(outcome=o, workspace=workspace) for o in OUTCOMES},
            signature_failures={
                r: metrics.webhook_signature_failures.labels(reason=r, workspace=workspace) for r in SIGNATURE_REASONS
            },
            duplicates=metrics.webhook_duplicates.labels(workspace=workspace),
        )


@dataclass(slots=True, eq=False)
class WebhookState:
    """What the handlers share; one per application."""

    settings: WebhookSettings
    delivery: EventDelivery
    metrics: Metrics
    clock: Callable[[], float]
    workspace_keys: Mapping[str, tuple[Secret, ...]] = field(default_factory=dict, repr=False)
    closing: bool = False
    active: int = 0
    reading: int = 0  # requests whose body is being read (bounded by settings.max_concurrent_reads)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    single: WebhookPath | None = field(init=False)  # None: no CIO_WEBHOOK_SIGNING_KEYS, the path is not served
    unknown: WebhookPath = field(init=False)  # counts refused names, under workspace=""
    workspaces: dict[str, WebhookPath] = field(init=False)
    names: NameTable = field(init=False)

    def __post_init__(self) -> None:
        unnamed = WebhookPath.of("", self.settings.signing_keys, self.metrics)
        self.single = unnamed if unnamed.keys else None
        self.unknown = unnamed
        self.workspaces = {
            name: WebhookPath.of(name, keys, self.metrics) for name, keys in self.workspace_keys.items() if keys
        }
        self.names = PRESETS[self.settings.event_names]

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The single path's keys (none when it is not served)."""
        return () if self.single is None else self.single.keys

    def readiness(self) -> tuple[bool, str]:
        """(ready, detail): webhooks are accepted while the producer is connected and we are not closing."""
        if self.closing:
            return False, "shutting down"
        if not self.delivery.producer.started:
            return False, "Kafka producer not connected"
        return True, "ok"


class WebhookApp:
    """The listener's request handler for aiohttp's low-level ``web.Server``, and the state it shares.

    No ``web.Application`` and no router: they cost ~10 µs of CPU per request (a trivial handler measured
    65-70 µs per request served by ``web.Server``, 76-81 behind a one-route ``Application``), and the
    listener has three fixed paths and one one-segment pattern. The routing is the router's: the webhook
    path, then the probes, then ``<path>/<workspace>`` (one segment, without ``{``, ``}`` or ``/``; ``%2F``
    and ``%25`` decoded as aiohttp does), else 404. An HTTP/1.1 ``Expect`` other than ``100-continue`` is 417;
    ``100 Continue`` is sent only when the body is about to be read, so a webhook refused from its headers
    (413, 401, 404, 503) is refused before the client sends the body (``web.Application`` would invite it).
    """

    __slots__ = ("_exact", "_workspace_prefix", "state")

    def __init__(self, state: WebhookState) -> None:
        path = state.settings.path  # "/..." without braces: checked when the settings are loaded
        self.state = state
        # The webhook path first: it wins over a probe of the same name, as the first route did.
        self._exact: dict[str, Callable[[WebhookState, web.BaseRequest], Awaitable[web.Response]]] = {
            "/healthz": _healthz,
            "/readyz": _readyz,
            path: _receive,
        }
        # A webhook path of "/" does not turn /healthz into a workspace: the exact paths are looked up first.
        self._workspace_prefix = path.rstrip("/") + "/"

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """Answer one request (aiohttp's ``web.Server`` handler)."""
        if request.headers.get(hdrs.EXPECT) and not _expectation_met(request):
            return _unread(_reply(417, f"unknown Expect: {request.headers[hdrs.EXPECT][:100]}"))
        url_path = request.rel_url.path_safe
        route = self._exact.get(url_path)
        if route is not None:
            return await route(self.state, request)
        prefix = self._workspace_prefix
        if url_path.startswith(prefix):
            name = url_path[len(prefix) :]
            if name and "/" not in name and "{" not in name and "}" not in name:
                return await _receive_workspace(self.state, request, _unquote_segment(name))
        return _reply(404, "Not Found")

    def server(self, **kwargs: Any) -> web.Server:
        """An aiohttp low-level server of this handler (``kwargs``: its connection options)."""
        kwargs.setdefault("logger", _ServerLog(logging.getLogger("aiohttp.server"), {}))
        return web.Server(self, **kwargs)


class _ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log, with a malformed request (anyone can send one) as one warning line, not an
    error with a traceback; aiohttp answers it 400 itself."""

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            reason = " ".join(str(exc_info.message).split())[:200]
            self.logger.warning("Malformed HTTP request refused (400): %s", reason)
        else:
            self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


def make_webhook_app(
    settings: WebhookSettings,
    producer: ProducerLike,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
    *,
    workspace_keys: Mapping[str, tuple[Secret, ...]] | None = None,
    max_pending: int = 10_000,
) -> WebhookApp:
    """The listener's handler: the webhook paths, /healthz and /readyz. ``clock`` is wall time.

    ``workspace_keys``: workspace name → its webhook signing keys; each workspace with keys is served at
    ``<settings.path>/<name>``.
    """
    delivery = EventDelivery(
        producer,
        settings.topic,
        produce_timeout=settings.produce_timeout_seconds,
        recent=RecentIds(settings.dedup_window_seconds, settings.dedup_max_entries),
        metrics=metrics,
        clock=clock,
        max_pending=max_pending,
    )
    state = WebhookState(settings, delivery, metrics, clock, workspace_keys or {})
    state.idle.set()
    return WebhookApp(state)


# --- handlers ----------------------------------------------------------------------------------------
# No middleware on the hot path: every route takes any method and answers 405 itself, and an unknown
# path answers 404, so every error body is the same small JSON shape.

_JSON = "application/json"
_ACCEPTED = b'{"message":"accepted"}'
_DUPLICATE = b'{"message":"duplicate"}'


def _reply(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


def _method_not_allowed(allowed: str) -> web.Response:
    return _reply(405, "Method Not Allowed", {"Allow": allowed})


def _unquote_segment(segment: str) -> str:
    """A path segment as aiohttp's router hands a match over: ``%2F`` and ``%25`` decoded (the rest is already)."""
    return segment.replace("%2F", "/").replace("%25", "%") if "%" in segment else segment


def _expectation_met(request: web.BaseRequest) -> bool:
    """Whether the request's ``Expect`` can be met: ``100-continue`` (HTTP/1.1 only; HTTP/1.0 ignores it)."""
    return request.version != HttpVersion11 or request.headers.get(hdrs.EXPECT, "").lower() == "100-continue"


async def _continue(request: web.BaseRequest) -> None:
    """Invite the body of a client waiting for ``100 Continue`` (called only once the body is to be read)."""
    if request.version == HttpVersion11 and request.headers.get(hdrs.EXPECT):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not part of the response


async def _healthz(_state: WebhookState, request: web.BaseRequest) -> web.Response:
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET, HEAD")
    return web.json_response({"status": "ok"})


async def _readyz(state: WebhookState, request: web.BaseRequest) -> web.Response:
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET, HEAD")
    ready, detail = state.readiness()
    return web.json_response({"ready": ready, "message": detail}, status=200 if ready else 503)


async def _receive(state: WebhookState, request: web.BaseRequest) -> web.Response:
    if request.method != "POST":
        return _method_not_allowed("POST")
    if state.single is None:
        return _unknown_workspace(state, "webhooks are accepted only at the workspaces' paths (<path>/<workspace>)")
    return await _receive_on(state, state.single, request)


async def _receive_workspace(state: WebhookState, request: web.BaseRequest, name: str) -> web.Response:
    if request.method != "POST":
        return _method_not_allowed("POST")
    path = state.workspaces.get(name)
    if path is None:
        # Decided before anything else: the request never meets another workspace's keys.
        return _unknown_workspace(state, f"no workspace named {name[:100]!r} accepts webhooks here")
    return await _receive_on(state, path, request)


async def _receive_on(state: WebhookState, path: WebhookPath, request: web.BaseRequest) -> web.Response:
    if state.closing:
        path.outcomes["closing"].inc()
        return _reply(503, "shutting down, retry later")
    state.active += 1
    state.idle.clear()
    try:
        return await _handle(state, path, request)
    except RequestPayloadError as exc:
        # The body cannot be decoded as sent (a Content-Encoding it does not match, a broken chunk): the
        # client's fault, answered as such rather than as a 500 with a traceback; the rest of the stream
        # cannot be parsed either, so the connection is closed after the answer.
        path.outcomes["bad_request"].inc()
        cause = exc.__cause__ or exc
        reason = " ".join(str(getattr(cause, "message", cause)).split())
        log.warning("Webhook body could not be read.", error=reason, workspace=path.workspace)
        return await _reply_and_hang_up(request, 400, f"body cannot be read: {reason}")
    finally:
        state.active -= 1
        if state.active == 0:
            state.idle.set()


async def _handle(state: WebhookState, path: WebhookPath, request: web.BaseRequest) -> web.Response:
    settings, outcomes = state.settings, path.outcomes
    # Everything that can be decided from the headers is decided before reading a byte of the body.
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        return _too_large(state, path, length)
    try:
        headers = check_headers(request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER))
    except SignatureError as exc:
        return _bad_signature(path, request, exc, unread=True)
    if state.reading >= settings.max_concurrent_reads:
        outcomes["busy"].inc()
        log.warning("Webhook refused: too many bodies being read.", limit=settings.max_concurrent_reads)
        return _unread(
            _reply(503, "too many webhook bodies being read, retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        )

    content = request.content
    if content.is_eof():
        # The whole body arrived with the headers (the usual case for a small webhook): take it without
        # a read slot or a deadline (the cap above still applies), as nothing is waited for. Only a chunked body can exceed the limit here.
        received = content.read_nowait()
        if len(received) > settings.max_body_bytes:
            return _too_large(state, path, length)
        return await _verified(state, path, request, headers, received)
    state.reading += 1
    try:
        async with asyncio.timeout(settings.read_timeout_seconds):
            await _continue(request)
            body = await _read_capped(request, settings.max_body_bytes)
    except TimeoutError:
        outcomes["timeout"].inc()
        log.warning("Webhook body not received in time.", timeout_seconds=settings.read_timeout_seconds)
        return await _reply_and_hang_up(request, 408, f"body not received within {settings.read_timeout_seconds:g} s")
    except ConnectionError:
        # The client went away (aiohttp: ConnectionResetError "Connection lost"); nobody reads the answer.
        outcomes["aborted"].inc()
        log.info("Webhook request aborted by the client.", remote=request.remote)
        return _reply(400, "request aborted")
    finally:
        state.reading -= 1
    if body is None:
        return _too_large(state, path, length)  # streamed: the rest is left unread
    return await _verified(state, path, request, headers, body)


async def _verified(
    state: WebhookState, path: WebhookPath, request: web.BaseRequest, headers: SignedHeaders, body: bytes
) -> web.Response:
    """Verify the whole ``body``, normalize it, produce it and answer."""
    settings, outcomes = state.settings, path.outcomes
    now = state.clock()
    try:
        verify_body(path.keys, headers, body, now=now, max_age=settings.max_timestamp_age_seconds)
    except SignatureError as exc:
        return _bad_signature(path, request, exc, unread=False)

    try:
        event = normalize(parse(body), now, names=state.names, workspace=path.workspace)
    except DecodeError as exc:
        outcomes["bad_request"].inc()
        log.warning("Webhook payload rejected.", reason=exc.reason, error=str(exc), length=len(body))
        return _reply(400, str(exc))

    try:
        outcome = await state.delivery.deliver(event)
    except BrokerUnavailableError as exc:
        outcomes["unavailable"].inc()
        log.warning("Webhook not stored in Kafka; answering 503.", event_id=event.event_id, error=str(exc))
        return _reply(503, "event not stored, retry later")
    outcomes[outcome].inc()
    if outcome == "duplicate":
        path.duplicates.inc()
    if log.is_debug():
        log.debug("Webhook stored.", event_id=event.event_id, outcome=outcome, event=event.event["event"])
    return web.Response(body=_ACCEPTED if outcome == "accepted" else _DUPLICATE, content_type=_JSON)


def _unknown_workspace(state: WebhookState, message: str) -> web.Response:
    """404 before the headers or body are looked at: a wrong URL in Customer.io, or someone probing."""
    state.unknown.outcomes["unknown_workspace"].inc()
    log.warning("Webhook refused: unknown workspace path.", detail=message)
    return _unread(_reply(404, message))


def _too_large(state: WebhookState, path: WebhookPath, length: int | None) -> web.Response:
    limit = state.settings.max_body_bytes
    path.outcomes["too_large"].inc()
    log.warning("Webhook body too large.", limit_bytes=limit, length=length, workspace=path.workspace)
    return _unread(_reply(413, f"body larger than {limit} bytes"))


def _bad_signature(path: WebhookPath, request: web.BaseRequest, exc: SignatureError, *, unread: bool) -> web.Response:
    path.signature_failures[exc.reason].inc()
    path.outcomes["bad_signature"].inc()
    log.warning("Webhook signature rejected.", reason=exc.reason, remote=request.remote, workspace=path.workspace)
    response = _reply(401, "invalid signature")
    return _unread(response) if unread else response


def _unread(response: web.Response) -> web.Response:
    """Mark an answer given without reading the body: the connection closes after it.

    aiohttp then discards (never buffers) what the client still sends, for at most its lingering time,
    so that the client can read the answer before the socket closes.
    """
    response.force_close()
    return response


async def _reply_and_hang_up(request: web.BaseRequest, status: int, message: str) -> web.Response:
    """Send the answer, then close the connection at once (no lingering for a client already too slow)."""
    response = _unread(_reply(status, message))
    with contextlib.suppress(ConnectionError):  # the client may have given up meanwhile
        await response.prepare(request)
        await response.write_eof()
    request.protocol.force_close()
    return response


async def _read_capped(request: web.BaseRequest, limit: int) -> bytes | None:
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
