"""One record's way through the sink: decode → route → map (or the transactional build), without I/O.

The one implementation of it: the sink (``runner.Sink``) hands each consumed record to ``RecordPath.map``,
and so does ``cio-connector map``, which prints what a record becomes instead of sending it. Where the
operations go is the caller's: ``submit[workspace](operation, ticket)``, ``submit_transactional``,
``on_filtered`` and ``on_skipped``.

Invariant: whatever the record holds, ``map`` returns with the ticket answered (operations held, a
rejection, a filter or a skip); an exception is a bug, dead-lettered as ``internal_error``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from connector.config import SinkSettings
from connector.kafka import Partition, Record
from connector.logs import get_logger
from connector.sink.framed import MAGIC, Schema, decode_framed, frame_id
from connector.sink.mapping.decode import decode_document, decode_record, decode_shaped
from connector.sink.mapping.mapper import Mapper
from connector.sink.mapping.model import (
    IDENTIFY_TIMESTAMP_HEADER,
    IDENTIFY_TIMESTAMP_POLICIES,
    Filtered,
    Message,
    MessageContext,
    Operation,
    Rejection,
)
from connector.sink.mapping.shapes import RecordShape
from connector.sink.mapping.transactional import build_send_email
from connector.sink.routing import Router
from connector.sink.tickets import DeadLetterReason, Ticket

log = get_logger("sink.runner")

SubmitOperation = Callable[[Operation, Ticket], None]
SubmitTransactional = Callable[[str, bytes, Ticket], None]  # (workspace, /v1/send/email body, ticket)


class RecordPath:
    """Maps records onto tickets and hands the results to the caller's callbacks."""

    __slots__ = (
        "_fixed",
        "_max_bytes",
        "_on_filtered",
        "_on_skipped",
        "_router",
        "_schemas",
        "_shapes",
        "_sink",
        "_skip_tombstones",
        "_submit",
        "_submit_transactional",
    )

    def __init__(
        self,
        sink: SinkSettings,
        router: Router,
        submit: Mapping[str, SubmitOperation],
        *,
        submit_transactional: SubmitTransactional | None,
        on_filtered: Callable[[str, str], None],
        on_skipped: Callable[[str], None],
        shapes: Mapping[str, RecordShape] | None = None,
        schemas: Callable[[int], Schema | None] | None = None,
    ) -> None:
        """``schemas``: the Schema Registry cache's lookup, for records in its wire format (None: no registry)."""
        self._sink = sink
        self._router = router
        self._submit = dict(submit)
        self._submit_transactional = submit_transactional
        self._on_filtered = on_filtered  # (workspace, reason)
        self._on_skipped = on_skipped  # (topic)
        # Topics with a declarative mapping (docs/inputs.md); every other topic is Segment-spec JSON.
        self._shapes = dict(shapes or {})
        self._schemas = schemas
        # Debezium follows each delete with a tombstone: always skipped there, whatever CONNECTOR_TOMBSTONES.
        self._skip_tombstones = {name for name, shape in self._shapes.items() if shape.preset == "debezium"}
        # Per topic, when every message of a record without headers goes to one workspace's Track API
        # (Router.fixed): its mapper and submit, so such records skip routing per message. None: route each.
        self._fixed: dict[str, tuple[Mapper, str, SubmitOperation] | None] = {}
        self._max_bytes = sink.max_operation_bytes

    def map_run(
        self, records: list[Record], partition: Partition, generation: int, on_done: Callable[[Ticket], None]
    ) -> None:
        """Map a fetched run of one partition's records, each onto a new ticket sealed once it is mapped.

        The sink's per-record loop, kept here so that the whole fetch is mapped inside compiled code
        (setup.py): one call per partition run from the interpreted runner instead of three per record.
        The usual record (plain JSON, no headers, on a topic whose messages all go to one workspace's
        Track API: ``Router.fixed``) is decoded and mapped right in this loop, with what ``map`` →
        ``_map_messages`` → ``_decode`` → ``_map_fixed`` would do for it bound once per run; every other
        record takes ``map``. Either way each record has the same safety net as ``map``.
        """
        topic = partition.topic
        fixed = self._fixed_for(topic) if topic not in self._shapes else None
        if fixed is not None:
            self._map_fixed_run(records, partition, generation, on_done, fixed)
            return
        for record in records:
            ticket = Ticket(record, partition, generation, on_done)
            self.map(record, ticket)
            ticket.seal()

    def _map_fixed_run(
        self,
        records: list[Record],
        partition: Partition,
        generation: int,
        on_done: Callable[[Ticket], None],
        fixed: tuple[Mapper, str, SubmitOperation],
    ) -> None:
        """``map_run`` on a topic with a fixed route and no declarative mapping: its usual records in line."""
        for record in records:
            ticket = Ticket(record, partition, generation, on_done)
            value = record.value
            if record.headers or not value or value[0] == MAGIC:
                self.map(record, ticket)  # headers, a tombstone or an empty value, the registry's wire format
            else:
                try:
                    decoded = decode_record(value)
                    if isinstance(decoded, Rejection):
                        ticket.reject(DeadLetterReason(decoded.reason, decoded.message))
                    else:
                        self._map_fixed(record, decoded, ticket, fixed)
                except Exception as exc:  # noqa: BLE001 - map's per-record safety net (see its docstring)
                    _internal_error(record, ticket, exc)
            pending = ticket.pending - 1  # Ticket.seal inlined (once per record)
            ticket.pending = pending
            if pending == 0:
                on_done(ticket)

    def map(self, record: Record, ticket: Ticket) -> None:
        """Decode, route and map one record onto its ticket; whatever happens, the record gets an answer.

        An exception here is a bug, but one record must not stop the partition (nor, raised out of the
        consume loop, the process, to re-read the same record after every restart): the record is
        dead-lettered as ``internal_error`` naming the exception's class, never its text, which may
        quote the record. A try costs nothing in CPython 3.11 until something raises.
        """
        try:
            self._map_messages(record, ticket)
        except Exception as exc:  # noqa: BLE001 - the per-record safety net (see the docstring)
            _internal_error(record, ticket, exc)

    def _map_messages(self, record: Record, ticket: Ticket) -> None:
        if record.value is None and (self._sink.tombstones == "skip" or record.topic in self._skip_tombstones):
            # A tombstone deletes a key on a compacted topic: nothing to send, and no reason to dead-letter.
            ticket.skipped = True
            self._on_skipped(record.topic)
            return
        decoded = self._decode(record)
        if isinstance(decoded, Rejection):
            ticket.reject(DeadLetterReason(decoded.reason, decoded.message, schema_id=_schema_id(record.value)))
            return
        if not record.headers:
            fixed = self._fixed_for(record.topic)
            if fixed is not None:
                self._map_fixed(record, decoded, ticket, fixed)
                return
        self._map_routed(record, decoded, ticket)

    def _map_routed(self, record: Record, decoded: list[Message], ticket: Ticket) -> None:
        """Route and map each message: records with headers, and topics routed per message."""
        identify_timestamp: str | None = None
        if record.headers:
            header_name = self._sink.workspace_header  # empty: the header is off and never scanned for
            header = record.header(header_name) if header_name else None
            topic, partition, offset, timestamp_ms = _origin(record)  # once per record, not per message
            override = _identify_timestamp(record)
            if isinstance(override, Rejection):
                ticket.reject(DeadLetterReason(override.reason, override.message))
                return
            identify_timestamp = override
        else:  # the common case, without the header scans
            header = None
            topic, partition, offset, timestamp_ms = record.topic, record.partition, record.offset, record.timestamp_ms
        max_bytes = self._sink.max_operation_bytes
        for index, message in enumerate(decoded):
            target = self._router.route(record.topic, header, message)
            if isinstance(target, Rejection):
                ticket.reject(DeadLetterReason(target.reason, target.message))
                continue
            if target.transactional and self._submit_transactional is not None:
                _send_email(self._submit_transactional, message, target.workspace, ticket)
                continue
            context = MessageContext(topic, partition, offset, index, timestamp_ms, identify_timestamp)
            mapped = target.mapper.map(message, context, max_bytes)
            if isinstance(mapped, Rejection):
                ticket.reject(DeadLetterReason(mapped.reason, mapped.message, target.workspace))
            elif isinstance(mapped, Filtered):
                ticket.filtered += 1
                self._on_filtered(target.workspace, mapped.reason)
            else:
                submit = self._submit[target.workspace]
                for operation in mapped:
                    submit(operation, ticket)

    def _fixed_for(self, topic: str) -> tuple[Mapper, str, SubmitOperation] | None:
        """The topic's fixed route (``Router.fixed``) with its mapper and submit, looked up once per topic."""
        try:
            return self._fixed[topic]
        except KeyError:
            fixed = self._fixed[topic] = self._fixed_route(topic)
            return fixed

    def _fixed_route(self, topic: str) -> tuple[Mapper, str, SubmitOperation] | None:
        target = self._router.fixed(topic)
        if target is None:
            return None
        return target.mapper, target.workspace, self._submit[target.workspace]

    def _map_fixed(
        self, record: Record, decoded: list[Message], ticket: Ticket, fixed: tuple[Mapper, str, SubmitOperation]
    ) -> None:
        """The common case: a record without headers whose messages all go to one workspace's Track API.

        What the general loop in ``_map_messages`` does for it, with the route and the per-record values
        bound once: the record is its own origin, and no identify-timestamp override applies.
        """
        mapper, workspace, submit = fixed
        topic, partition, offset, timestamp_ms = record.topic, record.partition, record.offset, record.timestamp_ms
        max_bytes = self._max_bytes
        for index, message in enumerate(decoded):
            mapped = mapper.map(message, MessageContext(topic, partition, offset, index, timestamp_ms), max_bytes)
            if isinstance(mapped, tuple):  # operations, the usual answer: one check
                for operation in mapped:
                    submit(operation, ticket)
            elif isinstance(mapped, Rejection):
                ticket.reject(DeadLetterReason(mapped.reason, mapped.message, workspace))
            else:
                ticket.filtered += 1
                self._on_filtered(workspace, mapped.reason)

    def _decode(self, record: Record) -> list[Message] | Rejection:
        """The record's messages: Segment-spec JSON, or the topic's shape, from JSON or the registry's wire format."""
        value = record.value
        shape = self._shapes.get(record.topic) if self._shapes else None  # no lookup at all without mappings
        # The wire format starts with byte 0; plain JSON with {, [, a BOM or whitespace: one comparison.
        if not value or value[0] != MAGIC:
            return decode_record(value) if shape is None else decode_shaped(value, shape)
        schema_id = frame_id(value)
        # In the cache when the registry is configured: the runner held the record until it was.
        schema = None if self._schemas is None or schema_id is None else self._schemas(schema_id)
        return decode_framed(value, schema, decode_document if shape is None else shape.messages)


