"""The webhook listener's lifecycle: bind, serve, shut down gracefully.

Composition root (the producer is started before and stopped after the listener)::

    listener = WebhookListener(settings.webhook, producer, metrics, workspace_keys=webhook_keys(settings))
    await listener.start()
    readiness.add("webhooks", listener.readiness)      # (ready, detail); listener.ready() → bool
    ...
    listener.begin_shutdown()   # readiness false, new webhooks 503; requests in flight carry on
    await listener.stop()       # wait for them and their acks (deadline), then close the sockets
    await producer.stop()

or ``async with serve_webhooks(settings.webhook, producer, metrics) as listener: ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable, Mapping

from aiohttp import web

from connector.config import Secret, Settings, WebhookSettings
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.webhook.handler import ProducerLike, make_webhook_app

log = get_logger("webhook")


# Generation-0 collections every 10,000 allocations instead of 700 (generations 1 and 2 as default).
# A webhook allocates a few hundred objects and keeps almost none, and the young generation of a
# busy listener holds the in-flight requests, so the default threshold ran ~6 full collections per
# 30,000 webhooks: 11-13 µs of GC per webhook with acks=all. At 10,000: 0.2-0.3 µs, listener CPU
# 176-182 -> 159-160 µs per webhook, peak RSS unchanged (59-66 MB). Only for the webhooks-only role:
# the sink's roles set their own (connector/cli.py: generation 1 collected less often, generation 0 not).
WEBHOOKS_GC_THRESHOLD = (10_000, 10, 10)


def tune_gc_for_webhooks() -> None:
    """Collect the young generation less often (a process that serves webhooks only)."""
    gc.set_threshold(*WEBHOOKS_GC_THRESHOLD)


def webhook_keys(settings: Settings) -> dict[str, tuple[Secret, ...]]:
    """Workspace name → its webhook signing keys, for the workspaces of the config file that have some."""
    return {ws.name: ws.webhook_signing_keys for ws in settings.workspaces if ws.webhook_signing_keys}


class WebhookListener:
    """The webhook application served on ``settings.host:settings.port`` (port 0: any free port)."""

    def __init__(
        self,
        settings: WebhookSettings,
        producer: ProducerLike,
        metrics: Metrics,
        *,
        workspace_keys: Mapping[str, tuple[Secret, ...]] | None = None,
        clock: Callable[[], float] = time.time,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.shutdown_timeout = shutdown_timeout
        self.app = make_webhook_app(settings, producer, metrics, clock, workspace_keys=workspace_keys)
        self.state = self.app.state
        self._runner: web.ServerRunner | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when the settings ask for port 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the webhook listener is not started")
        return int(self._runner.addresses[0][1])

    def ready(self) -> bool:
        """Whether webhooks are accepted: producer connected and not closing."""
        return self.state.readiness()[0]

    def readiness(self) -> tuple[bool, str]:
        """(ready, detail in words), for the process's /readyz."""
        return self.state.readiness()

    async def start(self) -> None:
        """Bind and serve."""
        # No access log: a line per webhook at thousands per second; the handler logs what matters.
        # aiohttp's low-level server: no web.Application and no router (WebhookApp routes itself).
        runner = web.ServerRunner(self.app.server(access_log=None), shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.settings.host, self.settings.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info(
            "Webhook listener started.",
            host=self.settings.host,
            port=self.port,
            path=self.settings.path if self.state.single is not None else None,
            workspaces=sorted(self.state.workspaces),
        )

    def begin_shutdown(self) -> None:
        """Readiness false and new webhooks get 503 (Customer.io retries them); in-flight ones carry on."""
        self.state.closing = True

    async def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, wait for in-flight webhooks and their produce tasks (deadline), then close."""
        self.state.closing = True
        deadline = time.monotonic() + (self.shutdown_timeout if timeout is None else timeout)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.state.idle.wait(), max(0.0, deadline - time.monotonic()))
        drained = self.state.active == 0
        unsettled = await self.state.delivery.settle(max(0.0, deadline - time.monotonic()))
        if not drained or unsettled:
            log.warning("Webhook listener stopped with work left.", requests=self.state.active, cancelled=unsettled)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        log.info("Webhook listener stopped.")


@contextlib.asynccontextmanager
async def serve_webhooks(
    settings: WebhookSettings,
    producer: ProducerLike,
    metrics: Metrics,
    *,
    workspace_keys: Mapping[str, tuple[Secret, ...]] | None = None,
    clock: Callable[[], float] = time.time,
    shutdown_timeout: float = 10.0,
) -> AsyncIterator[WebhookListener]:
    """Serve webhooks for the duration of the block; leaving it shuts the listener down gracefully."""
    listener = WebhookListener(
        settings, producer, metrics, workspace_keys=workspace_keys, clock=clock, shutdown_timeout=shutdown_timeout
    )
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()
