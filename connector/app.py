"""Composition root: builds every component and owns start-up and shutdown order.

Start-up: ops server (probes answer, not ready) → Kafka producer → workspaces pinned to their region and
credentials checked → webhook listener → sink consumer → ready.

Shutdown (SIGTERM): not ready → webhook listener answers 503 to new requests and finishes in-flight ones
→ sink stops fetching, flushes, waits for in-flight requests (deadline), commits → producer, consumer and
HTTP session closed → ops server stopped. Teardown mirrors setup through one AsyncExitStack.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from connector.cio.client import CustomerIOClient
from connector.cio.region import ResolvedWorkspace, diagnose_rejection, pin, resolve_workspace
from connector.config import Settings
from connector.errors import (
    AuthError,
    BrokerUnavailableError,
    ConnectorError,
    DeliveryError,
    KafkaConnectError,
    TopicNotCreatedError,
)
from connector.kafka import (
    DEFAULT_MAX_REQUEST_SIZE,
    MAX_BATCH_BYTES,
    Consumer,
    Producer,
    ProducerLike,
    ensure_topics,
    topic_max_message_bytes,
)
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.server import Readiness, make_ops_app, start_site
from connector.sink.delivery import WorkspaceDelivery
from connector.sink.offsets import OffsetTracker
from connector.sink.positioning import StartPositioner
from connector.sink.retry import Retry, RetryPolicy, with_retries
from connector.sink.routing import Router
from connector.sink.runner import Sink
from connector.sink.start import parse_start_from
from connector.sink.tickets import Ticket
from connector.sink.transactional_sender import TransactionalSender

log = get_logger("app")

Role = Literal["run", "sink", "webhooks"]
RESOLVE_ATTEMPTS = 3


class StartupError(ConnectorError):
    """The service cannot start; ``str()`` is the one line shown to the user."""


@dataclass(frozen=True, slots=True)
class WorkspaceStart:
    """A workspace after the start-up check: pinned, and why it is not ready if it is not."""

    workspace: ResolvedWorkspace
    rejected: str | None


async def pin_workspaces(settings: Settings, client: CustomerIOClient) -> list[WorkspaceStart]:
    """Resolve every workspace's region; raise StartupError when none of them is usable.

    A workspace whose credentials are rejected does not stop the others: it starts stopped (not ready,
    records kept uncommitted) and is re-probed periodically. Only when *every* workspace is rejected or
    unreachable does the sink refuse to start — then nothing could be delivered at all.
    """
    results: list[WorkspaceStart] = []
    policy = RetryPolicy(initial_seconds=0.5, max_seconds=5.0)
    for ws in settings.workspaces:
        failure: str | None = None
        try:
            resolved = await with_retries(
                functools.partial(resolve_workspace, client, settings.endpoints, ws),
                DeliveryError,
                policy,
                classify=_retry_unless_rejected,
                max_attempts=RESOLVE_ATTEMPTS,
            )
            results.append(WorkspaceStart(resolved, None))
        except DeliveryError as exc:
            failure = str(exc)
        if failure is not None:
            # Pin to the configured region (US for auto) so periodic probes have somewhere to go.
            pinned = pin(ws, settings.endpoints, ws.region if ws.region in ("us", "eu") else "us")
            results.append(WorkspaceStart(pinned, failure))
            log.error("Workspace not usable at start-up.", workspace=ws.name, error=failure)
    if results and all(r.rejected for r in results):
        reasons = "; ".join(f"{r.workspace.name}: {r.rejected}" for r in results)
        raise StartupError(f"no workspace is usable ({reasons})")
    return results


def _retry_unless_rejected(exc: DeliveryError) -> Retry | None:
    """Start-up resolution: rejected credentials are final at once, other failures are retried."""
    return None if isinstance(exc, AuthError) else Retry()


async def run_service(settings: Settings, role: Role, stop: asyncio.Event, metrics: Metrics | None = None) -> None:  # noqa: C901 - the composition root: every component wired in order
    """Run until ``stop`` is set (or a component fails); raise StartupError if start-up is impossible."""
    metrics = metrics or Metrics()
    readiness = Readiness()
    wants_sink = role in ("run", "sink")
    wants_webhooks = role in ("run", "webhooks")
    async with contextlib.AsyncExitStack() as stack:
        service = settings.service
        try:
            ops = await start_site(make_ops_app(metrics, readiness), service.metrics_host, service.metrics_port)
        except OSError as exc:
            port = service.metrics_port
            raise StartupError(cannot_listen("CONNECTOR_METRICS_PORT", service.metrics_host, port, exc)) from None
        stack.push_async_callback(ops.cleanup)
        log.info("Ops server listening.", port=settings.service.metrics_port)

        producer = Producer(settings.kafka)
        try:
            await producer.start()
        except BrokerUnavailableError as exc:
            raise StartupError(_kafka_failure(exc)) from None
        stack.push_async_callback(producer.stop)
        readiness.add("kafka_producer", _producer_check(producer))
        await _ensure_output_topics(settings, wants_sink, wants_webhooks)

        sink: Sink | None = None
        if wants_sink:
            client = await stack.enter_async_context(CustomerIOClient(settings.sink.request_timeout_seconds, metrics))
            starts = await pin_workspaces(settings, client)
            dlq_producer = await _start_dlq_producer(settings)
            stack.push_async_callback(dlq_producer.stop)
            consumer = _sink_consumer(settings)
            sink = _build_sink(
                settings, starts, client, producer, metrics, dlq_producer=dlq_producer, consumer=consumer
            )
            readiness.add("kafka_consumer", _consumer_check(consumer))
            for name, delivery in sink.deliveries.items():
                readiness.add(f"workspace:{name}", _workspace_check(delivery))
            if settings.sink.errors_tolerance == "none":
                readiness.add("partitions", _halted_check(sink))
            readiness.add("dead_letters", _dead_letter_check(sink, settings.sink.dlq_topic))

        listener = None
        if wants_webhooks:
            from connector.webhook.listener import WebhookListener, webhook_keys

            listener = WebhookListener(settings.webhook, producer, metrics, workspace_keys=webhook_keys(settings))
            try:
                await listener.start()
            except OSError as exc:
                hook_settings = settings.webhook
                raise StartupError(
                    cannot_listen("CONNECTOR_WEBHOOK_PORT", hook_settings.host, hook_settings.port, exc)
                ) from None
            stack.push_async_callback(listener.stop)
            hook = listener
            readiness.add("webhooks", lambda: (hook.ready(), "accepting" if hook.ready() else "not accepting"))

        sink_stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(_wait(stop), name="stop-signal")]
        if sink is not None:
            tasks.append(asyncio.create_task(sink.run(sink_stop), name="sink"))
        log.info("Service started.", role=role, workspaces=[ws.name for ws in settings.workspaces])
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)

        log.info("Shutting down.")
        readiness.closing = True
        if listener is not None:
            listener.begin_shutdown()
        sink_stop.set()
        failure: BaseException | None = None
        for task in tasks[1:]:
            try:
                await task
            except Exception as exc:  # noqa: BLE001 - a component crashed: still tear everything down in order
                failure = exc
        tasks[0].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[0]
        if failure is not None:
            raise failure
    log.info("Service stopped.")


def cannot_listen(setting: str, host: str, port: int, exc: OSError) -> str:
    """One line for a listener that cannot bind (port in use, address not local), naming the setting."""
    cause = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return f"{setting}: cannot listen on {host}:{port} ({cause})"


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


def _build_sink(
    settings: Settings,
    starts: list[WorkspaceStart],
    client: CustomerIOClient,
    producer: ProducerLike,
    metrics: Metrics,
    *,
    dlq_producer: Producer,
    consumer: Consumer,
) -> Sink:
    policy = RetryPolicy.from_settings(settings.sink)
    # One tracker shared by the runner (which commits) and the lanes (which skip revoked records).
    offsets = OffsetTracker()
    deliveries: dict[str, WorkspaceDelivery] = {}

    def is_current(ticket: Ticket) -> bool:
        return offsets.is_current(ticket.partition, ticket.generation)

    for start in starts:
        ws = start.workspace
        metrics.workspace_info.labels(ws.name, ws.region).set(1)
        delivery = WorkspaceDelivery(
            ws,
            client,
            settings.sink,
            policy,
            rate_per_second=ws.settings.rate_limit_per_second or settings.sink.rate_limit_per_second,
            max_in_flight=ws.settings.max_in_flight or settings.sink.max_in_flight,
            metrics=metrics,
            is_current=is_current,
            diagnose=functools.partial(diagnose_rejection, client, settings.endpoints, ws),
        )
        if start.rejected is not None:
            delivery.mark_stopped(start.rejected)
        deliveries[ws.name] = delivery
    transactional = None
    if settings.transactional.topic:
        delivery_sink = _delivery_sink(producer, settings.transactional.delivery_topic)
        transactional = TransactionalSender(
            client, policy, settings.transactional.rate_limit_per_second, metrics, delivery_sink
        )
    return Sink(
        settings,
        offsets=offsets,
        consumer=consumer,
        producer=dlq_producer,
        deliveries=deliveries,
        router=Router(settings),
        metrics=metrics,
        transactional=transactional,
        positioner=StartPositioner(
            consumer, settings.kafka, settings.sink.group_id, parse_start_from(settings.sink.start_from)
        ),
    )


def _sink_consumer(settings: Settings) -> Consumer:
    return Consumer(
        settings.kafka,
        settings.sink.group_id,
        max_poll_records=settings.sink.max_poll_records,
        fetch_max_bytes=settings.sink.fetch_max_bytes,
        fetch_budget_bytes=settings.sink.fetch_budget_bytes,
        max_poll_interval_ms=int(settings.sink.max_poll_interval_seconds * 1000),
    )


def _producer_check(producer: Producer) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        if not producer.started:
            return False, "stopped"
        if not producer.reachable:
            return False, "the brokers do not answer (KAFKA_BOOTSTRAP_SERVERS)"
        return True, "connected"

    return check


def _consumer_check(consumer: Consumer) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        if not consumer.reachable:
            return False, "the brokers do not answer (KAFKA_BOOTSTRAP_SERVERS)"
        return True, "connected"

    return check


async def _start_dlq_producer(settings: Settings) -> Producer:
    """A producer of the dead-letter writer's own, whose size limit is what the dead-letter topic accepts.

    Its own, so that neither limit nor a slow 1 MiB dead letter affects the webhook producer.
    """
    topic = settings.sink.dlq_topic
    limit = settings.sink.dlq_max_message_bytes
    if limit is None:
        try:
            limit = await topic_max_message_bytes(settings.kafka, topic)
        except BrokerUnavailableError as exc:
            log.warning("Could not read the dead-letter topic's max.message.bytes.", topic=topic, error=str(exc))
        if limit is None:
            limit = DEFAULT_MAX_REQUEST_SIZE
            log.warning(
                "Dead letters sized to the default limit; set CONNECTOR_DLQ_MAX_MESSAGE_BYTES if the topic differs.",
                topic=topic,
                max_message_bytes=limit,
            )
    log.info("Dead-letter copies sized to fit the topic.", topic=topic, max_message_bytes=limit)
    producer = Producer(settings.kafka, max_request_size=limit)
    try:
        await producer.start()
    except BrokerUnavailableError as exc:
        raise StartupError(_kafka_failure(exc)) from None
    return producer


def _kafka_failure(exc: BrokerUnavailableError) -> str:
    """The one line of a Kafka client that cannot start: its own (setting: reason), else the bootstrap's."""
    return str(exc) if isinstance(exc, KafkaConnectError) else f"KAFKA_BOOTSTRAP_SERVERS: {exc}"


