"""The fake registry over HTTP (aiohttp), in the caller's event loop::

    async with FakeSchemaRegistry() as registry:
        ...  # CONNECTOR_SCHEMA_REGISTRY_URL = registry.url; registry.state.unavailable = True

Routes (Confluent REST API): ``POST /subjects/{subject}/versions``, ``GET /schemas/ids/{id}``,
``GET /subjects/{subject}/versions/{version}``, ``GET /subjects``. Errors are Confluent's
``{"error_code", "message"}`` bodies. With credentials, every request needs them (401, error 40101).
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final

from aiohttp import web

from connector.fake_registry.state import RegistryError, RegistryState

CONTENT_TYPE: Final = "application/vnd.schemaregistry.v1+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeSchemaRegistry:
    """One listener on 127.0.0.1 (port 0: a free port), optionally requiring basic auth."""

    def __init__(
        self, *, credentials: tuple[str, str] | None = None, port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """``ssl_context``: serve https with it (the URL says so)."""
        self.state = RegistryState()
        self._ssl = ssl_context
        self._credentials = credentials
        self._port = port
        self._runner: web.AppRunner | None = None
        self._url = ""

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8081``."""
        if not self._url:
            raise RuntimeError("FakeSchemaRegistry is not started")
        return self._url

    async def start(self) -> None:
        """Bind the listener."""
        app = web.Application(middlewares=[self._errors])
        app.router.add_post("/subjects/{subject}/versions", self._register)
        app.router.add_get("/schemas/ids/{id}", self._by_id)
        app.router.add_get("/subjects/{subject}/versions/{version}", self._version)
        app.router.add_get("/subjects", self._subjects)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, ssl_context=self._ssl)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._url = f"{'https' if self._ssl else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Close the listener."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSchemaRegistry:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            self._admit(request)
            return await handler(request)
        except RegistryError as exc:
            return _json({"error_code": exc.error_code, "message": exc.message}, exc.status)

    def _admit(self, request: web.Request) -> None:
        """Error 50003 during an outage on demand, 40101 without the configured credentials."""
        if self.state.unavailable:
            self.state.refused += 1
            raise RegistryError(503, 50003, "Error while forwarding the request to the leader")
        if self._credentials is not None and _basic_auth(request) != self._credentials:
            raise RegistryError(401, 40101, "Unauthorized")

    async def _register(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise RegistryError(422, 42201, "Invalid schema: the request body is not JSON") from None
        return _json({"id": self.state.register(request.match_info["subject"], body)})

    async def _by_id(self, request: web.Request) -> web.Response:
        text = request.match_info["id"]
        if not text.isdigit():
            raise RegistryError(404, 40403, f"Schema {text} not found")
        return _json(self.state.by_id(int(text)).answer())

    async def _version(self, request: web.Request) -> web.Response:
        return _json(self.state.version(request.match_info["subject"], request.match_info["version"]))

    async def _subjects(self, _request: web.Request) -> web.Response:
        return _json(sorted(self.state.subjects))


def _json(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, content_type=CONTENT_TYPE)


def _basic_auth(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password
