"""README.md, docs/, the alerts and the dashboard name only metrics and labels the service exports.

A renamed metric or label leaves a doc, an alert or a panel silently matching nothing: these checks read
the names from the registry connector/metrics.py builds, so a rename fails here instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from connector.metrics import Metrics
from tests.deploy.deploy_support import ROOT, declared_metric_names

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUERY_FILES = [*DOCS, ROOT / "deploy" / "prometheus" / "alerts.yml", *sorted((ROOT / "grafana").rglob("*.json"))]
RUNBOOK = ROOT / "docs" / "operations.md"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

# Not after '#' or '-': a Markdown link anchor such as "#identify-timestamps-connector_identify_timestamp".
_METRIC_MENTION = re.compile(r"(?<![\w#/-])connector_[a-z_]+[a-z]\b")
_SELECTOR = re.compile(r"\b(connector_[a-z_]+)\s*\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
# Labels the scrape adds (target labels) or the exposition format adds (histogram buckets).
_SCRAPE_LABELS = frozenset({"job", "instance", "namespace", "pod", "container", "service", "le", "quantile"})
_SAMPLE_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_info")


def _declared_labels() -> dict[str, frozenset[str]]:
    """Sample name (and its family name) → the label names connector/metrics.py gives it."""
    metrics = Metrics(CollectorRegistry())
    labels: dict[str, frozenset[str]] = {}
    for collector in vars(metrics).values():
        names = getattr(collector, "_labelnames", None)
        if names is None:
            continue
        declared = frozenset(names)
        for family in collector.collect():
            labels[family.name] = declared | {k for s in family.samples for k in s.labels}
    return labels


def _family(sample: str, labels: dict[str, frozenset[str]]) -> str | None:
    if sample in labels:
        return sample
    for suffix in _SAMPLE_SUFFIXES:
        if sample.endswith(suffix) and sample.removesuffix(suffix) in labels:
            return sample.removesuffix(suffix)
    return None


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_docs_name_only_exported_metrics(doc: Path) -> None:
    """Each connector_* metric a doc names is one the service exports (with its type's suffix)."""
    declared = declared_metric_names() | set(_declared_labels())
    named = set(_METRIC_MENTION.findall(doc.read_text(encoding="utf-8")))
    assert sorted(named - declared) == []


@pytest.mark.parametrize("path", QUERY_FILES, ids=[p.name for p in QUERY_FILES])
def test_selectors_use_only_exported_labels(path: Path) -> None:
    """``connector_x{label=...}`` in docs, alerts and panels names labels that metric really has."""
    labels = _declared_labels()
    wrong = []
    for metric, body in _SELECTOR.findall(path.read_text(encoding="utf-8")):
        family = _family(metric, labels)
        if family is None:
            wrong.append(f"{metric}: not exported")
            continue
        wrong += [
            f"{metric}{{{label}}}"
            for label in _MATCHER_LABEL.findall(body)
            if label not in labels[family] | _SCRAPE_LABELS
        ]
    assert wrong == []


def test_every_runbook_alert_heading_names_an_alert() -> None:
    """The runbook documents no alert that alerts.yml lacks (the reverse is test_alert_is_documented)."""
    alerts = {
        rule.get("alert") for g in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"] for rule in g["rules"]
    }
    headings = re.findall(r"^#{1,6}\s+(CioConnector\w+)\s*$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert headings, "docs/operations.md has no alert headings"
    assert sorted(set(headings) - alerts) == []
