"""``cio-connector map``: what each record becomes, offline, through the sink's own ``RecordPath``.

Input, one record per line: the line's bytes are the record value, exactly as the sink would read them
from Kafka. A line holding a JSON object with only the keys of ``RECORD_KEYS`` and a ``value`` (or
``value_base64``) is a whole record instead: ``value`` is an object/array (serialized as JSON), a string
(its UTF-8 bytes) or null (a tombstone); ``headers`` an object of name → string; ``topic`` and ``key``
strings; ``timestamp`` milliseconds. Blank lines are skipped.

Output, one JSON line per record: ``outcome`` (delivered, dead_lettered, filtered, skipped, or
needs_network), the Track API ``operations`` with their workspace and ``api`` path (``/api/v2/batch``, of
which ``body`` is one item, or a v1 call's path and whole body), ``transactional`` App API sends, the
``filtered`` messages, and the ``dead_letter`` reason. A framed Schema Registry payload (magic byte 0 and a
4-byte schema id) is decoded with its writer schema when ``CONNECTOR_SCHEMA_REGISTRY_URL`` is set (each id
fetched once, read-only; a registry that gives no usable answer is reported as ``registry_unavailable``,
once, not retried); without it, it is reported as ``needs_network``, not guessed at.

Nothing is sent, nothing is read from Kafka; without any workspace configured, one named ``default``
takes every topic, so a mapping can be tried before the credentials exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import time
from collections.abc import Iterable
from typing import Any, TextIO

import orjson

from connector.config import SchemaRegistrySettings, Settings, WorkspaceSettings
from connector.kafka import Partition, Record
from connector.sink.batcher import Batch
from connector.sink.framed import Schema, frame_id
from connector.sink.mapping.model import Operation
from connector.sink.record_path import RecordPath
from connector.sink.retry import RetryPolicy
from connector.sink.routing import Router
from connector.sink.schema_registry import RegistryUnavailableError, SchemaRegistry
from connector.sink.tickets import Ticket

RECORD_KEYS = frozenset({"value", "value_base64", "key", "headers", "topic", "timestamp"})
SCHEMA_REGISTRY_MAGIC = 0
DEFAULT_TOPIC = "input"
V2_BATCH_PATH = "/api/v2/batch"


class InputError(ValueError):
    """An input line shaped like a record but not a valid one; the message names the field."""


@dataclasses.dataclass(slots=True)
class _Result:
    """What one record became, collected from RecordPath's callbacks."""

    operations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    transactional: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    filtered: list[dict[str, str]] = dataclasses.field(default_factory=list)


class RecordMapper:
    """The sink's RecordPath with callbacks that collect, instead of deliver, what each record becomes."""

    def __init__(self, settings: Settings, schemas: RegistryLookup | None = None) -> None:
        """``schemas``: the registry's fetched schemas, for framed payloads (None: no registry configured)."""
        if not settings.workspaces:
            settings = dataclasses.replace(settings, workspaces=(WorkspaceSettings(),))
        self.registry = schemas
        self._result = _Result()
        router = Router(settings)
        self._path = RecordPath(
            settings.sink,
            router,
            {name: self._collector(name) for name in router.workspaces},
            submit_transactional=self._transactional if settings.transactional.topic else None,
            on_filtered=self._filtered,
            on_skipped=lambda _topic: None,
            shapes=settings.topic_shapes(),
            schemas=None if schemas is None else schemas.cached,
        )

    def _collector(self, workspace: str) -> Any:
        def submit(operation: Operation, ticket: Ticket) -> None:
            ticket.hold(workspace)
            api, body = request_of(operation)
            self._result.operations.append(
                {"workspace": workspace, "action": operation.action, "api": api, "body": orjson.loads(body)}
            )

        return submit

    def _transactional(self, workspace: str, body: bytes, ticket: Ticket) -> None:
        ticket.hold(workspace)
        self._result.transactional.append({"workspace": workspace, "api": "/v1/send/email", "body": orjson.loads(body)})

    def _filtered(self, workspace: str, reason: str) -> None:
        self._result.filtered.append({"workspace": workspace, "reason": reason})

    def map(self, record: Record) -> dict[str, Any]:
        """The JSON-ready answer for one record."""
        self._result = result = _Result()
        ticket = Ticket(record, Partition(record.topic, record.partition), 0, _nothing)
        self._path.map(record, ticket)
        ticket.seal()
        answer: dict[str, Any] = {"topic": record.topic, "offset": record.offset, "outcome": ticket.outcome}
        if result.operations:
            answer["operations"] = result.operations
        if result.transactional:
            answer["transactional"] = result.transactional
        if result.filtered:
            answer["filtered"] = result.filtered
        if ticket.dead_letter is not None:
            reason = ticket.dead_letter
            answer["dead_letter"] = {"reason": reason.reason, "message": reason.message}
            if reason.workspace:
                answer["dead_letter"]["workspace"] = reason.workspace
        return answer


def request_of(operation: Operation) -> tuple[str, bytes]:
    """The request path an operation is sent to, and its body: the v2 batch item, or the v1 call's own body
    as the batcher builds it for this operation alone (the sink may merge a lane's consecutive segment ids
    into one call)."""
    if operation.v1 is None:
        return V2_BATCH_PATH, operation.body
    return operation.v1.path, Batch[None]([operation], v1=operation.v1).body()


