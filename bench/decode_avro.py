"""Avro decode + map against JSON decode + map, same messages, same run: ``.venv/bin/python bench/decode_avro.py``.

Builds 50,000 "Order Completed" track messages and encodes each twice: as plain JSON (the Segment path)
and in the Schema Registry wire format as Avro (magic byte, schema id, fastavro binary) with a
timestamp-millis timestamp and a decimal total, so the logical-type conversion is measured too. Reports,
best of RUNS, records per CPU-second of this process (one core, unaffected by other load) for:
  json          decode_record + Mapper.map (the sink's per-record work for plain JSON)
  avro          decode_framed (fastavro + logical types → JSON types) + Mapper.map
  avro-plain    the same with a schema without logical types (timestamp as an ISO string, total a double)
and the ratios to json. The schema is parsed once, as the registry cache does.
"""

from __future__ import annotations

import gc
import io
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_writer

from connector.config import MappingSettings
from connector.sink.framed import Schema, decode_framed, parse_registered
from connector.sink.mapping.decode import decode_record
from connector.sink.mapping.mapper import Mapper
from connector.sink.mapping.model import MessageContext, Rejection

RECORDS = 50_000
RUNS = 5


def order_schema(logical: bool) -> dict[str, Any]:
    timestamp: Any = {"type": "long", "logicalType": "timestamp-millis"} if logical else "string"
    total: Any = {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2} if logical else "double"
    product = {
        "type": "record",
        "name": "Product",
        "fields": [
            {"name": "sku", "type": "string"},
            {"name": "price", "type": "double"},
            {"name": "quantity", "type": "int"},
        ],
    }
    return {
        "type": "record",
        "name": "OrderCompleted",
        "fields": [
            {"name": "type", "type": "string"},
            {"name": "messageId", "type": "string"},
            {"name": "userId", "type": "string"},
            {"name": "event", "type": "string"},
            {"name": "timestamp", "type": timestamp},
            {
                "name": "properties",
                "type": {
                    "type": "record",
                    "name": "Order",
                    "fields": [
                        {"name": "order_id", "type": "string"},
                        {"name": "total", "type": total},
                        {"name": "currency", "type": "string"},
                        {"name": "coupon", "type": ["null", "string"]},
                        {"name": "products", "type": {"type": "array", "items": product}},
                    ],
                },
            },
            {
                "name": "context",
                "type": {
                    "type": "record",
                    "name": "Context",
                    "fields": [{"name": "ip", "type": "string"}, {"name": "locale", "type": "string"}],
                },
            },
        ],
    }


def message(rng: random.Random, i: int) -> dict[str, Any]:
    at = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(milliseconds=rng.randrange(30 * 86_400_000))
    return {
        "type": "track",
        "messageId": f"avro-{i:08d}-{rng.getrandbits(64):016x}",
        "userId": f"user-{rng.randrange(1_000_000)}",
        "event": "Order Completed",
        "timestamp": at,
        "properties": {
            "order_id": f"A-{rng.randrange(100_000)}",
            "total": Decimal(rng.randrange(1, 20_000)) / 100,
            "currency": "EUR",
            "coupon": None,
            "products": [{"sku": f"SKU-{k}", "price": 19.99, "quantity": 1} for k in range(rng.randrange(1, 4))],
        },
        "context": {"ip": f"203.0.113.{rng.randrange(255)}", "locale": "en-US"},
    }


def as_json_types(value: dict[str, Any]) -> dict[str, Any]:
    """The message with its time as an ISO string and its total a float (what JSON producers send)."""
    out = dict(value, timestamp=value["timestamp"].isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    out["properties"] = dict(value["properties"], total=float(value["properties"]["total"]))
    return out


def framed(schema_id: int, schema: Any, value: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    out.write(b"\x00" + schema_id.to_bytes(4, "big"))
    schemaless_writer(out, schema, value)
    return out.getvalue()


def registered(schema_id: int, logical: bool) -> Schema:
    return parse_registered(schema_id, {"schema": orjson.dumps(order_schema(logical)).decode()})


def measure(records: list[bytes], decode: Callable[[bytes], Any], mapper: Mapper) -> float:
    """Best records per CPU-second of decode + map over ``records``."""
    ctx = MessageContext("orders", 0, 0, 0, 1_735_689_600_000)
    best = float("inf")
    for _ in range(RUNS):
        cpu = time.process_time()
        for record in records:
            decoded = decode(record)
            if isinstance(decoded, Rejection):
                raise SystemExit(f"bench input rejected: {decoded}")
            for item in decoded:
                mapped = mapper.map(item, ctx)
                if not isinstance(mapped, tuple):
                    raise SystemExit(f"bench message not mapped: {mapped}")
        best = min(best, time.process_time() - cpu)
    return len(records) / best


def main() -> None:
    rng = random.Random(7)
    messages = [message(rng, i) for i in range(RECORDS)]
    plain_values = [as_json_types(m) for m in messages]
    json_records = [orjson.dumps(m) for m in plain_values]
    logical, plain = registered(1, True), registered(2, False)
    avro_records = [framed(1, parse_schema(order_schema(True)), m) for m in messages]
    avro_plain_records = [framed(2, parse_schema(order_schema(False)), m) for m in plain_values]
    mapper = Mapper(MappingSettings())
    print(
        f"{RECORDS} records: JSON {sum(map(len, json_records)) / RECORDS:.0f} bytes, "
        f"Avro {sum(map(len, avro_records)) / RECORDS:.0f} bytes on average"
    )
    gc.collect()
    gc.freeze()  # the fixtures are not the mapper's garbage (as bench/mapping.py)
    rates = {
        "json": measure(json_records, decode_record, mapper),
        "avro": measure(avro_records, lambda value: decode_framed(value, logical), mapper),
        "avro-plain": measure(avro_plain_records, lambda value: decode_framed(value, plain), mapper),
    }
    for name, rate in rates.items():
        print(f"{name:<11} {rate:>10,.0f} records/CPU-s   {rate / rates['json']:.2f}× json")


if __name__ == "__main__":
    main()
