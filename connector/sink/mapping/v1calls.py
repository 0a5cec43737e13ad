"""Track events sent as Track API v1 calls, not v2 operations: segment membership and delivery metrics (pure).

- A segment add/remove event (names configurable, default ``Added to Segment`` / ``Removed from Segment``)
  → ``POST /api/v1/segments/{properties.segmentId}/add_customers|remove_customers?id_type=…``, the person's
  id in ``ids``. ``id_type`` is the kind of the person's identifier (``id``, ``email``, ``cio_id``); an
  anonymous person cannot be put in a segment (``missing_identifier``). ``segmentId`` must be a positive
  integer (int32, as the path parameter is), a number or a string of digits (``invalid_field``).
- A delivery metric event (default ``Report Delivery Event``) → ``POST /api/v1/metrics`` with
  ``delivery_id`` (``properties.deliveryId``, required), ``metric`` (``properties.metric``, required, one
  of the spec's metrics), ``timestamp`` (the message time, Unix s), and ``recipient``, ``reason``,
  ``href`` when set. ``actionName``/``actionValue`` are not sent: ``/api/v1/metrics`` does not define them.

A missing or invalid field is a ``Rejection`` naming the field: such an event is never sent as a plain
custom event (Customer.io would answer 200 and change nothing). The operations carry their ``V1Call``;
delivery keeps them in the person's lane order and merges consecutive ids of one call (``batcher``).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from connector.sink.mapping import identifiers as ids
from connector.sink.mapping.model import Message, MessageContext, Operation, V1Call
from connector.sink.mapping.timestamps import message_ms
from connector.sink.mapping.validation import Invalid, get_object, json_type, label, show

MAX_SEGMENT_IDS: Final = 1000  # Customer.io: "limited to 1000 customer IDs per request"
_INT32_MAX: Final = 2**31 - 1
SEGMENT_ID_TYPES: Final = frozenset({"id", "email", "cio_id"})
# /api/v1/metrics: the union of the metric enums of every channel (reference D.2).
METRICS: Final = frozenset({"bounced", "clicked", "converted", "deferred", "delivered", "dropped", "opened", "spammed"})
_METRIC_OPTIONAL: Final = (("recipient", "recipient"), ("reason", "reason"), ("href", "href"))
_METRICS_CALL: Final = V1Call("/api/v1/metrics", 1, "metrics")
_EMPTY: Final[dict[str, Any]] = {}


def segment_id(raw: Any, field: str, name: str) -> int:
    """A manual segment's id: a positive int32, given as a number or a string of digits."""
    if raw is None:
        raise Invalid("missing_field", f"{field}: required for {label(name)!r}")
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 10:
        value = int(raw)
    if value is None or not 0 < value <= _INT32_MAX:
        raise Invalid("invalid_field", f"{field}: must be a positive integer segment id (got {show(raw)})")
    return value


def plan_segment(message: Message, name: str, action: str, who: ids.Identity | None) -> Operation:
    """The ``add_customers``/``remove_customers`` call for the person of ``message`` (``action`` says which)."""
    props = get_object(message, "properties", "properties") or _EMPTY
    sid = segment_id(props.get("segmentId"), "properties.segmentId", name)
    if who is None:
        raise Invalid("missing_identifier", f"userId: required (or context.traits.email) for {label(name)!r}")
    identifiers, key = who
    ((id_type, value),) = identifiers.items()
    if id_type not in SEGMENT_ID_TYPES:  # pragma: no cover - sender() only returns id, email or cio_id
        raise Invalid("invalid_identifier", f"userId: a {id_type} cannot join a segment")
    path = f"/api/v1/segments/{sid}/{action}?id_type={id_type}"
    return Operation(orjson.dumps(value), key, "segment." + action, V1Call(path, MAX_SEGMENT_IDS, "segments"))


def plan_metric(message: Message, ctx: MessageContext, name: str) -> Operation:
    """The ``/api/v1/metrics`` call reporting one delivery's metric."""
    props = get_object(message, "properties", "properties")
    if props is None:
        raise Invalid("missing_field", f"properties.deliveryId: required for {label(name)!r}")
    delivery_id = ids.identifier_value(props.get("deliveryId"), "properties.deliveryId")
    if delivery_id is None:
        raise Invalid("missing_field", f"properties.deliveryId: required for {label(name)!r}")
    metric = props.get("metric")
    if metric is None or metric == "":
        raise Invalid("missing_field", f"properties.metric: required for {label(name)!r}")
    if not isinstance(metric, str) or metric not in METRICS:
        shown = show(metric) if isinstance(metric, str) else json_type(metric)
        raise Invalid("invalid_field", f"properties.metric: must be one of {', '.join(sorted(METRICS))} (got {shown})")
    body: dict[str, Any] = {"delivery_id": delivery_id, "metric": metric}
    for source, target in _METRIC_OPTIONAL:
        value = props.get(source)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise Invalid("invalid_field", f"properties.{source}: must be a string (got {json_type(value)})")
        body[target] = value
    ms = message_ms(message, ctx)
    if ms is not None:
        body["timestamp"] = ms // 1000
    return Operation(orjson.dumps(body), "delivery:" + delivery_id, "metrics.report", _METRICS_CALL)