def _delivery_sink(producer: ProducerLike, topic: str | None) -> Callable[[str, bytes, bytes], Awaitable[None]] | None:
    if topic is None:
        return None

    async def produce(delivery_id: str, value: bytes, key: bytes) -> None:
        await producer.send(topic, value, key=key or delivery_id.encode())

    return produce


def _workspace_check(delivery: WorkspaceDelivery) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        if delivery.stopped_reason is not None:
            return False, delivery.stopped_reason
        return True, "failing, retrying" if delivery.failing else "ok"

    return check


def _dead_letter_check(sink: Sink, topic: str) -> Callable[[], tuple[bool, str]]:
    """Not ready while dead letters cannot be written (their partitions wait, uncommitted, and are retried)."""

    def check() -> tuple[bool, str]:
        failure = sink.dead_letter_failure
        if failure is not None:
            return False, f"cannot write to {topic} (CONNECTOR_DLQ_TOPIC), retrying: {failure}"
        return True, "ok"

    return check


def _halted_check(sink: Sink) -> Callable[[], tuple[bool, str]]:
    """Not ready while a partition is stopped at a rejected record (CONNECTOR_ERRORS_TOLERANCE=none)."""

    def check() -> tuple[bool, str]:
        halted = sink.halted
        if halted:
            return False, "; ".join(halted[p] for p in sorted(halted))
        return True, "flowing"

    return check


