"""Plain values passed between the sink's pure stages: decode → route → map → batch.

A Kafka record decodes into one or more Segment-spec messages; each message maps to zero or more
``Operation`` values (serialized once, here, to their final bytes), or to a ``Rejection`` (the record
goes to the dead-letter topic with that reason), or to ``Filtered`` (counted, committed, not sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

# Dead-letter reasons: a closed vocabulary, used as a metric label and in the DLQ `cio-dlq-reason` header.
REASONS = frozenset(
    {
        # decoding
        "empty_record",
        "invalid_utf8",
        "not_json",
        "not_an_object",
        "invalid_batch",
        # the Confluent wire format (connector.sink.framed)
        "invalid_frame",
        "schema_not_found",
        "unsupported_schema_type",
        "undecodable",
        # mapping and validation
        "unknown_type",
        "missing_identifier",
        "invalid_identifier",
        "missing_field",
        "invalid_field",
        "invalid_timestamp",
        "limit_exceeded",
        "too_large",
        # routing
        "no_route",
        "workspace_not_allowed",
        # delivery
        "rejected",
        # a connector bug: an unexpected exception, named by its class (never its text)
        "internal_error",
    }
)

FILTER_REASONS = frozenset({"integrations_disabled", "event_denied", "type_denied"})


class Operation(NamedTuple):
    """One Customer.io v2 operation, serialized (a NamedTuple: one is built per operation, cheaply).

    ``order_key`` names the person (or object) it concerns: operations with the same key are delivered
    in the order they were produced. ``action`` is ``"<type>.<action>"`` (``person.event``), a bounded
    label for metrics and logs.
    """

    body: bytes
    order_key: str
    action: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record or message cannot be sent: a reason code from REASONS and a one-line message."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Filtered:
    """A message deliberately not sent, with a reason from FILTER_REASONS."""

    reason: str


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is several times slower, once per message
class MessageContext:
    """Where a message came from: used for deterministic dedup ids and fallback timestamps."""

    topic: str
    partition: int
    offset: int
    index: int  # position within a {"batch": [...]} envelope, 0 for a single message
    timestamp_ms: int  # the Kafka record timestamp


MappedMessage = tuple[Operation, ...] | Rejection | Filtered
Planned = tuple[dict[str, Any], str, str, str]  # (operation, order key, action label, source field)
Message = dict[str, Any]
