"""App API handlers of the fake (Bearer app key): the workspace list, transactional email and a person's
attributes (App API docs)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from connector.fake_cio.gate import LISTENER, app_gate, json_response
from connector.fake_cio.people import ID_TYPES, find_person
from connector.fake_cio.rules import RuleError, error
from connector.fake_cio.rules_v1 import MAX_TRANSACTIONAL_BYTES, check_transactional_email


async def workspaces(request: web.Request) -> web.Response:
    """``GET /v1/workspaces``: the key's workspace (the connector's cheap credential check)."""
    ws = await app_gate(request)
    if isinstance(ws, web.Response):
        return ws
    return json_response({"workspaces": [{"id": str(ws.environment_id), "name": ws.name}]})


async def send_email(request: web.Request) -> web.Response:
    """``POST /v1/send/email``: 200 ``{delivery_id, queued_at}``, 400 ``{"meta": {"error": …}}``."""
    ws = await app_gate(request)
    if isinstance(ws, web.Response):
        return ws
    raw = await request.read()
    body: Any = None
    problem: RuleError | None = None
    if len(raw) <= MAX_TRANSACTIONAL_BYTES:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            problem = error("invalid_json", "", "body is not valid JSON")
    problem = problem or check_transactional_email(body, len(raw), request.app[LISTENER].state.clock())
    if problem is not None:
        message = f"{problem['field']}: {problem['message']}" if problem["field"] else problem["message"]
        return json_response({"meta": {"error": message}}, 400)
    return json_response(request.app[LISTENER].state.record_email(ws, body))


async def person_attributes(request: web.Request) -> web.Response:
    """``GET /v1/customers/{customer_id}/attributes?id_type=id|email|phone|cio_id`` (default ``id``):
    200 ``{"customer": …}``, 400 for another id_type, 404 for an unknown person (its body's shape is
    unconfirmed; the status is documented)."""
    ws = await app_gate(request)
    if isinstance(ws, web.Response):
        return ws
    id_type = request.query.get("id_type", "id")
    if id_type not in ID_TYPES:
        return json_response({"meta": {"error": "id_type: must be id, email, phone or cio_id"}}, 400)
    state = request.app[LISTENER].state
    customer = find_person(state.operations_for(ws.name), id_type, request.match_info["customer_id"])
    if customer is None:
        return json_response({"errors": [{"detail": "customer not found", "status": "404"}]}, 404)
    return json_response({"customer": customer})


def add_routes(app: web.Application) -> None:
    """Register the App API routes."""
    app.router.add_get("/v1/workspaces", workspaces)
    app.router.add_get("/v1/customers/{customer_id}/attributes", person_attributes)
    app.router.add_post("/v1/send/email", send_email)
