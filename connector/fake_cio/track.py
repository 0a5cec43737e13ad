"""Track API handlers of the fake: v2 batch and entity, the v1 person endpoints, region discovery.

Manual segment calls and delivery metrics change ``FakeState`` (``segment_members``, ``metrics``) and
are recorded too, as ``{"type": "segment", "action": "add_customers", "segment_id", "id_type", "ids"}``
and ``{"type": "metric", …body}``, so tests can check their place among a person's operations.

Accepted v1 calls are recorded in the v2 operation shape (``api: "v1"``) so tests read one format:
``PUT /api/v1/customers/42`` with ``{"plan": "pro"}`` is recorded as
``{"type": "person", "action": "identify", "identifiers": {"id": "42"}, "attributes": {"plan": "pro"}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from connector.fake_cio.gate import LISTENER, json_response, track_gate
from connector.fake_cio.rules import (
    MAX_OPERATION_BYTES,
    RuleError,
    check_identifier,
    check_operation,
    error,
    parse_batch,
)
from connector.fake_cio.rules_v1 import (
    check_v1_delete_device,
    check_v1_device,
    check_v1_event,
    check_v1_identify,
    check_v1_merge,
    check_v1_metric,
    check_v1_segment,
    parse_segment_id,
)
from connector.fake_cio.state import Workspace

_OK = b"{}"


def _v2_error(problem: RuleError, status: int = 400) -> web.Response:
    return json_response({"errors": [problem]}, status)


async def batch(request: web.Request) -> web.Response:
    """``POST /api/v2/batch``: 200 all accepted, 207 naming rejected ``batch_index``es, 400 nothing accepted."""
    ws = await track_gate(request)
    if isinstance(ws, web.Response):
        return ws
    parsed = parse_batch(await request.read())
    if isinstance(parsed, dict):
        return _v2_error(parsed)
    state = request.app[LISTENER].state
    poison = state.faults.poison_names
    if poison and state.faults.poison_status == 400 and any(_poisoned(op, poison) for op in parsed):
        return _v2_error(error("invalid", "name", "operation rejected (poison fault)"))
    accepted: list[bytes] = []
    errors: list[dict[str, Any]] = []
    now = state.clock()
    for index, op in enumerate(parsed):
        raw = orjson.dumps(op)  # its size is a rule, and it is recorded serialized
        problem = check_operation(op, len(raw))
        if problem is None and poison and _poisoned(op, poison):
            problem = error("invalid", "name", "operation rejected (poison fault)")
        if problem is None:
            if not state.ignores(ws, op, now):
                accepted.append(raw)
        else:
            errors.append({"batch_index": index, **problem})
    state.record_operations(ws, "v2", accepted, now)
    if errors:
        state.count_rejected(ws, len(errors))
        return json_response({"errors": errors}, 207)
    return json_response(_OK)


def _poisoned(op: Any, names: tuple[str, ...]) -> bool:
    return isinstance(op, dict) and op.get("name") in names


async def entity(request: web.Request) -> web.Response:
    """``POST /api/v2/entity``: one operation of at most 32 KB; 200 or 400."""
    ws = await track_gate(request)
    if isinstance(ws, web.Response):
        return ws
    body = await request.read()
    state = request.app[LISTENER].state
    if len(body) > MAX_OPERATION_BYTES:
        problem: RuleError | None = error("too_large", "", f"request larger than {MAX_OPERATION_BYTES} bytes")
    else:
        try:
            op = orjson.loads(body)
        except orjson.JSONDecodeError:
            problem = error("invalid_json", "", "body is not valid JSON")
        else:
            problem = check_operation(op, len(body))
    if problem is not None:
        state.count_rejected(ws, 1)
        return _v2_error(problem)
    now = state.clock()
    if not state.ignores(ws, op, now):
        state.record_operations(ws, "v2", [bytes(body)], now)
    return json_response(_OK)


async def region(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/region`` on either host: the workspace's region and Track URL."""
    ws = await track_gate(request)
    if isinstance(ws, web.Response):
        return ws
    url = request.app[LISTENER].urls[ws.region]
    return json_response({"url": url, "region": ws.region, "environment_id": ws.environment_id})


