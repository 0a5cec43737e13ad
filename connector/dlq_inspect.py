"""``cio-connector dlq inspect``: what is in the dead-letter topic, by reason, with a few examples.

Invariants:
- Read-only and group-less: the partitions are assigned (no consumer group is joined, nothing is
  committed), read from their first offset up to the end offsets taken when the command started. The
  sink's group and ``dlq replay``'s group never see this reader.
- No secret and little user data in the output: an example shows only the connector's own ``cio-dlq-*``
  headers (reason, message, status, workspace, source topic/partition/offset/time), never the record's
  own headers (an upstream producer may put tokens there) nor its key; the value — user data — is cut to
  its first ``VALUE_PREVIEW_CHARS`` characters, control characters escaped. Everything printed is also
  masked against the configured secrets (``logs.mask``).

``summarise`` is pure (records → Summary); ``inspect`` is the I/O around it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

import orjson

from connector import logs
from connector.config import Settings
from connector.kafka import Consumer, Partition, Record, topic_partitions
from connector.sink.dlq import VALUE_TRUNCATED

VALUE_PREVIEW_CHARS: Final = 120
IDLE_TIMEOUT_SECONDS: Final = 30.0
FETCH_TIMEOUT_MS: Final = 500
# The connector's own headers an example shows (label → header); nothing else of the record is shown.
EXAMPLE_HEADERS: Final = (
    ("message", "cio-dlq-message"),
    ("status", "cio-dlq-status"),
    ("workspace", "cio-dlq-workspace"),
    ("source_topic", "cio-dlq-source-topic"),
    ("source_partition", "cio-dlq-source-partition"),
    ("source_offset", "cio-dlq-source-offset"),
    ("dead_lettered_at", "cio-dlq-time"),
)
UNKNOWN_REASON: Final = "(no reason header)"


def _header(record: Record, name: str) -> str:
    return (record.header(name) or b"").decode("utf-8", "replace")


def preview(value: bytes | None, limit: int = VALUE_PREVIEW_CHARS) -> str:
    """The first ``limit`` characters of a value, one line, control characters escaped (pure)."""
    if value is None:
        return "(null)"
    text = value[: limit * 4].decode("utf-8", "replace")[:limit]
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown + ("…" if len(value) > len(text.encode("utf-8", "replace")) else "")


def example(record: Record) -> dict[str, Any]:
    """What one dead letter shows: the connector's headers, where it lies, and a preview of its value (pure)."""
    shown: dict[str, Any] = {label: _header(record, name) for label, name in EXAMPLE_HEADERS}
    shown["dlq_partition"] = record.partition
    shown["dlq_offset"] = record.offset
    shown["value_bytes"] = len(record.value or b"")
    shown["value_preview"] = preview(record.value)
    shown["value_truncated_in_dlq"] = record.header(VALUE_TRUNCATED) is not None
    return shown


