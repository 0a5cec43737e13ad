"""The operations endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` on ``CONNECTOR_METRICS_PORT``.

``/readyz`` answers 200 only when every registered check passes; its JSON body names each check, so a
503 says which workspace or component is not ready (e.g. a workspace whose credentials were rejected).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connector.metrics import Metrics

Check = Callable[[], tuple[bool, str]]


@dataclass(slots=True)
class Readiness:
    """Named readiness checks; each returns (ready, detail in words)."""

    checks: dict[str, Check] = field(default_factory=dict)
    closing: bool = False

    def add(self, name: str, check: Check) -> None:
        """Register a check (a later one of the same name replaces it)."""
        self.checks[name] = check

    def report(self) -> tuple[bool, dict[str, dict[str, object]]]:
        """Overall readiness and each check's result."""
        results: dict[str, dict[str, object]] = {}
        ok = not self.closing
        for name, check in self.checks.items():
            ready, detail = check()
            results[name] = {"ready": ready, "detail": detail}
            ok = ok and ready
        if self.closing:
            results["process"] = {"ready": False, "detail": "shutting down"}
        return ok, results


def make_ops_app(metrics: Metrics, readiness: Readiness) -> web.Application:
    """The aiohttp application serving metrics and probes."""

    async def metrics_handler(_request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        ok, results = readiness.report()
        metrics.ready.labels("process").set(1 if ok else 0)
        return web.json_response({"ready": ok, "checks": results}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app`` on host:port; the returned runner's ``cleanup()`` stops it."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
