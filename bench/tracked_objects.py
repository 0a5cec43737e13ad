"""Container objects the collector keeps track of per buffered operation: ``.venv/bin/python bench/tracked_objects.py``.

Feeds 10,000 sample records through the real ``Sink`` (as ``bench/sink_path.py`` builds it) without
completing any batch, so every operation stays buffered, runs a full collection (which untracks whatever
CPython can untrack), and counts the objects ``gc.get_objects()`` gained, by type. Those are what every
generation-1 and generation-2 collection traverses while the operations wait. The input records are
frozen (``gc.freeze``) like start-up objects, so a consumed record's ``Record`` is not in the count: in the
connector it adds one more per in-flight record (a NamedTuple subclass, which CPython never untracks).
"""

from __future__ import annotations

import asyncio
import collections
import gc

from prometheus_client import CollectorRegistry
from sink_path import build_sink, sample_records  # bench/ is on sys.path when run as a script

from connector.metrics import Metrics

RECORDS = 10_000
CHUNK = 500


def tracked_by_type() -> collections.Counter[str]:
    return collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())


async def main() -> None:
    records = sample_records(RECORDS, CHUNK)
    gc.collect()
    gc.freeze()
    sink, delivery = build_sink(Metrics(CollectorRegistry()))
    gc.collect()
    before = tracked_by_type()
    for start in range(0, RECORDS, CHUNK):
        sink._process(records[start : start + CHUNK])
    gc.collect()
    gained = tracked_by_type() - before
    operations = delivery.buffered
    total = sum(gained.values())
    print(f"{RECORDS:,} records, {operations:,} operations buffered: {total:,} more tracked objects")
    print(f"({total / operations:.2f} per buffered operation), by type:")
    for name, count in gained.most_common(8):
        print(f"  {count:8,d}  {count / operations:5.2f} per operation  {name}")


if __name__ == "__main__":
    asyncio.run(main())
