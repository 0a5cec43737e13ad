"""The only aiohttp client code: one request to Customer.io per call, no retries.

Statuses and aiohttp exceptions become values or ``errors.py`` exceptions here, so nothing above this
module knows aiohttp:

    200/204            → success value
    207                → BatchResponse with the per-item errors (batch_index, reason, field, message)
    3xx                → AuthError: a region redirect (wrong host for the account); never followed, so an EU
                         workspace's data never transits the US endpoint
    401/403            → AuthError
    408/429/5xx        → TransientDeliveryError (with Retry-After when sent)
    other 4xx          → PermanentDeliveryError with Customer.io's message
    timeouts, resets   → TransientDeliveryError(status=None)
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from connector.config import Secret
from connector.errors import AuthError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from connector.metrics import Metrics, status_class

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
MAX_ERROR_TEXT = 300


def basic_auth(site_id: str, api_key: Secret) -> str:
    """The Track API ``Authorization`` header value (standard base64, as Customer.io documents)."""
    token = base64.b64encode(f"{site_id}:{api_key.reveal()}".encode()).decode("ascii")
    return f"Basic {token}"


def bearer_auth(app_api_key: Secret) -> str:
    """The App API ``Authorization`` header value."""
    return f"Bearer {app_api_key.reveal()}"


@dataclass(frozen=True, slots=True)
class ItemError:
    """One rejected operation of a batch, as Customer.io explained it."""

    batch_index: int | None
    reason: str
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class BatchResponse:
    """A batch Customer.io accepted, wholly (status 200) or but for ``item_errors`` (status 207)."""

    status: int
    item_errors: tuple[ItemError, ...] = ()


@dataclass(frozen=True, slots=True)
class RegionInfo:
    """Answer of ``GET /api/v1/accounts/region``."""

    region: str
    url: str
    environment_id: int | None


@dataclass(frozen=True, slots=True)
class Labels:
    """Metric labels of one workspace's requests."""

    workspace: str
    region: str


