"""What ``cio-connector top`` shows, as lines of text (pure: snapshots and the /readyz body in, lines out).

Sections, each shown only when the instance exports its metrics (a ``webhooks`` role has no sink rows):
readiness per check; records per second per topic; operations, requests, in-flight/limit, retries and
429s per workspace; lag per partition; dead letters by workspace and reason; webhook requests by outcome (and workspace path, when
per-workspace paths are in use).
Rates need two scrapes: the first frame shows ``…`` in their place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.top.scrape import Key, Snapshot, rates, values

MAX_LAG_ROWS = 12  # the partitions with the most lag; the rest are summed on one line
PENDING = "…"
SINGLE_PATH = "(single path)"  # webhook requests on CONNECTOR_WEBHOOK_PATH itself (label workspace="")


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything one screen is drawn from."""

    url: str
    interval: float
    after: Snapshot
    before: Snapshot | None = None  # the previous scrape, for rates
    readiness: Mapping[str, Any] | None = None  # the /readyz body
    problem: str | None = None  # why the latest scrape failed, when it did (older data is shown)


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    if value == int(value):
        return str(int(value))
    return f"{value:.1f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell: the first ``left`` (names) left-aligned, the rest (numbers) right."""
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return [line(headers), *(line(row) for row in rows)]


class _Rates:
    """Rates between the frame's two scrapes, or ``…`` before there are two."""

    def __init__(self, frame: Frame) -> None:
        self._before, self._after = frame.before, frame.after

    def of(self, name: str, by: tuple[str, ...], where: Mapping[str, str] | None = None) -> dict[Key, float] | None:
        if self._before is None:
            return None
        return rates(self._before, self._after, name, by, where)

    @staticmethod
    def cell(found: Mapping[Key, float] | None, key: Key) -> str:
        return PENDING if found is None else _number(found.get(key, 0.0))


def _readiness(body: Mapping[str, Any] | None) -> list[str]:
    if body is None:
        return ["READY  unknown (/readyz did not answer)"]
    checks = body.get("checks", {})
    overall = "yes" if body.get("ready") else "NO"
    rows = [
        [name, "ok" if check.get("ready") else "NOT READY", str(check.get("detail", ""))]
        for name, check in sorted(checks.items())
    ]
    return [f"READY  {overall}", *("  " + line for line in table(["check", "state", "detail"], rows, left=3))]


def _records(frame: Frame, r: _Rates) -> list[str]:
    consumed = r.of("connector_records_consumed_total", ("topic",))
    completed = r.of("connector_records_completed_total", ("topic", "outcome"))
    topics = sorted(
        {k[0] for k in values(frame.after, "connector_records_consumed_total", ("topic",))}
        | {k[0] for k in values(frame.after, "connector_records_completed_total", ("topic",))}
    )
    if not topics:
        return []
    outcomes = ("delivered", "dead_lettered", "filtered", "skipped")
    rows = [
        [topic, r.cell(consumed, (topic,)), *(r.cell(completed, (topic, outcome)) for outcome in outcomes)]
        for topic in topics
    ]
    in_flight = values(frame.after, "connector_records_in_flight", ()).get((), 0.0)
    title = f"RECORDS/s per topic   (in flight: {_number(in_flight)})"
    return [title, *("  " + line for line in table(["topic", "consumed", *outcomes], rows))]


