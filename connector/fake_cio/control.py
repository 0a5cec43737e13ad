"""The fake's own control API under ``/_fake/`` (both ports): read what it accepted, switch faults.

    GET    /_fake/operations[?workspace=NAME]  → [{"workspace", "region", "api", "operation", "received_at"}]
    DELETE /_fake/operations                   → {}  (forgets operations, transactional emails and metrics)
    GET    /_fake/segments                     → {"segments": {ws: {segment_id: [[id_type, id]]}},
                                                  "metrics": [{"workspace", "region", "delivery_id", "metric", …}]}
    GET    /_fake/stats                        → {"requests": {ws: {region: {status: n}}}, "redirected": {ws: n},
                                                  "accepted_operations": {ws: n}, "rejected_operations": {ws: n},
                                                  "ignored_operations": {ws: n} (stale identifies),
                                                  "throttled": {ws: [{"at", "status", "retry_after",
                                                                      "next_request_at"}]}}
    DELETE /_fake/stats                        → {}
    GET    /_fake/faults                       → {"error_ratio", "reset_ratio", "latency_ms",
                                                  "rate_limit_per_second", "app_rate_limit_per_second",
                                                  "bursts": [{"workspace", "remaining", "status", "retry_after"}],
                                                  "revoked": [ws]}
    POST   /_fake/faults   any of the fault fields, and/or
                           "burst": {"workspace"?: ws|null, "count": n, "status"?: 429, "retry_after"?: 1|null}
                                               → the GET /_fake/faults shape; 400 {"error": …} if invalid
    POST   /_fake/workspaces/{name}/revoke     → {} (its keys answer 401); 404 unknown name
    POST   /_fake/workspaces/{name}/restore    → {}
    GET    /_fake/transactional                → [{"workspace", "region", "delivery_id", "queued_at", "message"}]

``next_request_at`` is when the workspace's next request arrived after that answer (null until then), so
a test can check ``next_request_at - at >= retry_after``.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from connector.fake_cio.gate import LISTENER, json_response
from connector.fake_cio.state import apply_fault_changes

_OK = b"{}"


async def get_operations(request: web.Request) -> web.Response:
    """Accepted operations, optionally of one workspace."""
    return json_response(request.app[LISTENER].state.operations_for(request.query.get("workspace")))


async def delete_operations(request: web.Request) -> web.Response:
    """Forget accepted operations and emails."""
    request.app[LISTENER].state.clear_operations()
    return json_response(_OK)


async def get_segments(request: web.Request) -> web.Response:
    """Manual segment membership and accepted delivery metrics."""
    state = request.app[LISTENER].state
    return json_response({"segments": state.describe_segments(), "metrics": state.metrics})


async def get_stats(request: web.Request) -> web.Response:
    """Request counters and the 429 timeline."""
    return json_response(request.app[LISTENER].state.stats())


async def delete_stats(request: web.Request) -> web.Response:
    """Reset the counters."""
    request.app[LISTENER].state.clear_stats()
    return json_response(_OK)


async def get_faults(request: web.Request) -> web.Response:
    """Current faults, bursts and revoked workspaces."""
    return json_response(request.app[LISTENER].state.describe_faults())


async def post_faults(request: web.Request) -> web.Response:
    """Change faults; fields not given keep their value."""
    state = request.app[LISTENER].state
    try:
        body = orjson.loads(await request.read())
        if not isinstance(body, dict):
            raise TypeError("body must be a JSON object")  # noqa: TRY301 - one error path for all bad input
        apply_fault_changes(state, body)
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        return json_response({"error": str(exc)}, 400)
    return json_response(state.describe_faults())


async def revoke(request: web.Request) -> web.Response:
    """Make a workspace's keys answer 401 (``/revoke``) or accept them again (``/restore``)."""
    state = request.app[LISTENER].state
    name = request.match_info["name"]
    try:
        (state.revoke if request.match_info["action"] == "revoke" else state.restore)(name)
    except KeyError:
        return json_response({"error": f"unknown workspace {name!r}"}, 404)
    return json_response(_OK)


async def transactional(request: web.Request) -> web.Response:
    """Transactional emails accepted, with their delivery ids."""
    return json_response(request.app[LISTENER].state.emails)


def add_routes(app: web.Application) -> None:
    """Register the control routes."""
    app.router.add_get("/_fake/operations", get_operations)
    app.router.add_delete("/_fake/operations", delete_operations)
    app.router.add_get("/_fake/segments", get_segments)
    app.router.add_get("/_fake/stats", get_stats)
    app.router.add_delete("/_fake/stats", delete_stats)
    app.router.add_get("/_fake/faults", get_faults)
    app.router.add_post("/_fake/faults", post_faults)
    app.router.add_post("/_fake/workspaces/{name}/{action:revoke|restore}", revoke)
    app.router.add_get("/_fake/transactional", transactional)