def _nothing(_: Ticket) -> None:
    """Resolution needs no action: nothing is committed."""


def parse_line(line: bytes, topic: str, offset: int, now_ms: int) -> Record:
    """One input line as a Record (see the module docstring); InputError for a malformed record object."""
    value: bytes | None = line
    doc: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):  # not JSON: a raw value, dead-lettered by the sink's rules
        doc = orjson.loads(line)
    if not (isinstance(doc, dict) and doc and set(doc) <= RECORD_KEYS and ("value" in doc or "value_base64" in doc)):
        return Record(topic, 0, offset, now_ms, None, value, ())
    if "value" in doc and "value_base64" in doc:
        raise InputError("give value or value_base64, not both")
    if "value_base64" in doc:
        try:
            value = base64.b64decode(str(doc["value_base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise InputError("value_base64: not base64") from None
    else:
        value = _value_bytes(doc["value"])
    record_topic = doc.get("topic", topic)
    if not isinstance(record_topic, str) or not record_topic:
        raise InputError("topic: must be a non-empty string")
    key = doc.get("key")
    if key is not None and not isinstance(key, str):
        raise InputError("key: must be a string")
    timestamp = doc.get("timestamp", now_ms)
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
        raise InputError("timestamp: must be milliseconds since the epoch (an integer ≥ 0)")
    headers = doc.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise InputError("headers: must be an object of header name → string")
    pairs = tuple((str(name), v.encode()) for name, v in headers.items())
    return Record(record_topic, 0, offset, timestamp, None if key is None else key.encode(), value, pairs)


def _value_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict | list):
        return orjson.dumps(value)
    raise InputError("value: must be an object, an array, a string or null")


def is_schema_registry_framed(value: bytes | None) -> bool:
    """Confluent wire format: magic byte 0, a 4-byte schema id, then the payload."""
    return value is not None and len(value) >= 5 and value[0] == SCHEMA_REGISTRY_MAGIC


class RegistryLookup:
    """The Schema Registry for ``map``: each schema id fetched once, synchronously, on a private event loop."""

    def __init__(self, settings: SchemaRegistrySettings) -> None:
        self._loop = asyncio.new_event_loop()
        self._registry = SchemaRegistry(settings, RetryPolicy())

    def cached(self, schema_id: int) -> Schema | None:
        """A schema fetched before (what ``RecordPath`` decodes with)."""
        return self._registry.cached(schema_id)

    def fetch(self, schema_id: int) -> str | None:
        """Fetch ``schema_id`` unless cached (a 404 is an answer too); why the registry failed, else None."""
        try:
            self._loop.run_until_complete(self._registry.fetch(schema_id))
        except RegistryUnavailableError as exc:
            return str(exc)
        return None

    def close(self) -> None:
        """Close the HTTP session and the loop."""
        self._loop.run_until_complete(self._registry.close())
        self._loop.close()


def run_map(settings: Settings, topic: str | None, lines: Iterable[bytes], out: TextIO) -> int:
    """Map every input line, write one JSON line each; 1 if a line got no answer (invalid, registry down)."""
    registry = RegistryLookup(settings.schema_registry) if settings.schema_registry.url is not None else None
    default_topic = topic or next(iter(settings.sink.input_topics), DEFAULT_TOPIC)
    try:
        return _map_lines(RecordMapper(settings, registry), default_topic, lines, out)
    finally:
        if registry is not None:
            registry.close()


def _map_lines(mapper: RecordMapper, default_topic: str, lines: Iterable[bytes], out: TextIO) -> int:
    now_ms = int(time.time() * 1000)
    code = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        answer: dict[str, Any] = {"line": number}
        try:
            record = parse_line(line, default_topic, number - 1, now_ms)
        except InputError as exc:
            answer.update(outcome="invalid_input", error=str(exc))
            code = 1
        else:
            unanswered = _schema_missing(record, mapper.registry)
            if unanswered is not None:
                answer.update(topic=record.topic, **unanswered)
                code = code or int(unanswered["outcome"] == "registry_unavailable")
            else:
                answer.update(mapper.map(record))
        out.write(orjson.dumps(answer).decode() + "\n")
    return code


def _schema_missing(record: Record, registry: RegistryLookup | None) -> dict[str, str] | None:
    """Why a framed record cannot be mapped here (no registry configured, or it failed), else None."""
    if not is_schema_registry_framed(record.value):
        return None
    schema_id = frame_id(record.value or b"")
    if registry is None:
        return {
            "outcome": "needs_network",
            "reason": f"framed Schema Registry payload (schema id {schema_id}): set CONNECTOR_SCHEMA_REGISTRY_URL "
            "to decode it with its writer schema",
        }
    failure = registry.fetch(schema_id) if schema_id is not None else None
    if failure is None:
        return None
    return {
        "outcome": "registry_unavailable",
        "reason": f"CONNECTOR_SCHEMA_REGISTRY_URL: schema id {schema_id} could not be fetched ({failure})",
    }
