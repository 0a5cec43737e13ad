"""What every Track and App API request to the fake goes through before its handler does any work.

Order: added latency → credentials (401) → region (redirect or 401) → reset fault (connection aborted)
→ revoked key, scripted burst, rate limit, random 5xx (``FakeState.admit``). ``track_gate`` and
``app_gate`` return the workspace the request is served for, or the response that answers it instead.
A middleware counts every answer per workspace, region and status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
from aiohttp import web

from connector.fake_cio.state import UNKNOWN_WORKSPACE, FakeState, Refusal, Region, Workspace

# Region mismatch (Customer.io's "Track API: regions" docs). The Track API's redirect code and the US-on-EU answer are unconfirmed.
TRACK_REDIRECT_STATUS: Final = 301  # ASSUMED: EU Track credentials on the US host
TRACK_WRONG_REGION_STATUS: Final = 401  # ASSUMED: US Track credentials on the EU host
APP_REDIRECT_STATUS: Final = 301  # observed (customerio-node #134): EU App key on the US host
APP_WRONG_REGION_STATUS: Final = 401  # ASSUMED: US App key on the EU host
APP_REDIRECT_BODY: Final = orjson.dumps({"errors": [{"detail": "wrong datacenter", "status": "301"}]})
SEND_RETRY_AFTER: Final = True  # ASSUMED: 429s carry Retry-After (integer seconds)

_URLSAFE_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
_LINGER_RESET: Final = struct.pack("ii", 1, 0)


@dataclass(slots=True)
class Listener:
    """One regional listener: its region, the shared state, and both listeners' base URLs once bound."""

    region: Region
    state: FakeState
    urls: dict[str, str] = field(default_factory=dict)


LISTENER: Final = web.AppKey("listener", Listener)
_WORKSPACE: Final = web.RequestKey("fake_cio.workspace", str)
_RESET: Final = web.RequestKey("fake_cio.reset", bool)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response serialized with orjson."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(body=raw, status=status, headers=headers, content_type="application/json")


def _unauthorized() -> web.Response:
    return json_response({"meta": {"error": "Unauthorized request"}}, 401)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(site id, key) from a Basic ``Authorization`` header; URL-safe base64 is accepted too (go client)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip().encode().translate(_URLSAFE_TO_STANDARD), validate=True)
        site_id, sep, key = decoded.decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (site_id, key) if sep else None


def bearer_token(header: str) -> str | None:
    """The token of a Bearer ``Authorization`` header."""
    scheme, _, token = header.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _refused(refusal: Refusal) -> web.Response:
    if refusal.status == 401:
        return _unauthorized()
    headers = {}
    if refusal.retry_after is not None and SEND_RETRY_AFTER:
        headers["Retry-After"] = str(int(refusal.retry_after))
    message = "rate limit exceeded" if refusal.status == 429 else "fault injected by the fake"
    return json_response({"meta": {"error": message}}, refusal.status, headers)


def _abort(request: web.Request) -> None:
    # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


def _admit(
    request: web.Request, listener: Listener, ws: Workspace, api: Literal["track", "app"]
) -> Workspace | web.Response:
    state = listener.state
    if state.should_reset():
        _abort(request)
        request[_RESET] = True
        state.count(ws.name, listener.region, "reset")
        return web.Response(status=500)  # written to an aborted transport: nothing is sent
    refusal = state.admit(ws, api)
    return ws if refusal is None else _refused(refusal)


async def track_gate(request: web.Request) -> Workspace | web.Response:
    """Basic auth of the Track API, region rules, faults."""
    listener = request.app[LISTENER]
    state = listener.state
    if state.faults.latency_ms:
        await asyncio.sleep(state.latency_seconds())
    credentials = basic_credentials(request.headers.get("Authorization", ""))
    ws = state.track_workspace(*credentials) if credentials else None
    if ws is None:
        return _unauthorized()
    request[_WORKSPACE] = ws.name
    if ws.region != listener.region and request.path != "/api/v1/accounts/region":
        if ws.region == "us":
            return json_response({"meta": {"error": "Unauthorized request"}}, TRACK_WRONG_REGION_STATUS)
        state.count_redirect(ws)
        location = listener.urls[ws.region] + request.path_qs
        return json_response(b"{}", TRACK_REDIRECT_STATUS, {"Location": location})
    return _admit(request, listener, ws, "track")


async def app_gate(request: web.Request) -> Workspace | web.Response:
    """Bearer auth of the App API, region rules, faults."""
    listener = request.app[LISTENER]
    state = listener.state
    if state.faults.latency_ms:
        await asyncio.sleep(state.latency_seconds())
    token = bearer_token(request.headers.get("Authorization", ""))
    ws = state.app_workspace(token) if token else None
    if ws is None:
        return _unauthorized()
    request[_WORKSPACE] = ws.name
    if ws.region != listener.region:
        if ws.region == "us":
            return json_response({"meta": {"error": "Unauthorized request"}}, APP_WRONG_REGION_STATUS)
        state.count_redirect(ws)
        location = listener.urls[ws.region] + request.path_qs
        return json_response(APP_REDIRECT_BODY, APP_REDIRECT_STATUS, {"Location": location})
    return _admit(request, listener, ws, "app")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def count_answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count each Track/App API answer per workspace, region and status (resets are counted at abort)."""
    response = await handler(request)
    if not request.get(_RESET) and not request.path.startswith("/_fake/"):
        listener = request.app[LISTENER]
        listener.state.count(request.get(_WORKSPACE, UNKNOWN_WORKSPACE), listener.region, response.status)
    return response