def _internal_error(record: Record, ticket: Ticket, exc: Exception) -> None:
    """A bug met one record: dead-letter it as ``internal_error``, naming the exception's class only."""
    name = type(exc).__name__
    log.error(
        "Record could not be processed (a bug); dead-lettering it.",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        error=name,
    )
    ticket.reject(DeadLetterReason("internal_error", f"internal_error: {name}"))


def _schema_id(value: bytes | None) -> int | None:
    """The schema id of a wire-format record (for its dead-letter headers), else None."""
    return frame_id(value) if value and value[0] == MAGIC else None


def _send_email(submit: SubmitTransactional, message: Message, workspace: str, ticket: Ticket) -> None:
    body = build_send_email(message)
    if isinstance(body, Rejection):
        ticket.reject(DeadLetterReason(body.reason, body.message, workspace))
    else:
        submit(workspace, body, ticket)


def _origin(record: Record) -> tuple[str, int, int, int]:
    """Dedup-id seed of a record's messages: its origin before any dead-letter replay, else this record."""
    origin = record.header("cio-origin-topic")
    if origin is not None:
        try:
            return (
                origin.decode(),
                _header_int(record.header("cio-origin-partition")),
                _header_int(record.header("cio-origin-offset")),
                _header_int(record.header("cio-origin-timestamp")),
            )
        except (ValueError, UnicodeDecodeError):
            pass  # malformed origin headers: fall back to this record's own position
    return record.topic, record.partition, record.offset, record.timestamp_ms


def _identify_timestamp(record: Record) -> str | Rejection | None:
    """The record's identify-timestamp override (``dlq replay --fresh-timestamps``), or why it is refused."""
    policy = record.header(IDENTIFY_TIMESTAMP_HEADER)
    if policy is None:
        return None
    text = policy.decode("utf-8", "replace")
    if text not in IDENTIFY_TIMESTAMP_POLICIES:
        return Rejection("invalid_field", f"{IDENTIFY_TIMESTAMP_HEADER} header: must be event, now or omit")
    return text


def _header_int(value: bytes | None) -> int:
    """A header written by ``str(int)``: ASCII digits, an optional minus, at most 19 digits; else ValueError.

    ``int()`` alone would also take " 12", "1_000" and other scripts' digits ("١٢").
    """
    if value is None:
        raise ValueError("header missing")
    digits = value[1:] if value[:1] == b"-" else value
    if not digits or len(digits) > 19 or not digits.isdigit():  # bytes.isdigit() is ASCII-only
        raise ValueError("not a decimal header value")
    return int(value)
