"""``cio-connector check``: validate every workspace's credentials and region, print one line each.

Per workspace, concurrently:

1. Track API: the region lookup (``GET /api/v1/accounts/region``). ``auto`` resolves through it; an
   explicit ``us``/``eu`` is checked with the same request on the pinned host, and an answer naming the
   other region fails the check (an EU account configured as ``us`` would otherwise send EU data to
   the US host, which redirects).
2. App API, only if ``app_api_key`` is set: ``GET /v1/workspaces`` on the pinned App host.

Then Kafka (``cio-connector check``; ``kafka.probe_cluster``), one row per check in a second table:
connect and authenticate, each input topic readable by the group, the DLQ and webhook topics writable.

Reasons are words for people (``Track API key rejected (401)``, ``App API key belongs to the other
region``, ``network: connection refused``), never a key: the printed table is masked against every
configured secret as a last line of defence.
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass
from typing import TextIO

from connector.cio.client import CustomerIOClient
from connector.cio.region import REGIONS, resolve_workspace, wrong_region_message
from connector.config import Secret, Settings, WorkspaceSettings
from connector.errors import AuthError, DeliveryError, TransientDeliveryError
from connector.metrics import Metrics

WORKSPACES_PATH = "/v1/workspaces"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome for one workspace: its pinned region (None if unknown), ok, and the reason in words."""

    workspace: str
    region: str | None
    ok: bool
    reason: str


async def check_workspaces(settings: Settings, client: CustomerIOClient) -> list[CheckResult]:
    """One CheckResult per configured workspace, in declaration order (checked concurrently)."""
    return list(await asyncio.gather(*(_check_one(settings, client, ws) for ws in settings.workspaces)))


async def _check_one(settings: Settings, client: CustomerIOClient, ws: WorkspaceSettings) -> CheckResult:
    try:
        resolved = await resolve_workspace(client, settings.endpoints, ws)
    except DeliveryError as exc:
        return CheckResult(ws.name, ws.region if ws.region in REGIONS else None, False, describe(exc, "Track API"))
    region = resolved.region
    if ws.region in REGIONS:
        # Pinned without a request: validate the Track key (and the region) with the same lookup.
        try:
            info = await client.get_region(resolved.track_url, resolved.track_auth, resolved.labels)
        except DeliveryError as exc:
            return CheckResult(ws.name, region, False, describe(exc, "Track API"))
        if info.region != region:
            return CheckResult(ws.name, region, False, wrong_region_message(info.region, region))
    if resolved.app_auth is not None:
        try:
            await client.get_app(
                resolved.app_url, WORKSPACES_PATH, resolved.app_auth, labels=resolved.labels, endpoint="workspaces"
            )
        except DeliveryError as exc:
            return CheckResult(ws.name, region, False, describe(exc, "App API"))
    return CheckResult(ws.name, region, True, "ok")


def describe(exc: DeliveryError, api: str) -> str:
    """A failure in words: rejected keys with their status, the wrong region, or the network problem."""
    if isinstance(exc, AuthError):
        if exc.status is not None and 300 <= exc.status < 400:
            return f"{api} key belongs to the other region"
        if exc.status is not None:
            return f"{api} key rejected ({exc.status})"
        return str(exc)
    if isinstance(exc, TransientDeliveryError) and exc.status is None:
        cause = exc.__cause__
        # The client maps aiohttp's connector error (an OSError subclass) to a generic message; refused
        # connections are common enough at start-up (wrong proxy port) to deserve their own words.
        if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
            return "network: connection refused"
        return str(exc)
    text = str(exc)
    if text.startswith(api):
        return text
    return f"{api} answered {exc.status}: {text}" if exc.status is not None else f"{api}: {text}"


def format_check_table(results: list[CheckResult]) -> str:
    """An aligned table: WORKSPACE, REGION, STATUS (``ok`` or ``FAILED: <reason>``); no trailing newline."""
    rows = [("WORKSPACE", "REGION", "STATUS")]
    rows += [(r.workspace, r.region or "-", "ok" if r.ok else f"FAILED: {r.reason}") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{w:<{widths[0]}}  {g:<{widths[1]}}  {s}" for w, g, s in rows)


async def check_kafka(settings: Settings) -> list[tuple[str, bool, str]]:
    """Kafka rows: connect and authenticate, input topics readable by the group, output topics writable."""
    from connector.kafka import probe_cluster

    writes = [settings.sink.dlq_topic, settings.webhook.topic]
    return await probe_cluster(settings.kafka, settings.sink.input_topics, settings.sink.group_id, writes)


def format_kafka_table(rows: list[tuple[str, bool, str]]) -> str:
    """An aligned table: KAFKA (what was checked), STATUS; no trailing newline."""
    lines = [("KAFKA", "STATUS"), *((what, _kafka_status(ok, why)) for what, ok, why in rows)]
    width = max(len(what) for what, _ in lines)
    return "\n".join(f"{what:<{width}}  {status}" for what, status in lines)


def _kafka_status(ok: bool, why: str) -> str:
    """``ok``, ``ok (missing; created at start-up)`` for an ok row with a remark, or ``FAILED: <reason>``."""
    if not ok:
        return f"FAILED: {why}"
    return "ok" if why == "ok" else f"ok ({why})"


async def run_check(settings: Settings, metrics: Metrics, out: TextIO, *, kafka: bool = False) -> int:
    """Check every workspace (and, with ``kafka``, the cluster), print the tables to ``out``; 0 if all are ok."""
    async with CustomerIOClient(settings.sink.request_timeout_seconds, metrics) as client:
        results = await check_workspaces(settings, client)
    for r in results:
        metrics.workspace_ready.labels(r.workspace).set(1 if r.ok else 0)
        if r.region is not None:
            metrics.workspace_info.labels(r.workspace, r.region).set(1)
    table = format_check_table(results) if results else "no workspaces configured"
    kafka_ok = True
    if kafka:
        rows = await check_kafka(settings)
        kafka_ok = all(ok for _, ok, _ in rows)
        table += "\n\n" + format_kafka_table(rows)
    out.write(_mask(table, settings) + "\n")
    return 0 if results and all(r.ok for r in results) and kafka_ok else 1


def _mask(text: str, settings: Settings) -> str:
    secrets: list[Secret] = []
    for ws in settings.workspaces:
        secrets += [s for s in (ws.api_key, ws.app_api_key) if s is not None]
    secrets += [s for s in (settings.kafka.sasl_password, settings.kafka.sasl_oauth_client_secret) if s is not None]
    for secret in secrets:
        value = secret.reveal()
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text