def _workspaces(frame: Frame, r: _Rates) -> list[str]:
    after = frame.after
    ready = values(after, "connector_workspace_ready", ("workspace",))
    names = sorted(k[0] for k in ready)
    if not names:
        return []
    operations = r.of("connector_operations_total", ("workspace", "outcome"))
    requests = r.of("connector_requests_total", ("workspace",))
    retries = r.of("connector_retries_total", ("workspace",))
    throttled = r.of("connector_responses_total", ("workspace",), {"status": "429"})
    in_flight = values(after, "connector_in_flight_requests", ("workspace",))
    limit = values(after, "connector_concurrency_limit", ("workspace",))
    buffered = values(after, "connector_operations_buffered", ("workspace",))
    rows = [
        [
            name,
            "yes" if ready.get((name,)) else "NO",
            r.cell(operations, (name, "delivered")),
            r.cell(operations, (name, "dead_lettered")),
            r.cell(requests, (name,)),
            f"{_number(in_flight.get((name,), 0.0))}/{_number(limit.get((name,), 0.0))}",
            r.cell(retries, (name,)),
            r.cell(throttled, (name,)),
            _number(buffered.get((name,), 0.0)),
        ]
        for name in names
    ]
    headers = [
        "workspace",
        "ready",
        "ops ok/s",
        "ops dlq/s",
        "req/s",
        "in flight/limit",
        "retry/s",
        "429/s",
        "buffered",
    ]
    return ["OPERATIONS per workspace", *("  " + line for line in table(headers, rows, left=2))]


def _lag(frame: Frame) -> list[str]:
    lag = values(frame.after, "connector_consumer_lag_records", ("topic", "partition"))
    if not lag:
        return []
    ordered = sorted(lag.items(), key=lambda item: (-item[1], item[0][0], int(item[0][1] or 0)))
    shown, rest = ordered[:MAX_LAG_ROWS], ordered[MAX_LAG_ROWS:]
    rows = [[f"{topic}-{partition}", _number(value)] for (topic, partition), value in shown]
    if rest:
        rows.append([f"… {len(rest)} more", _number(sum(value for _, value in rest))])
    title = f"LAG   (total: {_number(sum(lag.values()))} records)"
    return [title, *("  " + line for line in table(["partition", "records"], rows))]


def _dead_letters(frame: Frame, r: _Rates) -> list[str]:
    totals = values(frame.after, "connector_dead_letters_total", ("workspace", "reason"))
    if not totals:
        return []
    per_second = r.of("connector_dead_letters_total", ("workspace", "reason"))
    rows = [
        [workspace, reason, r.cell(per_second, (workspace, reason)), _number(total)]
        for (workspace, reason), total in sorted(totals.items())
    ]
    return ["DEAD LETTERS", *("  " + line for line in table(["workspace", "reason", "per s", "total"], rows, left=2))]


def _webhooks(frame: Frame, r: _Rates) -> list[str]:
    """Requests by outcome; by workspace path too once a workspace's own path has had requests (so one
    workspace's failing signatures are told apart), the single path shown as ``(single path)``."""
    by_workspace = values(frame.after, "connector_webhook_requests_total", ("workspace", "outcome"))
    if not by_workspace:
        return []
    events = r.of("connector_webhook_events_total", ())
    title = f"WEBHOOKS   (events produced/s: {r.cell(events, ())})"
    if all(workspace == "" for workspace, _ in by_workspace):
        totals = values(frame.after, "connector_webhook_requests_total", ("outcome",))
        per_second = r.of("connector_webhook_requests_total", ("outcome",))
        rows = [[outcome, r.cell(per_second, (outcome,)), _number(n)] for (outcome,), n in sorted(totals.items())]
        return [title, *("  " + line for line in table(["outcome", "per s", "total"], rows))]
    rates_by = r.of("connector_webhook_requests_total", ("workspace", "outcome"))
    rows = [
        [workspace or SINGLE_PATH, outcome, r.cell(rates_by, (workspace, outcome)), _number(total)]
        for (workspace, outcome), total in sorted(by_workspace.items())
    ]
    return [title, *("  " + line for line in table(["workspace", "outcome", "per s", "total"], rows, left=2))]


def render(frame: Frame) -> list[str]:
    """The screen's lines, top to bottom."""
    r = _Rates(frame)
    lines = [f"cio-connector top   {frame.url}   every {frame.interval:g} s   q quits"]
    if frame.problem is not None:
        lines.append(f"! {frame.problem} (showing the last good scrape)")
    for section in (
        _readiness(frame.readiness),
        _records(frame, r),
        _workspaces(frame, r),
        _lag(frame),
        _dead_letters(frame, r),
        _webhooks(frame, r),
    ):
        if section:
            lines.extend(["", *section])
    return lines
