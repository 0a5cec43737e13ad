"""Transactional email: a Segment ``track`` event → one App API ``POST /v1/send/email`` (§5.1).

``build_send_email`` is pure: it validates the event's ``properties`` and returns the request body or a
Rejection. Every property is read by its snake_case name or its camelCase twin
(``transactional_message_id`` / ``transactionalMessageId``):

    transactional_message_id  required; an int template id, or a trigger name (a string of digits
                              becomes an int id)
    to                        required (or ``recipient`` / ``email``); a string or a list of strings;
                              at most 15 addresses
    identifiers               an object with exactly one of id / email / cio_id; default from ``userId``
                              (email-looking → email, ``cio_`` prefix → cio_id without it, else id)
    message_data              object for Liquid; {} when absent (other properties are NOT copied in, so
                              routing fields never leak into templates)
    from, subject, reply_to, language                strings
    send_at                   Unix seconds (ms accepted) or an ISO-8601 string → int seconds
    disable_message_retention, send_to_unsubscribed, tracked, queue_draft      booleans

``TransactionalSender`` sends the body for a pinned workspace: its own App API rate limiter per
workspace, transient failures retried forever with the retry policy's backoff, and the returned
``delivery_id`` handed to an optional ``delivery_sink`` (to be produced to the delivery topic and later
joined with reporting webhooks).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from connector.cio.client import CustomerIOClient
from connector.cio.region import ResolvedWorkspace
from connector.errors import AuthError, ConnectorError, PermanentDeliveryError, TransientDeliveryError
from connector.logs import get_logger
from connector.metrics import Metrics, status_class
from connector.sink.limits import RateLimiter
from connector.sink.mapping.model import Message, Rejection
from connector.sink.mapping.timestamps import to_unix_ms
from connector.sink.retry import RetryPolicy

SEND_EMAIL_PATH = "/v1/send/email"
MAX_RECIPIENTS = 15
MAX_BODY_BYTES = 2048 * 1024
STRING_FIELDS = ("from", "subject", "reply_to", "language")
BOOL_FIELDS = ("disable_message_retention", "send_to_unsubscribed", "tracked", "queue_draft")
IDENTIFIER_KEYS = frozenset({"id", "email", "cio_id"})

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_RECIPIENT_SEPARATOR = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')  # commas outside "display names"
_MISSING = object()

log = get_logger("sink.transactional")

DeliverySink = Callable[[str, bytes, bytes], Awaitable[None]]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _get(props: dict[str, Any], name: str) -> Any:
    """``props[name]``, else its camelCase twin, else _MISSING (None counts as missing)."""
    value = props.get(name)
    if value is None:
        value = props.get(_camel(name))
    return _MISSING if value is None else value


def build_send_email(message: Message) -> bytes | Rejection:
    """The ``/v1/send/email`` body for a transactional track event, or a Rejection naming the field.

    Reasons: ``missing_field`` / ``invalid_field`` for the template id, ``to`` and the optional fields;
    ``missing_identifier`` / ``invalid_identifier`` for the person; ``invalid_timestamp`` for ``send_at``;
    ``limit_exceeded`` for more than 15 recipients; ``too_large`` above 2048 KB.
    """
    props = message.get("properties")
    if not isinstance(props, dict):
        return Rejection("missing_field", "properties: required (an object)")
    body: dict[str, Any] = {}

    template = _get(props, "transactional_message_id")
    if template is _MISSING:
        return Rejection("missing_field", "properties.transactional_message_id: required")
    if isinstance(template, str) and template.strip().isdigit():
        template = int(template.strip())
    valid_id = isinstance(template, int) and not isinstance(template, bool) and template > 0
    valid_name = isinstance(template, str) and template.strip() != ""
    if not (valid_id or valid_name):
        return Rejection("invalid_field", "properties.transactional_message_id: must be a positive integer or a name")
    body["transactional_message_id"] = template

    to = _recipients(props)
    if isinstance(to, Rejection):
        return to
    body["to"] = to

    identifiers = _identifiers(props, message.get("userId"))
    if isinstance(identifiers, Rejection):
        return identifiers
    body["identifiers"] = identifiers

    data = _get(props, "message_data")
    if data is _MISSING:
        data = {}
    if not isinstance(data, dict):
        return Rejection("invalid_field", "properties.message_data: must be an object")
    body["message_data"] = data

    for names, kind, wanted in ((STRING_FIELDS, str, "a string"), (BOOL_FIELDS, bool, "true or false")):
        for name in names:
            value = _get(props, name)
            if value is _MISSING:
                continue
            if not isinstance(value, kind):
                return Rejection("invalid_field", f"properties.{name}: must be {wanted}")
            body[name] = value

    send_at = _get(props, "send_at")
    if send_at is not _MISSING:
        ms = to_unix_ms(send_at)  # the same reading of ISO-8601, seconds and ms as message timestamps
        seconds = None if ms is None or ms < 0 else ms // 1000
        if seconds is None:
            return Rejection("invalid_timestamp", "properties.send_at: must be Unix seconds or an ISO-8601 time")
        body["send_at"] = seconds

    encoded = orjson.dumps(body)
    if len(encoded) > MAX_BODY_BYTES:
        return Rejection("too_large", f"send_email body is {len(encoded)} bytes (limit {MAX_BODY_BYTES})")
    return encoded


def _recipients(props: dict[str, Any]) -> str | Rejection:
    for name in ("to", "recipient", "email"):
        value = _get(props, name)
        if value is not _MISSING:
            break
    else:
        return Rejection("missing_field", "properties.to: required")
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = ", ".join(v.strip() for v in value)
    if not isinstance(value, str) or not value.strip():
        return Rejection("invalid_field", f"properties.{name}: must be a non-empty string or list of strings")
    count = sum(1 for part in _RECIPIENT_SEPARATOR.split(value) if part.strip())
    if count > MAX_RECIPIENTS:
        return Rejection("limit_exceeded", f"properties.{name}: {count} recipients (at most {MAX_RECIPIENTS})")
    return value.strip()


def _identifiers(props: dict[str, Any], user_id: Any) -> dict[str, str] | Rejection:
    given = _get(props, "identifiers")
    if given is _MISSING:
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not isinstance(user_id, str) or not user_id.strip():
            return Rejection("missing_identifier", "properties.identifiers or userId: required")
        user_id = user_id.strip()
        if _EMAIL.fullmatch(user_id):
            return {"email": user_id}
        if user_id.startswith("cio_") and len(user_id) > 4:
            return {"cio_id": user_id[4:]}
        return {"id": user_id}
    if not isinstance(given, dict) or len(given) != 1 or not IDENTIFIER_KEYS.issuperset(given):
        return Rejection("invalid_identifier", "properties.identifiers: must hold exactly one of id, email, cio_id")
    ((key, value),) = given.items()
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return Rejection("invalid_identifier", f"properties.identifiers.{key}: must be a non-empty string")
    return {key: value.strip()}


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
