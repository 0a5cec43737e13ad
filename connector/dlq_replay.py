"""``cio-connector dlq replay``: re-inject dead-lettered records after a fix.

Each record goes back to its source topic (or ``--to-topic``) with its original key, value and headers,
minus the ``cio-dlq-*`` headers (and Kafka Connect's ``__connect.errors.*``), plus
``cio-origin-{topic,partition,offset,timestamp}`` naming where it was first consumed. The sink derives dedup ids from that origin, so a replayed event carries the same
ULID as its first attempt and Customer.io de-duplicates it if that attempt did get through.

``--fresh-timestamps`` adds the ``cio-identify-timestamp: omit`` header to every replayed record (replacing
one already there): the sink then sends the record's identifies without a timestamp, so Customer.io uses
its receive time. The value and the message's own ``timestamp`` stay untouched: rewriting the value
would change the dedup ids of the record's events (derived from their time) and what the producer wrote;
events keep their own time, which orders nothing and which 72-hour campaign triggers rely on. A record
dead-lettered again keeps the header, so a later plain replay stays fresh.

Progress is remembered by a consumer group (``--group``), so replaying twice does not duplicate; the run
stops at the dead-letter topic's end as it was when the command started.

Invariant: the group never commits past a dead letter that was not replayed and is still replayable.
- ``--reason`` (a filter): a dead letter it does not select, or one without a target topic, is copied
  unchanged (all headers kept) to the end of the dead-letter topic before the group moves past it, so a
  later run (another ``--reason``, or none) still finds it. The copy is acknowledged before the commit; a
  crash in between leaves both, and replaying both is harmless (same dedup ids).
- ``--limit N``: the run stops at the first record past the N-th replayed, and commits only up to it.
- A dead letter whose value was truncated to fit the topic (``cio-dlq-value-truncated``) cannot be
  replayed: it is reported with the source position of its original and left in the topic, and the
  group moves past it.
"""

from __future__ import annotations

import argparse
import itertools
import operator
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from connector.config import Settings
from connector.errors import BrokerUnavailableError
from connector.kafka import (
    DEFAULT_MAX_REQUEST_SIZE,
    Consumer,
    Headers,
    Partition,
    Producer,
    Record,
    topic_max_message_bytes,
)
from connector.sink.dlq import VALUE_TRUNCATED, is_dead_letter_header
from connector.sink.mapping.model import IDENTIFY_TIMESTAMP_HEADER

CHUNK = 500
IDLE_TIMEOUT_SECONDS = 10.0
_TOPIC_AND_PARTITION = operator.itemgetter(0, 1)


def replay_headers(record: Record, *, fresh_timestamps: bool = False) -> Headers:
    """The headers a replayed record carries (pure); ``fresh_timestamps``: identifies are sent without time."""
    kept = tuple((k, v) for k, v in record.headers if not is_dead_letter_header(k))
    if fresh_timestamps:
        kept = (*((k, v) for k, v in kept if k != IDENTIFY_TIMESTAMP_HEADER), (IDENTIFY_TIMESTAMP_HEADER, b"omit"))
    if any(k == "cio-origin-topic" for k, _ in kept):
        return kept  # replayed before: keep the first origin
    origin = (
        ("cio-origin-topic", record.header("cio-dlq-source-topic") or record.topic.encode()),
        ("cio-origin-partition", record.header("cio-dlq-source-partition") or str(record.partition).encode()),
        ("cio-origin-offset", record.header("cio-dlq-source-offset") or str(record.offset).encode()),
        ("cio-origin-timestamp", record.header("cio-dlq-source-timestamp") or str(record.timestamp_ms).encode()),
    )
    return kept + origin


def _text(record: Record, header: str) -> str:
    return (record.header(header) or b"").decode("utf-8", "replace")


@dataclass
class _Chunk:
    """What one fetched chunk asks for; the group's positions move only after all of it is acknowledged."""

    replays: list[tuple[str, Record]] = field(default_factory=list)
    carried: list[Record] = field(default_factory=list)
    positions: dict[Partition, int] = field(default_factory=dict)


