"""Declarative mapping against the Segment path, same run: ``.venv/bin/python bench/declarative_map.py``.

Builds 50,000 product events in a custom JSON shape (``{"user": {...}, "action": …, "at": …,
"details": {...}}``) and the same events already written as Segment-spec track messages, then reports,
best of a few runs, records per CPU-second of this process for:

1. **segment**: ``decode_record`` + ``Mapper.map`` on the Segment-spec records (today's path);
2. **declarative**: ``decode_shaped`` + ``Mapper.map`` on the custom records, with a mapping that builds
   the same message (``user_id``, ``event``, ``properties`` subtree, ``timestamp`` in unix_s);
3. **declarative + rules**: the same plus ``drop``, ``rename`` and a SHA-256 ``hash`` of the email;
4. **debezium**: ``preset: debezium`` on change events of a ``users`` table (c/u/d), against the Segment
   identify records of the same rows.

The per-record cost of the mapping is the difference, and the issue's target is declarative within 25%
of the Segment path. With ``jmespath`` importable (it is not a dependency) it also prints the per-lookup
cost of the dotted-path syntax against jmespath's compiled expressions, the measurement that chose the
syntax. ``--compiled`` runs the mypyc-compiled modules built by ``scripts/build-compiled``.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
from compiled_tree import import_path  # bench/ is on sys.path when run as a script

sys.path[:0] = import_path(compiled="--compiled" in sys.argv)  # before any connector import

from connector.config import MappingSettings  # noqa: E402
from connector.sink.mapping.decode import decode_record, decode_shaped  # noqa: E402
from connector.sink.mapping.mapper import Mapper  # noqa: E402
from connector.sink.mapping.model import MessageContext  # noqa: E402
from connector.sink.mapping.paths import get, parse_path  # noqa: E402
from connector.sink.mapping.shapes import RecordShape, compile_shape  # noqa: E402

RECORDS = 50_000
RUNS = 7
EVENTS = ["checkout", "product_viewed", "cart_add", "signed_in"]

PRODUCT_MAPPING: dict[str, Any] = {
    "type": "track",
    "user_id": "$.user.id",
    "event": "$.action",
    "properties": "$.details",
    "timestamp": "$.at",
    "timestamp_format": "unix_s",
}
PRODUCT_RULES: dict[str, Any] = {
    **PRODUCT_MAPPING,
    "drop": ["$.details.internal_note"],
    "rename": {"$.details.mail": "email"},
    "hash": ["$.details.email"],
}


def _details(rng: random.Random, user: str) -> dict[str, Any]:
    return {
        "order_id": f"A-{rng.randrange(100_000)}",
        "total": round(rng.random() * 200, 2),
        "currency": "EUR",
        "coupon": None,
        "products": [{"sku": f"SKU-{k}", "price": 19.99, "quantity": 1} for k in range(rng.randrange(1, 4))],
        "page": f"https://shop.example.com/products/{rng.randrange(10_000)}",
        "mail": f"{user}@example.com",
    }


def product_pairs(count: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(custom records, the same as Segment track records, custom records with a field the rules drop)."""
    rng = random.Random(7)
    custom, segment, with_rules = [], [], []
    for _ in range(count):
        user = f"user-{rng.randrange(1_000_000)}"
        action = rng.choice(EVENTS)
        at = 1_700_000_000 + rng.randrange(10_000_000)
        details = _details(rng, user)
        custom.append(
            orjson.dumps({"user": {"id": user, "plan": "pro"}, "action": action, "at": at, "details": details})
        )
        segment.append(
            orjson.dumps({"type": "track", "userId": user, "event": action, "properties": details, "timestamp": at})
        )
        ruled = {**details, "internal_note": "do not send"}
        with_rules.append(orjson.dumps({"user": {"id": user}, "action": action, "at": at, "details": ruled}))
    return custom, segment, with_rules


