"""Helpers of the deployment tests: finding and running the external tools, declared and queried metric names.

The tools (promtool 2 and 3, docker-compose, helm, actionlint) are installed by ``scripts/install-test-tools``;
a missing one fails the test with that hint, it never skips it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connector.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run scripts/install-test-tools (installs promtool 2 and 3, docker-compose, helm and actionlint)"
TOOL_TIMEOUT_SECONDS = 60

# Sample suffixes each metric type exposes (the ``_created`` series are left out on purpose: nothing
# should query them).
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def tool_cache_bin() -> Path:
    """Where scripts/install-test-tools puts the tools it builds (helm)."""
    cache = os.environ.get("CIO_CONNECTOR_CACHE") or str(Path.home() / ".cache" / "cio-connector")
    return Path(cache) / "bin"


def prometheus3_tool(name: str) -> str:
    """A Prometheus 3 binary that scripts/install-test-tools built (kept off PATH, where Debian's 2.x is)."""
    path = tool_cache_bin().parent / "prometheus3" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"Prometheus 3 {name} not found at {path}: {INSTALL_HINT}", pytrace=False)
    return str(path)


def prometheus_major(tool: str) -> int:
    """The major version a Prometheus binary reports (``promtool, version 2.42.0+ds (branch: …``)."""
    done = run_tool([tool, "--version"])
    match = re.search(r"version (\d+)\.\d+", done.stdout + done.stderr)
    assert match, f"{tool} --version: {done.stdout}{done.stderr}"
    return int(match[1])


def find_tool(name: str, *, prefer_cache: bool = False) -> str:
    """The tool's path, or fail the test saying how to install it."""
    cached = tool_cache_bin() / name
    in_cache = str(cached) if cached.is_file() and os.access(cached, os.X_OK) else None
    found = (in_cache or shutil.which(name)) if prefer_cache else (shutil.which(name) or in_cache)
    if found is None:
        pytest.fail(f"{name} not found: {INSTALL_HINT}", pytrace=False)
    return found


def run_tool(args: list[str], *, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool; the test fails with its output when it exits non-zero."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}".rstrip(), pytrace=False)
    return done


def declared_metric_names() -> frozenset[str]:
    """Every sample name the service can expose, from the registry that connector/metrics.py builds."""
    registry = Metrics(CollectorRegistry()).registry
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples if not sample.name.endswith("_created"))
    return frozenset(names)


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAMES = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})


def promql_metric_names(expr: str) -> frozenset[str]:
    """Metric names a PromQL expression selects: identifiers that are not functions, keywords or labels."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _LABEL_LISTS.sub("", text)
    return frozenset(
        match.group(1)
        for match in _NAMES.finditer(text)
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS
    )
