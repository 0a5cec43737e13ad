"""The Schema Registry client: writer schemas by id, fetched once each, kept in a bounded LRU cache (I/O).

``GET /schemas/ids/{id}`` of the Confluent REST API is used, and ``GET /subjects/{s}/versions/{v}`` for
the schemas an Avro schema references (Confluent, Redpanda, Apicurio's
``/apis/ccompat/v7``, Karapace all serve it). Invariants:
- an id is fetched by at most one request at a time, and not again while it stays cached;
- a 404 carrying the registry's own ``error_code`` (404xx: schema, subject or version not found) is an
  answer (``schema_not_found``, cached like a schema: ids are never reused) once ``NOT_FOUND_LOOKUPS``
  lookups in a row, spaced by the retry backoff, gave it: a new id may not have reached the replica that
  answers yet (its records wait meanwhile, like in an outage); a 404 without one is not the
  registry speaking (a URL missing its path, a proxy) and is retried like an outage; every other failure (unreachable, timeout, 5xx, 401/403, a body that is not JSON) is retried with the sink's retry
  policy until it succeeds: the records needing that schema wait, they are never dead-lettered for it;
- the password is sent only in the Authorization header; it never appears in logs or errors.

Decoding with the schemas is ``connector.sink.framed`` (pure).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import aiohttp
import orjson

from connector.config import SchemaRegistrySettings
from connector.logs import get_logger
from connector.metrics import Metrics
from connector.sink.framed import Schema, UnusableSchema, parse_registered
from connector.sink.retry import RetryPolicy, with_retries

log = get_logger("sink.schema_registry")

REQUEST_TIMEOUT_SECONDS: Final = 10.0
# Lookups answering "not found" before it is believed: a schema registered a moment ago (a new version
# being rolled out) may not have reached the replica the connector asks; ids are immutable, so once
# believed, the answer is cached.
NOT_FOUND_LOOKUPS: Final = 3
MAX_REFERENCE_DEPTH: Final = 16  # references of references…: a cycle or a runaway chain stops here
ACCEPT: Final = "application/vnd.schemaregistry.v1+json, application/json"


class RegistryUnavailableError(Exception):
    """The registry gave no usable answer this time (network, timeout, 5xx, auth): retried."""


class SchemaRegistry:
    """Schemas by id for the runner: ``cached`` (synchronous, per record) and ``request`` (starts a fetch)."""

    def __init__(
        self,
        settings: SchemaRegistrySettings,
        policy: RetryPolicy,
        *,
        on_fetched: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
    ) -> None:
        """``on_fetched`` is called after each fetch lands in the cache (records waiting for it may go on);
        ``metrics`` counts lookups by outcome and shows the fetches in progress (a registry outage)."""
        if settings.url is None:
            raise ValueError("SchemaRegistry needs CONNECTOR_SCHEMA_REGISTRY_URL")
        self._base = settings.url.rstrip("/")
        parts = urllib.parse.urlsplit(self._base)
        self._shown = f"{parts.scheme}://{parts.hostname}"  # in errors and logs: never a userinfo password
        self._settings = settings
        self._policy = policy
        self._on_fetched = on_fetched
        self._cache: OrderedDict[int, Schema] = OrderedDict()
        self._fetching: dict[int, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._metrics = metrics

    def cached(self, schema_id: int) -> Schema | None:
        """The schema of ``schema_id`` if cached (marked recently used), else None."""
        schema = self._cache.get(schema_id)
        if schema is not None:
            self._cache.move_to_end(schema_id)
        return schema

    def request(self, schema_id: int) -> None:
        """Fetch ``schema_id`` in the background unless it is cached or already being fetched."""
        if schema_id in self._cache or schema_id in self._fetching:
            return
        task = asyncio.create_task(self._fetch_until_answered(schema_id), name=f"schema-{schema_id}")
        self._fetching[schema_id] = task
        task.add_done_callback(lambda done: self._fetched(schema_id, done))
        self._show_fetching()

    async def fetch(self, schema_id: int) -> Schema:
        """The schema of ``schema_id``, from the cache or one request (no retry: ``cio-connector map`` asks
        once and reports the failure); RegistryUnavailableError when the registry gave no usable answer."""
        schema = self.cached(schema_id)
        if schema is None:
            schema = await self._fetch(schema_id)
            self._remember(schema_id, schema)
        return schema

    @property
    def fetching(self) -> int:
        """Fetches in progress (each retried until answered)."""
        return len(self._fetching)

    def _fetched(self, schema_id: int, task: asyncio.Task[None]) -> None:
        self._fetching.pop(schema_id, None)
        self._show_fetching()
        if not task.cancelled() and task.exception() is not None:  # a bug: the next record asks again
            log.error("Schema fetch failed (a bug).", schema_id=schema_id, error=type(task.exception()).__name__)

    async def close(self) -> None:
        """Cancel the fetches in progress and close the HTTP session."""
        tasks = list(self._fetching.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _fetch_until_answered(self, schema_id: int) -> None:
        def on_retry(attempt: int, exc: RegistryUnavailableError, delay: float) -> None:
            log.warning(
                "Schema Registry unavailable; records needing this schema wait.",
                schema_id=schema_id,
                attempt=attempt,
                retry_in_seconds=round(delay, 2),
                error=str(exc),
            )

        not_found = 0

        async def lookup() -> Schema:
            nonlocal not_found
            schema = await self._fetch(schema_id)
            if isinstance(schema, UnusableSchema) and schema.reason == "schema_not_found":
                not_found += 1
                if not_found < NOT_FOUND_LOOKUPS:
                    raise RegistryUnavailableError(
                        f"schema id {schema_id} not found (lookup {not_found} of {NOT_FOUND_LOOKUPS}: asked again "
                        "in case the registry has not caught up with a new schema)"
                    )
            return schema

        schema = await with_retries(lookup, RegistryUnavailableError, self._policy, on_retry=on_retry)
        self._remember(schema_id, schema)
        if isinstance(schema, UnusableSchema):
            log.warning(
                "Schema cannot be used; its records are dead-lettered.", schema_id=schema_id, reason=schema.reason
            )
        self._on_fetched()

    def _show_fetching(self) -> None:
        if self._metrics is not None:
            self._metrics.schema_fetches.set(len(self._fetching))

    def _remember(self, schema_id: int, schema: Schema) -> None:
        self._cache[schema_id] = schema
        while len(self._cache) > self._settings.cache_size:
            self._cache.popitem(last=False)

    async def _fetch(self, schema_id: int) -> Schema:
        """One lookup (with the schemas it references), counted by outcome."""
        try:
            schema = await self._lookup(schema_id)
        except RegistryUnavailableError:
            self._count("unavailable")
            raise
        self._count(schema.reason if isinstance(schema, UnusableSchema) else "ok")
        return schema

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.schema_lookups.labels(outcome).inc()

    async def _lookup(self, schema_id: int) -> Schema:
        answer = await self._get(f"/schemas/ids/{schema_id}")
        if answer is None:
            return UnusableSchema(schema_id, "schema_not_found", f"schema id {schema_id}: not found in the registry")
        references = answer.get("references") if isinstance(answer, dict) else None
        if not references or (answer.get("schemaType") or "AVRO") != "AVRO":
            return parse_registered(schema_id, answer)
        texts: list[str] = []
        missing = await self._referenced(references, texts, set(), MAX_REFERENCE_DEPTH)
        if missing is not None:
            return UnusableSchema(schema_id, "schema_not_found", f"schema id {schema_id}: {missing}")
        return parse_registered(schema_id, answer, texts)

    async def _referenced(
        self, references: Any, texts: list[str], seen: set[tuple[str, str]], depth: int
    ) -> str | None:
        """Append the referenced schemas' texts, dependencies first; what is missing, if anything."""
        if depth == 0:
            return f"references nested deeper than {MAX_REFERENCE_DEPTH}"
        for reference in references if isinstance(references, list) else ():
            if not isinstance(reference, dict):
                continue
            key = (str(reference.get("subject")), str(reference.get("version")))
            if key in seen:
                continue
            seen.add(key)
            subject = urllib.parse.quote(key[0], safe="")
            answer = await self._get(f"/subjects/{subject}/versions/{urllib.parse.quote(key[1], safe='')}")
            if answer is None or not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
                return f"referenced subject {key[0][:100]!r} version {key[1][:20]} not found"
            missing = await self._referenced(answer.get("references"), texts, seen, depth - 1)
            if missing is not None:
                return missing
            texts.append(answer["schema"])
        return None

    async def _get(self, path: str) -> Any:
        """The registry's JSON answer at ``path``; None for a 404; RegistryUnavailableError otherwise."""
        session = self._session or self._open_session()
        try:
            async with session.get(self._base + path) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RegistryUnavailableError(f"{type(exc).__name__} from {self._shown}") from None
        if status == 404 and _registry_not_found(body):
            return None
        if status == 404:
            raise RegistryUnavailableError(
                f"HTTP 404 without a Schema Registry error code from {self._shown}: "
                "is CONNECTOR_SCHEMA_REGISTRY_URL the registry's base URL?"
            )
        if status != 200:
            raise RegistryUnavailableError(f"HTTP {status} from {self._shown}")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise RegistryUnavailableError(f"an answer that is not JSON from {self._shown}") from None

    def _open_session(self) -> aiohttp.ClientSession:
        settings = self._settings
        headers = {"Accept": ACCEPT}
        if settings.username is not None and settings.password is not None:
            pair = f"{settings.username}:{settings.password.reveal()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        connector = None
        if settings.ca_file is not None:
            connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=settings.ca_file))
        self._session = aiohttp.ClientSession(
            headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        )
        return self._session


def _registry_not_found(body: bytes) -> bool:
    """Whether a 404's body is the registry's own "not found" (``{"error_code": 404xx, …}``, as Confluent,
    Redpanda, Apicurio's ccompat API and Karapace answer), not a web server's page for an unknown path."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    code = answer.get("error_code") if isinstance(answer, dict) else None
    return type(code) is int and 40400 <= code <= 40499