# --- v1 -----------------------------------------------------------------------------------------------


def v1_identifiers(value: str) -> dict[str, str]:
    """A v1 path identifier's type, inferred from its shape (as Customer.io does): ``cio_…``, email-looking, else id."""
    if value.startswith("cio_"):
        return {"cio_id": value[4:]}
    return {"email": value} if "@" in value else {"id": value}


def _person(action: str, identifier: str, **fields: Any) -> dict[str, Any]:
    return {"type": "person", "action": action, "identifiers": v1_identifiers(identifier), **fields}


def _v1_event_op(identifiers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"type": "person", "action": body.get("type", "event"), "identifiers": identifiers}
    op["name"] = body["name"]
    op.update({k: body[k] for k in ("id", "timestamp") if k in body})
    if "data" in body:
        op["attributes"] = body["data"]
    return op


def _v1_device_op(identifier: str, body: dict[str, Any]) -> dict[str, Any]:
    device = body["device"]
    fields = {k: device[k] for k in ("platform", "last_used", "attributes") if k in device}
    return _person("add_device", identifier, device={"token": device["id"], **fields})


async def _v1(
    request: web.Request,
    check: Callable[[Any], RuleError | None],
    to_operation: Callable[[Any], dict[str, Any]],
    *,
    has_body: bool = True,
    error_key: str = "errors",
    gated: Workspace | None = None,
) -> web.Response:
    ws = gated if gated is not None else await track_gate(request)
    if isinstance(ws, web.Response):
        return ws
    body: Any = None
    problem: RuleError | None = None
    if has_body:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            problem = error("invalid_json", "", "body is not valid JSON")
    problem = problem or check(body)
    state = request.app[LISTENER].state
    if problem is not None:
        state.count_rejected(ws, 1)
        message = f"{problem['field']}: {problem['message']}" if problem["field"] else problem["message"]
        detail: str | list[str] = message if error_key == "error" else [message]
        return json_response({"meta": {error_key: detail}}, 400)
    state.record_operations(ws, "v1", [orjson.dumps(to_operation(body))], state.clock())
    return json_response(_OK)


async def v1_identify(request: web.Request) -> web.Response:
    """``PUT /api/v1/customers/{identifier}``."""
    ident = request.match_info["identifier"]
    return await _v1(request, lambda b: check_v1_identify(ident, b), lambda b: _person("identify", ident, attributes=b))


async def v1_delete(request: web.Request) -> web.Response:
    """``DELETE /api/v1/customers/{identifier}``."""
    ident = request.match_info["identifier"]
    return await _v1(
        request, lambda _: check_identifier(ident, "identifier"), lambda _: _person("delete", ident), has_body=False
    )


async def v1_suppression(request: web.Request) -> web.Response:
    """``POST /api/v1/customers/{identifier}/suppress`` and ``/unsuppress``."""
    ident = request.match_info["identifier"]
    action = request.match_info["action"]
    return await _v1(
        request, lambda _: check_identifier(ident, "identifier"), lambda _: _person(action, ident), has_body=False
    )


async def v1_event(request: web.Request) -> web.Response:
    """``POST /api/v1/customers/{identifier}/events``."""
    ident = request.match_info["identifier"]
    return await _v1(request, lambda b: check_v1_event(ident, b), lambda b: _v1_event_op(v1_identifiers(ident), b))