def parse_item_errors(body: bytes) -> tuple[ItemError, ...]:
    """Customer.io's v2 error list (``{"errors": [...]}``); tolerant of missing fields and other shapes."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ()
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ()
    items = []
    for err in errors:
        if not isinstance(err, dict):
            continue
        index = err.get("batch_index")
        items.append(
            ItemError(
                batch_index=index if isinstance(index, int) and not isinstance(index, bool) else None,
                reason=str(err.get("reason", "")),
                field=str(err.get("field", "")),
                message=str(err.get("message", err.get("detail", "")))[:MAX_ERROR_TEXT],
            )
        )
    return tuple(items)


def error_text(body: bytes) -> str:
    """A short human message from any of Customer.io's error body shapes (Track v1, v2, App API)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    if isinstance(doc, dict):
        meta = doc.get("meta")
        if isinstance(meta, dict):
            if "error" in meta:
                return str(meta["error"])[:MAX_ERROR_TEXT]
            if isinstance(meta.get("errors"), list):
                return "; ".join(map(str, meta["errors"]))[:MAX_ERROR_TEXT]
        items = parse_item_errors(body)
        if items:
            return "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in items)[:MAX_ERROR_TEXT]
    return str(doc)[:MAX_ERROR_TEXT]


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta form only; an HTTP date is ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class CustomerIOClient:
    """Sends single requests to the Track and App APIs over one shared connection pool."""

    def __init__(self, timeout_seconds: float, metrics: Metrics, *, connections: int = 256) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._metrics = metrics
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> CustomerIOClient:
        connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"User-Agent": "cio-connector", "Accept": "application/json"},
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
            skip_auto_headers=("Accept-Encoding",),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        url: str,
        *,
        auth: str,
        endpoint: str,
        labels: Labels,
        body: bytes | None = None,
    ) -> tuple[int, bytes, str | None]:
        """(status, body, Retry-After) of one request, or TransientDeliveryError for network failures."""
        if self._session is None:
            raise RuntimeError("CustomerIOClient used outside 'async with'")
        headers = {"Authorization": auth}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        status: int | None = None
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                payload = await response.read()
                return status, payload, response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientDeliveryError(_network_message(exc), status=None) from exc
        finally:
            m = self._metrics
            m.requests.labels(labels.workspace, labels.region, endpoint, status_class(status)).inc()
            m.responses_by_status.labels(labels.workspace, endpoint, str(status or "network")).inc()
            m.request_duration.labels(labels.workspace, endpoint).observe(time.perf_counter() - started)

    async def post_batch(self, track_url: str, auth: str, body: bytes, labels: Labels) -> BatchResponse:
        """``POST /api/v2/batch``: a BatchResponse, or a DeliveryError saying whether to retry."""
        status, payload, retry_after = await self._request(
            "POST", f"{track_url}/api/v2/batch", auth=auth, endpoint="batch", labels=labels, body=body
        )
        if status in (200, 202, 204):
            return BatchResponse(status)
        if status == 207:
            return BatchResponse(status, parse_item_errors(payload))
        raise classify_failure(status, payload, retry_after, api="Track API")

    async def post_track_v1(
        self, track_url: str, auth: str, path: str, body: bytes, labels: Labels, *, endpoint: str
    ) -> BatchResponse:
        """A Track API v1 POST (``/api/v1/segments/…``, ``/api/v1/metrics``): all or nothing, no 207."""
        status, payload, retry_after = await self._request(
            "POST", f"{track_url}{path}", auth=auth, endpoint=endpoint, labels=labels, body=body
        )
        if 200 <= status < 300:
            return BatchResponse(200)
        raise classify_failure(status, payload, retry_after, api="Track API")

    async def get_region(self, track_url: str, auth: str, labels: Labels) -> RegionInfo:
        """``GET /api/v1/accounts/region``: the account's region, host and workspace id."""
        status, payload, retry_after = await self._request(
            "GET", f"{track_url}/api/v1/accounts/region", auth=auth, endpoint="region", labels=labels
        )
        if status != 200:
            raise classify_failure(status, payload, retry_after, api="Track API")
        try:
            doc = orjson.loads(payload)
            env_id = doc.get("environment_id")
            return RegionInfo(
                region=str(doc["region"]).lower(),
                url=str(doc["url"]).rstrip("/"),
                environment_id=int(env_id) if env_id is not None else None,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise PermanentDeliveryError("region endpoint answered an unexpected body", status=status) from None

    async def get_app(self, app_url: str, path: str, auth: str, *, labels: Labels, endpoint: str) -> Any:
        """A GET on the App API (e.g. ``/v1/workspaces`` to validate a key); the decoded JSON body."""
        status, payload, retry_after = await self._request(
            "GET", f"{app_url}{path}", auth=auth, endpoint=endpoint, labels=labels
        )
        if status != 200:
            raise classify_failure(status, payload, retry_after, api="App API")
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None

    async def post_app(self, app_url: str, path: str, auth: str, body: bytes, *, labels: Labels, endpoint: str) -> Any:
        """A POST on the App API (e.g. ``/v1/send/email``); the decoded JSON body of a 2xx."""
        status, payload, retry_after = await self._request(
            "POST", f"{app_url}{path}", auth=auth, endpoint=endpoint, labels=labels, body=body
        )
        if not 200 <= status < 300:
            raise classify_failure(status, payload, retry_after, api="App API")
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None


def classify_failure(status: int, payload: bytes, retry_after: str | None, *, api: str) -> DeliveryError:
    """The error for a non-success status: transient, permanent or credentials."""
    if status in (401, 403):
        return AuthError(f"{api} key rejected ({status})", status=status)
    if 300 <= status < 400:
        text = error_text(payload)
        detail = f": {text}" if text else ""
        return AuthError(f"{api} redirected to another region ({status}){detail}; set the region", status=status)
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientDeliveryError(
            f"{api} answered {status}", status=status, retry_after=retry_after_seconds(retry_after)
        )
    return PermanentDeliveryError(error_text(payload) or f"{api} answered {status}", status=status)


def _network_message(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "network: request timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"network: cannot connect ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return "network: connection reset"
    return f"network: {type(exc).__name__}"