@dataclass
class Summary:
    """Counts per reason of the records that match, and up to ``limit`` examples of each."""

    limit: int
    read: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, record: Record, reasons: frozenset[str], sources: frozenset[str]) -> None:
        self.read += 1
        reason = _header(record, "cio-dlq-reason") or UNKNOWN_REASON
        if reasons and reason not in reasons:
            return
        if sources and _header(record, "cio-dlq-source-topic") not in sources:
            return
        self.counts[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < self.limit:
            kept.append(example(record))

    @property
    def matched(self) -> int:
        return sum(self.counts.values())

    def ordered(self) -> list[tuple[str, int]]:
        """Reasons by count, most frequent first (then by name)."""
        return sorted(self.counts.items(), key=lambda rc: (-rc[1], rc[0]))


def summarise(
    records: Iterable[Record], reasons: Iterable[str] = (), sources: Iterable[str] = (), limit: int = 3
) -> Summary:
    """The Summary of ``records`` (pure)."""
    summary = Summary(max(0, limit))
    wanted, from_topics = frozenset(reasons), frozenset(sources)
    for record in records:
        summary.add(record, wanted, from_topics)
    return summary


def to_json(topic: str, summary: Summary, complete: bool) -> dict[str, Any]:
    """The ``--json`` document (pure)."""
    return {
        "topic": topic,
        "complete": complete,
        "read": summary.read,
        "matched": summary.matched,
        "reasons": [
            {"reason": reason, "count": count, "examples": summary.examples.get(reason, [])}
            for reason, count in summary.ordered()
        ],
    }


def format_summary(topic: str, summary: Summary, complete: bool) -> str:
    """The human view: a count table, then each reason's examples (pure)."""
    lines = [f"dead-letter topic {topic}: {summary.read} records read, {summary.matched} match"]
    if not complete:
        lines.append("(stopped early: the topic did not reach its end offsets; the counts are partial)")
    if not summary.counts:
        return "\n".join(lines)
    width = max(len("REASON"), *(len(reason) for reason in summary.counts))
    lines.append(f"{'REASON':<{width}}  COUNT")
    lines += [f"{reason:<{width}}  {count}" for reason, count in summary.ordered()]
    for reason, count in summary.ordered():
        shown = summary.examples.get(reason, [])
        if not shown:
            continue
        lines.append(f"\n{reason}: {len(shown)} of {count}")
        for ex in shown:
            source = f"{ex['source_topic'] or '?'}/{ex['source_partition'] or '?'}@{ex['source_offset'] or '?'}"
            lines.append(
                f"  {source}  workspace {ex['workspace'] or '-'}  status {ex['status'] or '-'}  "
                f"at {ex['dead_lettered_at'] or '-'}  (dead letter {ex['dlq_partition']}@{ex['dlq_offset']})"
            )
            lines.append(f"    message: {ex['message'] or '-'}")
            cut = ", cut to fit the dead-letter topic" if ex["value_truncated_in_dlq"] else ""
            lines.append(f"    value ({ex['value_bytes']} bytes{cut}): {ex['value_preview']}")
    return "\n".join(lines)


async def read_to_end(
    consumer: Consumer,
    partitions: list[Partition],
    summary: Summary,
    *,
    reasons: frozenset[str],
    sources: frozenset[str],
) -> bool:
    """Feed every record below the start-time end offsets to ``summary``; False when it stopped idle."""
    ends = await consumer.end_offsets(partitions)
    firsts = await consumer.beginning_offsets(partitions)
    pending = {p for p in partitions if ends[p] > firsts[p]}
    consumer.assign(partitions)
    for p in partitions:
        consumer.seek(p, firsts[p])
    idle_since = time.monotonic()
    while pending:
        records = await consumer.fetch(FETCH_TIMEOUT_MS)
        for record in records:
            p = Partition(record.topic, record.partition)
            if record.offset < ends[p]:
                summary.add(record, reasons, sources)
        # The position, not the last record, says when a partition is done: transaction markers and
        # compacted offsets never come back as records.
        for p in list(pending):
            position = await consumer.position(p)
            if position is not None and position >= ends[p]:
                pending.discard(p)
        if records:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > IDLE_TIMEOUT_SECONDS:
            return False
    return True


async def inspect(
    settings: Settings,
    *,
    reasons: list[str] | None,
    sources: list[str] | None,
    limit: int,
    as_json: bool,
    out: TextIO,
) -> int:
    """Summarise the dead-letter topic; print it to ``out``; 0."""
    topic = settings.sink.dlq_topic
    partitions = await topic_partitions(settings.kafka, [topic])
    summary = Summary(max(0, limit))
    consumer = Consumer(settings.kafka, None)
    try:
        await consumer.connect()
        complete = await read_to_end(
            consumer, partitions, summary, reasons=frozenset(reasons or ()), sources=frozenset(sources or ())
        )
    finally:
        await consumer.stop()
    if as_json:
        text = orjson.dumps(to_json(topic, summary, complete), option=orjson.OPT_INDENT_2).decode()
    else:
        text = format_summary(topic, summary, complete)
    out.write(logs.mask(text) + "\n")
    return 0
