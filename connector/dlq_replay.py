"""``cio-connector dlq replay``: re-inject dead-lettered records after a fix.

Each record goes back to its source topic (or ``--to-topic``) with its original key, value and headers,
minus the ``cio-dlq-*`` headers, plus ``cio-origin-{topic,partition,offset,timestamp}`` naming where it
was first consumed. The sink derives dedup ids from that origin, so a replayed event carries the same
ULID as its first attempt and Customer.io de-duplicates it if that attempt did get through.

Progress is remembered by a consumer group (``--group``), so replaying twice does not duplicate; the run
stops at the dead-letter topic's end as it was when the command started.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import TextIO

from connector.config import Settings
from connector.kafka import Consumer, Headers, Partition, Producer, Record
from connector.sink.dlq import DLQ_PREFIX

CHUNK = 500
IDLE_TIMEOUT_SECONDS = 10.0


def replay_headers(record: Record) -> Headers:
    """The headers a replayed record carries (pure)."""
    kept = tuple((k, v) for k, v in record.headers if not k.startswith(DLQ_PREFIX))
    if any(k == "cio-origin-topic" for k, _ in kept):
        return kept  # replayed before: keep the first origin
    origin = (
        ("cio-origin-topic", record.header("cio-dlq-source-topic") or record.topic.encode()),
        ("cio-origin-partition", record.header("cio-dlq-source-partition") or str(record.partition).encode()),
        ("cio-origin-offset", record.header("cio-dlq-source-offset") or str(record.offset).encode()),
        ("cio-origin-timestamp", record.header("cio-dlq-source-timestamp") or str(record.timestamp_ms).encode()),
    )
    return kept + origin


async def replay(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Replay the dead-letter topic up to its current end; print progress and a summary to ``out``."""
    topic = settings.sink.dlq_topic
    reasons = set(args.reason or ())
    consumer = Consumer(settings.kafka, args.group)
    producer = Producer(settings.kafka)
    await producer.start()
    replayed: Counter[tuple[str, str]] = Counter()
    skipped = 0
    ends: dict[Partition, int] | None = None
    positions: dict[Partition, int] = {}

    async def noop(_partitions: list[Partition]) -> None:
        return None

    await consumer.start([topic], noop, noop)
    try:
        idle_since = time.monotonic()
        while True:
            records = await consumer.fetch(500, CHUNK)
            assignment = consumer.assignment()
            if ends is None and assignment:
                ends = await consumer.end_offsets(sorted(assignment, key=lambda p: p.partition))
                for partition in assignment:
                    committed = await consumer.committed(partition)
                    positions.setdefault(partition, committed or 0)
            batch: list[tuple[str, Record]] = []
            for record in records:
                partition = Partition(record.topic, record.partition)
                positions[partition] = record.offset + 1
                if ends is not None and record.offset >= ends.get(partition, 0):
                    continue  # dead-lettered after the run started: left for the next replay
                reason = (record.header("cio-dlq-reason") or b"").decode("utf-8", "replace")
                if (reasons and reason not in reasons) or (
                    args.limit and sum(replayed.values()) + len(batch) >= args.limit
                ):
                    skipped += 1
                    continue
                target = args.to_topic or (record.header("cio-dlq-source-topic") or b"").decode() or None
                if target is None:
                    skipped += 1
                    continue
                batch.append((target, record))
            if batch and not args.dry_run:
                for target in {t for t, _ in batch}:
                    await producer.send_many(
                        target, [(r.key, r.value, replay_headers(r)) for t, r in batch if t == target]
                    )
            for target, record in batch:
                replayed[(target, (record.header("cio-dlq-reason") or b"").decode("utf-8", "replace"))] += 1
            if records:
                idle_since = time.monotonic()
                if not args.dry_run:
                    await consumer.commit({p: o for p, o in positions.items() if p in assignment})
                _progress(out, sum(replayed.values()), skipped, ends, positions)
            if ends is not None and all(positions.get(p, 0) >= end for p, end in ends.items()):
                break
            if time.monotonic() - idle_since > IDLE_TIMEOUT_SECONDS:
                out.write("no more records arrived; stopping\n")
                break
    finally:
        await consumer.stop()
        await producer.stop()
    _summary(out, replayed, skipped, dry_run=args.dry_run)
    return 0


def _progress(
    out: TextIO, done: int, skipped: int, ends: dict[Partition, int] | None, positions: dict[Partition, int]
) -> None:
    total = sum(ends.values()) if ends else 0
    read = sum(positions.values())
    out.write(f"\rread {read}/{total} dead-letter records: {done} replayed, {skipped} skipped")
    out.flush()


def _summary(out: TextIO, replayed: Counter[tuple[str, str]], skipped: int, *, dry_run: bool) -> None:
    verb = "would replay" if dry_run else "replayed"
    out.write(f"\n{verb} {sum(replayed.values())} records, skipped {skipped}\n")
    for (target, reason), count in sorted(replayed.items()):
        out.write(f"  {count:>8}  → {target}  (reason: {reason or 'unknown'})\n")
