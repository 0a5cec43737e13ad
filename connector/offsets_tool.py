"""``cio-connector offsets show|reset``: the sink group's committed offsets, and moving them.

``show`` prints, per partition of the sink's topics (``CONNECTOR_INPUT_TOPICS``, the topics matching
``CONNECTOR_INPUT_TOPIC_PATTERN``, or ``--topic``): the committed offset (``-`` if none), the end offset
and the lag. ``reset --to earliest|latest|<ISO time>`` commits the new positions for the group.

Invariant: ``reset`` never moves the offsets of a group with active members. It asks the broker for the
group's members first and refuses (exit 1) while there are any; the broker itself also rejects a
commit from outside the generation of a group that is running. ``--dry-run`` prints the plan and commits
nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TextIO

from connector.config import Settings
from connector.errors import BrokerUnavailableError, ConnectorError
from connector.kafka import (
    Consumer,
    Partition,
    group_committed_offsets,
    group_member_count,
    list_topic_names,
    topic_partitions,
)
from connector.sink.start import EARLIEST, Offsets, StartFrom, start_offsets
from connector.sink.subscription import output_topics, subscription_pattern


class OffsetsError(ConnectorError):
    """The command cannot proceed; ``str()`` is the one line shown to the user."""


async def sink_topics(settings: Settings, chosen: Sequence[str] | None) -> list[str]:
    """``--topic`` if given, else the sink's topics by name, else the existing topics its pattern matches."""
    if chosen:
        return list(dict.fromkeys(chosen))
    if settings.sink.input_topics:
        return list(settings.sink.input_topics)
    pattern = settings.sink.input_topic_pattern
    if pattern is None:
        raise OffsetsError("no topics: set CONNECTOR_INPUT_TOPICS or CONNECTOR_INPUT_TOPIC_PATTERN, or pass --topic")
    regex = re.compile(subscription_pattern(pattern, output_topics(settings)))
    names = [name for name in await list_topic_names(settings.kafka) if regex.match(name)]
    if not names:
        raise OffsetsError(f"no existing topic matches CONNECTOR_INPUT_TOPIC_PATTERN {pattern!r}")
    return names


def format_table(rows: Sequence[tuple[str, ...]]) -> str:
    """Left-aligned columns separated by two spaces; no trailing newline."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


async def show(settings: Settings, topics: Sequence[str] | None, out: TextIO) -> int:
    """Print committed offset, end offset and lag per partition; 0."""
    group = settings.sink.group_id
    partitions = await topic_partitions(settings.kafka, await sink_topics(settings, topics))
    committed = await group_committed_offsets(settings.kafka, group)
    ends = await _end_offsets(settings, partitions)
    rows = [("TOPIC", "PARTITION", "COMMITTED", "END", "LAG")]
    for p in partitions:
        done = committed.get(p)
        lag = "-" if done is None else str(max(0, ends[p] - done))
        rows.append((p.topic, str(p.partition), "-" if done is None else str(done), str(ends[p]), lag))
    out.write(f"group {group}\n{format_table(rows)}\n")
    return 0


async def reset(settings: Settings, to: StartFrom, topics: Sequence[str] | None, dry_run: bool, out: TextIO) -> int:
    """Commit ``to``'s offsets for the group (or only print them with ``dry_run``); 0 when done."""
    group = settings.sink.group_id
    partitions = await topic_partitions(settings.kafka, await sink_topics(settings, topics))
    members = await group_member_count(settings.kafka, group)
    if members and not dry_run:
        raise OffsetsError(f"group {group} has {members} active member(s): stop every sink of the group, then reset")
    committed = await group_committed_offsets(settings.kafka, group)
    consumer = Consumer(settings.kafka, group)
    try:
        await consumer.connect()
        end = await consumer.end_offsets(partitions)
        beginning = await consumer.beginning_offsets(partitions) if to.kind == EARLIEST else {}
        at_time = await consumer.offsets_for_time(partitions, to.timestamp_ms) if to.timestamp_ms is not None else {}
        target = start_offsets(to, partitions, Offsets(beginning, end, at_time))
        rows = [("TOPIC", "PARTITION", "COMMITTED", "NEW", "END")]
        for p in partitions:
            done = committed.get(p)
            rows.append((p.topic, str(p.partition), "-" if done is None else str(done), str(target[p]), str(end[p])))
        if dry_run:
            note = f" ({members} active member(s): a reset would be refused now)" if members else ""
            out.write(f"dry run: group {group} would be reset to {to}{note}; nothing committed\n")
            out.write(format_table(rows) + "\n")
            return 0
        consumer.assign(partitions)
        try:
            await consumer.commit(target)
        except BrokerUnavailableError as exc:
            raise OffsetsError(f"group {group}: {exc} (is a sink of the group running?)") from None
    finally:
        await consumer.stop()
    out.write(f"group {group} reset to {to}\n{format_table(rows)}\n")
    return 0


async def _end_offsets(settings: Settings, partitions: list[Partition]) -> dict[Partition, int]:
    consumer = Consumer(settings.kafka, settings.sink.group_id)
    try:
        await consumer.connect()
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
