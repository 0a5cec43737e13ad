"""Plain values passed between the sink's pure stages: decode → route → map → batch.

A Kafka record decodes into one or more Segment-spec messages; each message maps to zero or more
``Operation`` values (serialized once, here, to their final bytes), or to a ``Rejection`` (the record
goes to the dead-letter topic with that reason), or to ``Filtered`` (counted, committed, not sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

# Dead-letter reasons: a closed vocabulary, used as a metric label and in the DLQ `cio-dlq-reason` header.
# Those a record gets before it is a message at all (Kafka Connect's VALUE_CONVERTER stage, connector.sink.dlq).
DECODE_REASONS = frozenset(
    {
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
    }
)
REASONS = DECODE_REASONS | frozenset(
    {
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

# A record header overriding CONNECTOR_IDENTIFY_TIMESTAMP for that record's identifies: ``event``, ``now``
# or ``omit``. ``dlq replay --fresh-timestamps`` writes ``omit``: a replayed identify must not carry the
# stale time of its first attempt (Customer.io may ignore an update older than the profile's last one).
IDENTIFY_TIMESTAMP_HEADER = "cio-identify-timestamp"
IDENTIFY_TIMESTAMP_POLICIES = frozenset({"event", "now", "omit"})


class V1Call(NamedTuple):
    """The Track API v1 request an operation is sent as, instead of a v2 batch item.

    ``path`` (with its query) names the call; operations of one lane with the same ``path`` that follow
    each other merge into one request of up to ``max_items`` of them. ``max_items`` 1: never merged, the
    operation's body is the request body (``/api/v1/metrics``); otherwise each body is one JSON string and
    the request body is ``{"ids": [...]}`` (``/api/v1/segments/{id}/add_customers?id_type=…``).
    """

    path: str
    max_items: int
    endpoint: str  # the bounded metric label of the request ("segments", "metrics")


class Operation(NamedTuple):
    """One Customer.io operation, serialized (a NamedTuple: one is built per operation, cheaply).

    ``order_key`` names the person (or object) it concerns: operations with the same key are delivered
    in the order they were produced. ``action`` is ``"<type>.<action>"`` (``person.event``), a bounded
    label for metrics and logs. ``v1`` is None for a v2 batch operation, else the v1 call it goes in.
    ``after_key`` (a ``merge``: its secondary's order key) names a second person whose operations
    produced before this one must reach Customer.io before it; None for every other operation.
    """

    body: bytes
    order_key: str
    action: str
    v1: V1Call | None = None
    after_key: str | None = None


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
    # CONNECTOR_IDENTIFY_TIMESTAMP for this record only (the IDENTIFY_TIMESTAMP_HEADER, e.g. set by
    # ``dlq replay --fresh-timestamps``); None: the mapping settings decide.
    identify_timestamp: str | None = None


MappedMessage = tuple[Operation, ...] | Rejection | Filtered
Planned = tuple[dict[str, Any], str, str, str]  # (operation, order key, action label, source field)
Message = dict[str, Any]