def debezium_pairs(count: int) -> tuple[list[bytes], list[bytes]]:
    """(Debezium change events of a users table, with the schema envelope; the same as Segment messages)."""
    rng = random.Random(11)
    changes, segment = [], []
    for i in range(count):
        row = {"id": 1000 + i, "email": f"u{i}@example.com", "name": "Ana Example", "plan": rng.choice(["free", "pro"])}
        op = "d" if i % 10 == 9 else rng.choice(["c", "u"])
        ts = 1_700_000_000_000 + i
        body = {"op": op, "before": row if op == "d" else None, "after": None if op == "d" else row, "ts_ms": ts}
        changes.append(orjson.dumps({"schema": {"type": "struct", "optional": False}, "payload": body}))
        message: dict[str, Any] = (
            {"type": "track", "event": "User Deleted", "userId": row["id"], "timestamp": ts}
            if op == "d"
            else {"type": "identify", "userId": row["id"], "traits": row, "timestamp": ts}
        )
        segment.append(orjson.dumps(message))
    return changes, segment


def _run(records: list[bytes], decode: Callable[[bytes], Any], mapper: Mapper) -> float:
    """CPU seconds to decode and map every record (every one must map to operations)."""
    ctx = MessageContext("events", 0, 0, 0, 1_735_689_600_000)
    cpu = time.process_time()
    for record in records:
        messages = decode(record)
        assert isinstance(messages, list), messages
        for message in messages:
            result = mapper.map(message, ctx)
            assert isinstance(result, tuple), result
    return time.process_time() - cpu


def _shape(raw: dict[str, Any]) -> RecordShape:
    return compile_shape(raw, "bench.mapping")


def main() -> None:
    """Print best-of-RUNS records per CPU-second for each path, and the declarative ones' cost ratio."""
    mapper = Mapper(MappingSettings())
    custom, segment, ruled = product_pairs(RECORDS)
    changes, dbz_segment = debezium_pairs(RECORDS)
    plain, rules, debezium = _shape(PRODUCT_MAPPING), _shape(PRODUCT_RULES), _shape({"preset": "debezium"})
    cases: list[tuple[str, list[bytes], Callable[[bytes], Any]]] = [
        ("segment (track)", segment, decode_record),
        ("declarative", custom, lambda value: decode_shaped(value, plain)),
        ("declarative + rules", ruled, lambda value: decode_shaped(value, rules)),
        ("segment (identify/delete)", dbz_segment, decode_record),
        ("debezium preset", changes, lambda value: decode_shaped(value, debezium)),
    ]
    gc.collect()
    gc.freeze()
    best = dict.fromkeys((name for name, _, _ in cases), float("inf"))
    for _ in range(RUNS):
        for name, records, decode in cases:  # interleaved: the machine's swings hit every case alike
            best[name] = min(best[name], _run(records, decode, mapper))
    print(f"{RECORDS} records per case, best of {RUNS}; mapping layer: {_variant()}")
    for name, _, _ in cases:
        print(
            f"{name:26s} {RECORDS / best[name]:>10,.0f} records per CPU-second  ({best[name] / RECORDS * 1e6:.2f} µs)"
        )
    for name, base in (
        ("declarative", "segment (track)"),
        ("declarative + rules", "segment (track)"),
        ("debezium preset", "segment (identify/delete)"),
    ):
        print(f"{name} / {base}: per-record cost ×{best[name] / best[base]:.2f} (target ≤ ×1.25)")
    _paths_against_jmespath()


def _paths_against_jmespath() -> None:
    try:
        import jmespath  # type: ignore[import-not-found, unused-ignore]  # optional: only for this comparison
    except ImportError:
        print("jmespath not installed: path-syntax comparison skipped")
        return
    doc = orjson.loads(product_pairs(1)[0][0])
    lookups = ["user.id", "action", "details", "details.products[0].sku"]
    n = 200_000
    for expr in lookups:
        steps = parse_path("$." + expr)
        compiled = jmespath.compile(expr)
        assert get(doc, steps) == compiled.search(doc)
        ours = min(_time(lambda steps=steps: get(doc, steps), n) for _ in range(3))  # type: ignore[misc]
        theirs = min(_time(lambda c=compiled: c.search(doc), n) for _ in range(3))  # type: ignore[misc]
        print(f"path {expr:26s} dotted {ours / n * 1e9:6.0f} ns   jmespath {theirs / n * 1e9:6.0f} ns")


def _time(call: Callable[[], object], n: int) -> float:
    cpu = time.process_time()
    for _ in range(n):
        call()
    return time.process_time() - cpu


def _variant() -> str:
    import connector.sink.mapping.shapes as shapes_module

    return "pure Python" if shapes_module.__file__.endswith(".py") else "compiled with mypyc (build/compiled)"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compiled", action="store_true", help="use the modules built by scripts/build-compiled")
    parser.parse_args()
    main()
