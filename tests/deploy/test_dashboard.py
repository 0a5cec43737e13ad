"""grafana/: the dashboard is importable, generated, valid PromQL over declared metrics, and provisioned."""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import ROOT, promql_metric_names, run_tool

GRAFANA = ROOT / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "cio-connector.json"
DATASOURCE_UID = "prometheus"

# Counters that only move when something goes wrong: their panels must show 0, not "No data".
FAILURE_METRICS = {
    "connector_dead_letters_total",
    "connector_dead_letters_unwritable_total",
    "connector_dead_letters_reduced_total",
    "connector_filtered_total",
    "connector_retries_total",
    "connector_auth_failures_total",
    "connector_rate_limit_waits_total",
    "connector_rate_limit_wait_seconds_total",
    "connector_webhook_signature_failures_total",
    "connector_transactional_sends_total",
}

# What the dashboard must show (metric → why), from the observability issue.
REQUIRED_METRICS = {
    "connector_records_consumed_total": "records consumed / s",
    "connector_operations_total": "operations delivered / s per workspace",
    "connector_consumer_lag_records": "consumer lag, sum and per partition",
    "connector_end_to_end_delay_seconds_bucket": "end-to-end delay quantiles",
    "connector_requests_total": "requests by status class",
    "connector_dead_letters_total": "dead letters by reason",
    "connector_dead_letters_unwritable_total": "records committed without a dead-letter copy",
    "connector_dead_letters_reduced_total": "dead-letter copies reduced to fit",
    "connector_responses_total": "429 rate",
    "connector_concurrency_limit": "adaptive concurrency limit",
    "connector_in_flight_requests": "requests in flight",
    "connector_rate_limit_waits_total": "rate-limiter waits",
    "connector_batch_operations_bucket": "batch sizes",
    "connector_request_duration_seconds_bucket": "request duration p50/p99",
    "connector_retries_total": "retries by cause",
    "connector_partitions_paused": "paused partitions",
    "connector_commit_duration_seconds_bucket": "commit latency",
    "connector_webhook_events_total": "webhook traffic by metric",
    "connector_webhook_requests_total": "webhook requests by outcome",
    "connector_webhook_signature_failures_total": "signature failures",
    "connector_webhook_produce_duration_seconds_bucket": "webhook produce latency",
    "connector_webhook_duplicates_total": "duplicates",
    "connector_workspace_ready": "readiness per workspace",
    "connector_ready": "readiness",
    "connector_build_info": "build info",
}


def _load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def _panels() -> list[dict[str, Any]]:
    return [p for p in _load()["panels"] if p["type"] != "row"]


def _queries() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in _panels() for target in panel["targets"]]


QUERIES = _queries()


def test_dashboard_is_the_generators_output() -> None:
    """The committed JSON is exactly what grafana/generate_dashboard.py writes (edit the script, rerun it)."""
    generator = runpy.run_path(str(GRAFANA / "generate_dashboard.py"), run_name="generate_dashboard")
    assert DASHBOARD.read_text(encoding="utf-8") == generator["render"](), "run: python grafana/generate_dashboard.py"


def test_dashboard_is_importable() -> None:
    """A Grafana dashboard model: uid, title, unique panel ids, panels on the 24-column grid, provisioned uid."""
    dashboard = _load()
    assert dashboard["uid"] == "cio-connector"
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert "${DS_" not in DASHBOARD.read_text(encoding="utf-8")
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert all(t["datasource"]["uid"] == DATASOURCE_UID for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize(("title", "expr"), QUERIES, ids=[f"{t}: {e[:60]}" for t, e in QUERIES])
def test_query_uses_only_declared_metrics(
    title: str, expr: str, undeclared_metrics: Callable[[str], list[str]]
) -> None:
    """Every panel query selects only metrics that connector/metrics.py declares."""
    assert promql_metric_names(expr), f"{title}: no metric in {expr}"
    assert undeclared_metrics(expr) == [], title


@pytest.mark.parametrize(("title", "expr"), QUERIES, ids=[f"{t}: {e[:60]}" for t, e in QUERIES])
def test_query_runs_as_is_against_prometheus(title: str, expr: str) -> None:
    """No Grafana-only variables, and failure counters fall back to 0 so that a healthy service shows data."""
    assert "$" not in expr, title
    if promql_metric_names(expr) & FAILURE_METRICS:
        assert "or on() vector(0)" in expr, title


def test_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses every panel query (each checked as a recording rule)."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(QUERIES)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    run_tool([promtool, "check", "rules", str(path)])


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    """Throughput, lag, delay, errors, DLQ, 429s, concurrency, batches, retries, commits, webhooks, readiness."""
    used: set[str] = set()
    for _, expr in QUERIES:
        used |= promql_metric_names(expr)
    missing = {name: why for name, why in REQUIRED_METRICS.items() if name not in used}
    assert missing == {}
    assert any('status="429"' in expr for _, expr in QUERIES)
    assert any("partition" in expr and "connector_consumer_lag_records" in expr for _, expr in QUERIES)


def test_provisioning_matches_the_dashboard_and_compose() -> None:
    """The provisioned datasource has the uid the panels use; the dashboard provider reads the mounted folder."""
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    (provider,) = providers["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in volumes
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in volumes


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (topic) (rate(connector_records_consumed_total[1m]))", {"connector_records_consumed_total"}),
        ('sum(rate(x_total{status=~"4xx|5xx", a="b(c)"}[5m])) or on() vector(0)', {"x_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[1m])))", {"h_bucket"}),
        ("a / on(instance) group_left(version) b > 1e3 offset 5m", {"a", "b"}),
        ("absent(connector_build_info)", {"connector_build_info"}),
        ("min by (workspace) (w) == bool 0 unless ignoring(x) z", {"w", "z"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    """The PromQL scanner finds metric names, not functions, labels, keywords, numbers or durations."""
    assert promql_metric_names(expr) == names