async def _warn_if_webhook_batches_too_large(settings: Settings) -> None:
    """One warning at start-up when the webhook topic refuses the producer's batches (docs/operations.md:
    its max.message.bytes must accept 256 KiB); otherwise the only sign is 503s naming
    MessageSizeTooLargeError, for every webhook of a refused batch."""
    topic = settings.webhook.topic
    try:
        limit = await topic_max_message_bytes(settings.kafka, topic)
    except BrokerUnavailableError:
        return  # DescribeConfigs not allowed: nothing to say
    if limit is not None and limit < MAX_BATCH_BYTES:
        log.warning(
            "CONNECTOR_WEBHOOK_TOPIC: the topic's max.message.bytes is below the webhook producer's batch size: "
            "batches above it are refused whole and their webhooks answered 503. Raise it.",
            topic=topic,
            max_message_bytes=limit,
            needed=MAX_BATCH_BYTES,
        )


async def _ensure_output_topics(settings: Settings, sink: bool, webhooks: bool) -> None:
    """Create the dead-letter and webhook topics if missing; StartupError naming the topic's setting when
    the cluster refuses (nothing could be written to a topic that these credentials cannot see)."""
    topics: dict[str, int] = {}
    if sink:
        topics[settings.sink.dlq_topic] = 1
    if webhooks:
        topics[settings.webhook.topic] = 1
    try:
        await ensure_topics(settings.kafka, topics)
    except TopicNotCreatedError as exc:
        setting = "CONNECTOR_DLQ_TOPIC" if sink and exc.topic == settings.sink.dlq_topic else "CONNECTOR_WEBHOOK_TOPIC"
        raise StartupError(f"{setting}: {exc}; create it, or allow these credentials to (Create ACL)") from None
    except BrokerUnavailableError as exc:
        log.warning("Could not create output topics; assuming they exist.", topics=list(topics), error=str(exc))
    if webhooks:
        await _warn_if_webhook_batches_too_large(settings)
