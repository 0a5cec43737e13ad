"""deploy/prometheus: the alert rules are valid, unit-tested, use declared metrics and link their runbook."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import ROOT, TOOL_TIMEOUT_SECONDS, prometheus_major, run_tool

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
RUNBOOK = ROOT / "docs" / "operations.md"

REQUIRED_ALERTS = {
    "CioConnectorConsumerLagGrowing",
    "CioConnectorDeadLetterRateHigh",
    "CioConnectorDeadLetterUnwritable",
    "CioConnectorWorkspaceStopped",
    "CioConnectorCredentialsRejected",
    "CioConnectorWebhookSignatureFailures",
    "CioConnectorNotReady",
    "CioConnectorCustomerIoErrors",
    "CioConnectorCommitsFailing",
    "CioConnectorPartitionsPausedLong",
}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


RULES = _rules()


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+)$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {_github_anchor(h) for h in headings}


def test_promtool_check_rules(promtool: str) -> None:
    """promtool accepts alerts.yml."""
    run_tool([promtool, "check", "rules", str(ALERTS)])


def test_promtool_unit_tests(promtool: str) -> None:
    """The unit tests of the key alerts (alerts_test.yml) pass."""
    run_tool([promtool, "test", "rules", str(ALERTS_TEST)], cwd=PROMETHEUS_DIR)


def test_unit_tests_cover_the_required_alerts() -> None:
    """Every required alert is expected to fire in at least one unit test."""
    doc = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    fired = {
        case["alertname"] for test in doc["tests"] for case in test.get("alert_rule_test", []) if case.get("exp_alerts")
    }
    assert fired >= REQUIRED_ALERTS, sorted(REQUIRED_ALERTS - fired)


def test_required_alerts_exist() -> None:
    """lag, dead letters, credentials, signatures, readiness, Customer.io errors, commits, paused partitions."""
    names = {rule.get("alert") for rule in RULES}
    assert names >= REQUIRED_ALERTS, sorted(REQUIRED_ALERTS - names)


@pytest.mark.parametrize("rule", RULES, ids=[r.get("alert") or r.get("record") for r in RULES])
def test_rule_uses_only_declared_metrics(rule: dict[str, Any], undeclared_metrics: Callable[[str], list[str]]) -> None:
    """Each expression selects only metrics that connector/metrics.py declares."""
    assert undeclared_metrics(rule["expr"]) == []


@pytest.mark.parametrize("rule", RULES, ids=[r.get("alert") or r.get("record") for r in RULES])
def test_alert_is_documented(rule: dict[str, Any]) -> None:
    """Each alert has a severity, a summary, a description and a runbook_url whose anchor exists."""
    annotations = rule.get("annotations", {})
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert annotations.get("summary")
    assert annotations.get("description")
    url = annotations.get("runbook_url", "")
    path, _, anchor = url.partition("#")
    assert path == "docs/operations.md", url
    assert anchor == rule["alert"].lower(), url
    assert anchor in _runbook_anchors(), f"docs/operations.md has no heading for #{anchor}"


def test_prometheus_config_is_valid(promtool: str, tmp_path: Path) -> None:
    """prometheus.yml (as mounted by docker-compose) passes promtool check config and loads alerts.yml."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["connector:9464"]
    # The rule file's path exists only inside the container: check a copy that points at the real one.
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    config["rule_files"] = [str(tmp_path / "alerts.yml")]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_tool([promtool, "check", "config", str(local)])


def test_each_promtool_parses_its_own_promql(promtool: str, tmp_path: Path) -> None:
    """The two runs check different languages: holt_winters, removed in Prometheus 3, is refused only there."""
    rules = {"groups": [{"name": "g", "rules": [{"record": "r:x", "expr": "holt_winters(x[5m], 0.5, 0.5)"}]}]}
    path = tmp_path / "removed-in-3.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    done = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    refused = done.returncode != 0
    assert refused == (prometheus_major(promtool) >= 3), done.stdout + done.stderr