async def v1_anonymous_event(request: web.Request) -> web.Response:
    """``POST /api/v1/events``: recorded with ``{"anonymous_id"}`` identifiers, or none for invite events."""

    def to_operation(body: dict[str, Any]) -> dict[str, Any]:
        anonymous_id = body.get("anonymous_id")
        return _v1_event_op({"anonymous_id": anonymous_id} if anonymous_id else {}, body)

    return await _v1(request, lambda b: check_v1_event(None, b), to_operation)


async def v1_add_device(request: web.Request) -> web.Response:
    """``PUT /api/v1/customers/{identifier}/devices``."""
    ident = request.match_info["identifier"]
    return await _v1(request, lambda b: check_v1_device(ident, b), lambda b: _v1_device_op(ident, b))


async def v1_delete_device(request: web.Request) -> web.Response:
    """``DELETE /api/v1/customers/{identifier}/devices/{token}``."""
    ident, token = request.match_info["identifier"], request.match_info["token"]
    return await _v1(
        request,
        lambda _: check_v1_delete_device(ident, token),
        lambda _: _person("delete_device", ident, device={"token": token}),
        has_body=False,
    )


async def v1_merge(request: web.Request) -> web.Response:
    """``POST /api/v1/merge_customers``; errors use the ``{"meta": {"error": …}}`` shape."""
    return await _v1(
        request,
        check_v1_merge,
        lambda b: {"type": "person", "action": "merge", "primary": b["primary"], "secondary": b["secondary"]},
        error_key="error",
    )


async def v1_segment(request: web.Request) -> web.Response:
    """``POST /api/v1/segments/{segment_id}/add_customers|remove_customers?id_type=id|email|cio_id``."""
    gated = await track_gate(request)
    if isinstance(gated, web.Response):
        return gated
    ws, state = gated, request.app[LISTENER].state
    raw_id, action = request.match_info["segment_id"], request.match_info["action"]
    id_type = request.query.get("id_type")

    def apply(body: dict[str, Any]) -> dict[str, Any]:
        segment_id, kind = parse_segment_id(raw_id) or 0, id_type or "id"  # both checked by check_v1_segment
        state.change_segment(ws, segment_id, action, kind, body["ids"])
        return {"type": "segment", "action": action, "segment_id": segment_id, "id_type": kind, "ids": body["ids"]}

    return await _v1(request, lambda b: check_v1_segment(raw_id, id_type, b), apply, gated=ws)


async def v1_metric(request: web.Request) -> web.Response:
    """``POST /api/v1/metrics``. The spec needs no auth; the fake asks for the Track credentials the
    connector sends (as Segment's action does) to know the workspace."""
    gated = await track_gate(request)
    if isinstance(gated, web.Response):
        return gated
    ws, state = gated, request.app[LISTENER].state

    def record(body: dict[str, Any]) -> dict[str, Any]:
        state.record_metric(ws, body)
        return {"type": "metric", **body}

    return await _v1(request, check_v1_metric, record, gated=ws)


def add_routes(app: web.Application) -> None:
    """Register the Track API routes."""
    app.router.add_post("/api/v2/batch", batch)
    app.router.add_post("/api/v2/entity", entity)
    app.router.add_get("/api/v1/accounts/region", region)
    app.router.add_put("/api/v1/customers/{identifier}", v1_identify)
    app.router.add_delete("/api/v1/customers/{identifier}", v1_delete)
    app.router.add_post("/api/v1/customers/{identifier}/{action:suppress|unsuppress}", v1_suppression)
    app.router.add_post("/api/v1/customers/{identifier}/events", v1_event)
    app.router.add_post("/api/v1/events", v1_anonymous_event)
    app.router.add_put("/api/v1/customers/{identifier}/devices", v1_add_device)
    app.router.add_delete("/api/v1/customers/{identifier}/devices/{token}", v1_delete_device)
    app.router.add_post("/api/v1/merge_customers", v1_merge)
    app.router.add_post("/api/v1/segments/{segment_id}/{action:add_customers|remove_customers}", v1_segment)
    app.router.add_post("/api/v1/metrics", v1_metric)
