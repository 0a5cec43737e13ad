"""Writes grafana/dashboards/cio-connector.json, the dashboard of the connector.

The JSON is generated so that panels stay uniform and their queries stay readable here; edit this file and
run ``python grafana/generate_dashboard.py``. tests/deploy/test_dashboard.py checks that the committed JSON
is this script's output and that every query uses only metrics declared in connector/metrics.py.

Queries use plain ``[1m]`` windows (no Grafana-only variables) so that they can be evaluated as they are
against Prometheus. Panels about failures end in ``or on() vector(0)``: they show 0, not "No data", while
all is well.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).parent / "dashboards" / "cio-connector.json"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE = "[1m]"


@dataclass(frozen=True)
class Panel:
    """One panel: a title, its queries as (expr, legend) pairs, a unit and a width out of 24."""

    title: str
    queries: tuple[tuple[str, str], ...]
    unit: str = "short"
    width: int = 8
    kind: str = "timeseries"
    description: str = ""
    mappings: tuple[tuple[str, str, str], ...] = ()  # (value, text, color) for stat panels
    text_mode: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)


def rate(metric: str, by: str = "", matchers: str = "") -> str:
    """``sum by (labels) (rate(metric{matchers}[1m]))``."""
    inner = f"rate({metric}{matchers}{RATE})"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def quantiles(metric: str, by: str = "", legend: str = "") -> tuple[tuple[str, str], ...]:
    """p50 and p99 of a histogram, optionally per label."""
    labels = f"le, {by}" if by else "le"
    return tuple(
        (f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket{RATE})))", f"{name}{legend}")
        for q, name in ((0.5, "p50"), (0.99, "p99"))
    )


def or_zero(expr: str) -> str:
    """Show 0 instead of "No data" while nothing failed (``on()``: and no extra 0 series once something did)."""
    return f"{expr} or on() vector(0)"


# As the alert CioConnectorDeadLetterUnwritable: a series born within the window counts with its whole value
# (increase() alone misses a counter's first increment, which is when its series appears).
UNWRITABLE_10M = (
    "sum by (workspace, reason) ("
    "(connector_dead_letters_unwritable_total unless connector_dead_letters_unwritable_total offset 10m)"
    " or increase(connector_dead_letters_unwritable_total[10m]))"
)
FAILED_REQUESTS = rate("connector_requests_total", "", '{status_class=~"4xx|5xx|network"}')
READY = (("0", "NOT READY", "red"), ("1", "READY", "green"))

ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Overview",
        (
            Panel(
                "Readiness",
                (("min by (component) (connector_ready)", "{{component}}"),),
                kind="stat",
                width=6,
                mappings=READY,
                description="1 while /readyz answers 200, per component (worst replica).",
            ),
            Panel(
                "Workspace readiness",
                (("min by (workspace) (connector_workspace_ready)", "{{workspace}}"),),
                kind="stat",
                width=6,
                mappings=(("0", "STOPPED (401/403)", "red"), ("1", "READY", "green")),
                description="0 while Customer.io rejects the workspace's credentials; its records wait in Kafka.",
            ),
            Panel(
                "Workspaces",
                (("max by (workspace, region) (connector_workspace_info)", "{{workspace}} ({{region}})"),),
                kind="stat",
                width=4,
                text_mode="name",
                description="Configured workspaces and their pinned region.",
            ),
            Panel(
                "Build",
                (("count by (version) (connector_build_info)", "v{{version}}"),),
                kind="stat",
                width=4,
                text_mode="value_and_name",
                description="Replicas running each version.",
            ),
            Panel(
                "Partitions",
                (
                    ("sum(connector_partitions_assigned)", "assigned"),
                    ("sum(connector_partitions_paused)", "paused"),
                ),
                kind="stat",
                width=4,
                text_mode="value_and_name",
                description="Input partitions assigned to all replicas, and those paused for backpressure.",
            ),
        ),
    ),
    (
        "Sink: Kafka → Customer.io",
        (
            Panel(
                "Records consumed / s",
                ((rate("connector_records_consumed_total", "topic"), "{{topic}}"),),
                unit="ops",
            ),
            Panel(
                "Records resolved / s by outcome",
                ((rate("connector_records_completed_total", "outcome"), "{{outcome}}"),),
                unit="ops",
                description="delivered, dead_lettered or filtered; only resolved records are committed.",
            ),
            Panel(
                "Operations delivered / s per workspace",
                ((rate("connector_operations_total", "workspace", '{outcome="delivered"}'), "{{workspace}}"),),
                unit="ops",
            ),
            Panel(
                "Consumer lag",
                (("sum by (topic) (connector_consumer_lag_records)", "{{topic}}"),),
                description="End offset minus committed offset, summed over partitions.",
            ),
            Panel(
                "Consumer lag per partition",
                (("sum by (topic, partition) (connector_consumer_lag_records)", "{{topic}}[{{partition}}]"),),
            ),
            Panel(
                "End-to-end delay",
                quantiles("connector_end_to_end_delay_seconds", "workspace", " {{workspace}}"),
                unit="s",
                description="From the Kafka record timestamp to Customer.io's acceptance, observed once per "
                "accepted batch for its first (oldest) record: quantiles over batches.",
            ),
            Panel(
                "In flight and buffered",
                (
                    ("sum(connector_records_in_flight)", "records in flight"),
                    ("sum by (workspace) (connector_operations_buffered)", "operations buffered {{workspace}}"),
                ),
            ),
            Panel(
                "Offset commits / s",
                ((rate("connector_commits_total", "outcome"), "{{outcome}}"),),
                unit="ops",
            ),
            Panel(
                "Commit latency",
                quantiles("connector_commit_duration_seconds"),
                unit="s",
            ),
        ),
    ),
    (
        "Customer.io API",
        (
            Panel(
                "Requests / s by status class",
                ((rate("connector_requests_total", "status_class"), "{{status_class}}"),),
                unit="reqps",
            ),
            Panel(
                "Error share (4xx, 5xx, network)",
                ((f"({or_zero(FAILED_REQUESTS)}) / {rate('connector_requests_total')}", "errors"),),
                unit="percentunit",
            ),
            Panel(
                "429 Too Many Requests / s",
                ((or_zero(rate("connector_responses_total", "workspace", '{status="429"}')), "{{workspace}}"),),
                unit="reqps",
            ),
            Panel(
                "Request duration",
                quantiles("connector_request_duration_seconds", "endpoint", " {{endpoint}}"),
                unit="s",
            ),
            Panel(
                "Adaptive concurrency",
                (
                    ("sum by (workspace) (connector_concurrency_limit)", "limit {{workspace}}"),
                    ("sum by (workspace) (connector_in_flight_requests)", "in flight {{workspace}}"),
                ),
                description="The AIMD in-flight limit and the requests awaiting a response.",
            ),
            Panel(
                "Rate-limiter waits / s",
                ((or_zero(rate("connector_rate_limit_waits_total", "workspace, api")), "{{workspace}} {{api}}"),),
                unit="ops",
            ),
            Panel(
                "Rate-limiter wait time",
                (
                    (
                        or_zero(rate("connector_rate_limit_wait_seconds_total", "workspace, api")),
                        "{{workspace}} {{api}}",
                    ),
                ),
                unit="s",
                description="Seconds spent waiting for the client-side rate limiter, per second.",
            ),
            Panel(
                "Batch size (operations)",
                (
                    *quantiles("connector_batch_operations"),
                    (
                        "sum(rate(connector_batch_operations_sum[1m])) / sum(rate(connector_batch_operations_count[1m]))",
                        "mean",
                    ),
                ),
            ),
            Panel(
                "Batch size (bytes)",
                (
                    *quantiles("connector_batch_bytes"),
                    ("sum(rate(connector_batch_bytes_sum[1m])) / sum(rate(connector_batch_bytes_count[1m]))", "mean"),
                ),
                unit="decbytes",
            ),
        ),
    ),
    (
        "Failures and backpressure",
        (
            Panel(
                "Dead letters / s by reason",
                ((or_zero(rate("connector_dead_letters_total", "workspace, reason")), "{{workspace}} {{reason}}"),),
                unit="ops",
                width=12,
            ),
            Panel(
                "Filtered / s by reason",
                ((or_zero(rate("connector_filtered_total", "workspace, reason")), "{{workspace}} {{reason}}"),),
                unit="ops",
                width=12,
            ),
            Panel(
                "Dead letters without a copy in 10m",
                ((or_zero(UNWRITABLE_10M), "{{workspace}} {{reason}}"),),
                width=12,
                description="Rejected records committed WITHOUT a dead-letter copy (even the smallest was refused "
                "as too large): only in their source topic until retention. Must stay 0; pages "
                "(CioConnectorDeadLetterUnwritable).",
            ),
            Panel(
                "Reduced dead-letter copies / s",
                ((or_zero(rate("connector_dead_letters_reduced_total", "form")), "{{form}}"),),
                unit="ops",
                width=12,
                description="Copies cut to fit the dead-letter topic: value_truncated (value cut, cannot be "
                "replayed) or minimal (dead-letter headers only).",
            ),
            Panel(
                "Retries / s by cause",
                ((or_zero(rate("connector_retries_total", "cause")), "{{cause}}"),),
                unit="ops",
            ),
            Panel(
                "Credential rejections (401/403) in 5m",
                (
                    (
                        "sum by (workspace, api) (increase(connector_auth_failures_total[5m])) or on() vector(0)",
                        "{{workspace}} {{api}}",
                    ),
                ),
            ),
            Panel(
                "Paused partitions",
                (("sum by (instance) (connector_partitions_paused)", "{{instance}}"),),
                description="Paused when retries run out or too many operations are buffered.",
            ),
            Panel(
                "Partitions revoked in 5m (rebalances)",
                (("sum by (instance) (increase(connector_partitions_revoked_total[5m]))", "{{instance}}"),),
                description="Taken from a replica by a rebalance: a steady rise is a rebalance loop (runbook).",
            ),
            Panel(
                "Schema Registry: lookups / s by outcome, fetches waiting",
                (
                    (or_zero(rate("connector_schema_registry_lookups_total", "outcome")), "{{outcome}}"),
                    ("sum(connector_schema_fetches_in_progress)", "fetches waiting"),
                ),
                description="Fetches waiting above 0 for long: the registry is down and those partitions wait (runbook).",
            ),
            Panel(
                "Transactional sends / s",
                (
                    (
                        or_zero(rate("connector_transactional_sends_total", "workspace, outcome")),
                        "{{workspace}} {{outcome}}",
                    ),
                ),
                unit="ops",
                width=12,
            ),
        ),
    ),
    (
        "Webhooks: Customer.io → Kafka",
        (
            Panel(
                "Webhook events / s by metric",
                ((rate("connector_webhook_events_total", "metric"), "{{metric}}"),),
                unit="ops",
            ),
            Panel(
                "Webhook requests / s by outcome",
                ((rate("connector_webhook_requests_total", "outcome"), "{{outcome}}"),),
                unit="reqps",
            ),
            Panel(
                "Signature failures / s",
                ((or_zero(rate("connector_webhook_signature_failures_total", "reason")), "{{reason}}"),),
                unit="reqps",
            ),
            Panel(
                "Produce latency (until broker ack)",
                quantiles("connector_webhook_produce_duration_seconds"),
                unit="s",
                width=12,
            ),
            Panel(
                "Duplicates / s",
                (("sum(rate(connector_webhook_duplicates_total[1m]))", "duplicates"),),
                unit="ops",
                width=12,
                description="Customer.io retries acknowledged without producing again.",
            ),
        ),
    ),
)


def _targets(panel: Panel) -> list[dict[str, Any]]:
    return [
        {
            "datasource": DATASOURCE,
            "editorMode": "code",
            "expr": expr,
            "legendFormat": legend,
            "range": True,
            "refId": chr(ord("A") + i),
        }
        for i, (expr, legend) in enumerate(panel.queries)
    ]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int, height: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.kind == "stat":
        options: dict[str, Any] = {
            "colorMode": "background" if panel.mappings else "none",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": panel.text_mode,
        }
        defaults["color"] = {"mode": "thresholds"}
        defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "blue", "value": None}]}
        if panel.mappings:
            defaults["mappings"] = [
                {
                    "type": "value",
                    "options": {
                        value: {"text": text, "color": color, "index": i}
                        for i, (value, text, color) in enumerate(panel.mappings)
                    },
                }
            ]
    else:
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
        defaults["custom"] = {"drawStyle": "line", "fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
        defaults["min"] = 0
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "id": panel_id,
        "options": options,
        "targets": _targets(panel),
        "title": panel.title,
        "type": panel.kind,
        **panel.extra,
    }


def build() -> dict[str, Any]:
    """The dashboard as a JSON-ready dict."""
    panels: list[dict[str, Any]] = []
    panel_id = 0
    y = 0
    for row_title, row_panels in ROWS:
        panel_id += 1
        panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "id": panel_id,
                "panels": [],
                "title": row_title,
                "type": "row",
            }
        )
        y += 1
        x = 0
        height = 0
        for panel in row_panels:
            if x + panel.width > 24:
                x = 0
                y += height
            height = 4 if panel.kind == "stat" else 8
            panel_id += 1
            panels.append(_panel_json(panel, panel_id, x, y, height))
            x += panel.width
        y += height
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "Kafka → Customer.io sink and Customer.io reporting webhooks → Kafka.",
        "editable": True,
        "graphTooltip": 1,
        "links": [],
        "panels": panels,
        "refresh": "10s",
        "schemaVersion": 39,
        "tags": ["cio-connector", "kafka", "customer.io"],
        "templating": {"list": []},
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "cio-connector",
        "uid": "cio-connector",
        "version": 1,
    }


def render() -> str:
    """The dashboard file's exact content."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT}\n")