async def replay(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:  # noqa: C901 - the command, in order
    """Replay the dead-letter topic up to its current end; print progress and a summary to ``out``."""
    topic = settings.sink.dlq_topic
    reasons = set(args.reason or ())
    limit: int | None = args.limit or None  # 0: no limit, as before
    consumer = Consumer(settings.kafka, args.group)
    producer = Producer(settings.kafka, max_request_size=await _dlq_limit(settings))
    await producer.start()
    replayed: Counter[tuple[str, str]] = Counter()
    carried = 0
    unreplayable: list[str] = []
    ends: dict[Partition, int] | None = None
    positions: dict[Partition, int] = {}
    stopped_by_limit = False

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
            chunk = _Chunk()
            budget = None if limit is None else limit - sum(replayed.values())
            for (record_topic, number), run in itertools.groupby(records, _TOPIC_AND_PARTITION):
                partition = Partition(record_topic, number)
                for record in run:
                    if ends is not None and record.offset >= ends.get(partition, 0):
                        break  # dead-lettered after the run started: left for the next replay
                    if budget is not None and len(chunk.replays) >= budget:
                        stopped_by_limit = True  # this record and the rest stay for the next replay
                        break
                    target = args.to_topic or _text(record, "cio-dlq-source-topic") or None
                    selected = not reasons or _text(record, "cio-dlq-reason") in reasons
                    if selected and target is not None and record.header(VALUE_TRUNCATED) is None:
                        chunk.replays.append((target, record))
                    elif selected and target is not None:
                        unreplayable.append(
                            f"{_text(record, 'cio-dlq-source-topic')}/{_text(record, 'cio-dlq-source-partition')}"
                            f"@{_text(record, 'cio-dlq-source-offset')}"
                        )
                    else:
                        chunk.carried.append(record)
                    chunk.positions[partition] = record.offset + 1
                if stopped_by_limit:
                    break
            if not args.dry_run:
                await _apply(producer, topic, chunk, fresh_timestamps=bool(getattr(args, "fresh_timestamps", False)))
                if chunk.positions:
                    await consumer.commit(chunk.positions)
            positions.update(chunk.positions)
            for target, record in chunk.replays:
                replayed[(target, _text(record, "cio-dlq-reason"))] += 1
            carried += len(chunk.carried)
            if records:
                idle_since = time.monotonic()
                _progress(out, sum(replayed.values()), carried, ends, positions)
            if stopped_by_limit:
                break
            if ends is not None and all(positions.get(p, 0) >= end for p, end in ends.items()):
                break
            if time.monotonic() - idle_since > IDLE_TIMEOUT_SECONDS:
                out.write("no more records arrived; stopping\n")
                break
    finally:
        await consumer.stop()
        await producer.stop()
    _summary(out, replayed, carried, unreplayable, dry_run=args.dry_run, stopped_by_limit=stopped_by_limit)
    return 0


async def _apply(producer: Producer, dlq_topic: str, chunk: _Chunk, *, fresh_timestamps: bool) -> None:
    """Produce the chunk's replays and carried copies and wait for every acknowledgement."""
    for target in dict.fromkeys(t for t, _ in chunk.replays):
        replays = [
            (r.key, r.value, replay_headers(r, fresh_timestamps=fresh_timestamps))
            for t, r in chunk.replays
            if t == target
        ]
        await producer.send_many(target, replays)
    if chunk.carried:
        await producer.send_many(dlq_topic, [(r.key, r.value, r.headers) for r in chunk.carried])


async def _dlq_limit(settings: Settings) -> int:
    """The producer's size limit: carried copies are as large as the dead letters the topic accepted."""
    limit = settings.sink.dlq_max_message_bytes
    if limit is None:
        try:
            limit = await topic_max_message_bytes(settings.kafka, settings.sink.dlq_topic)
        except BrokerUnavailableError:
            limit = None
    return max(DEFAULT_MAX_REQUEST_SIZE, limit or 0)


def _progress(
    out: TextIO, done: int, carried: int, ends: dict[Partition, int] | None, positions: dict[Partition, int]
) -> None:
    total = sum(ends.values()) if ends else 0
    read = sum(positions.values())
    out.write(f"\rread {read}/{total} dead-letter records: {done} replayed, {carried} kept for a later replay")
    out.flush()


def _summary(
    out: TextIO,
    replayed: Counter[tuple[str, str]],
    carried: int,
    unreplayable: list[str],
    *,
    dry_run: bool,
    stopped_by_limit: bool,
) -> None:
    verb = "would replay" if dry_run else "replayed"
    out.write(f"\n{verb} {sum(replayed.values())} records\n")
    for (target, reason), count in sorted(replayed.items()):
        out.write(f"  {count:>8}  → {target}  (reason: {reason or 'unknown'})\n")
    if carried:
        how = "would be copied" if dry_run else "copied"
        out.write(
            f"kept {carried} records not selected (other --reason, or no source topic: use --to-topic) for a "
            f"later replay: {how} to the end of the dead-letter topic\n"
        )
    if stopped_by_limit:
        out.write("stopped at --limit: the records after it are left for the next replay\n")
    if unreplayable:
        out.write(
            f"{len(unreplayable)} records cannot be replayed: their value was truncated to fit the dead-letter "
            "topic; the originals are at (source topic/partition@offset, until their retention):\n"
        )
        for position in unreplayable[:50]:
            out.write(f"  {position}\n")
        if len(unreplayable) > 50:
            out.write(f"  … and {len(unreplayable) - 50} more\n")
