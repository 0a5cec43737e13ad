"""Fixtures of the deployment tests: the external tools (failing, never skipping, when one is missing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from deploy_support import declared_metric_names, find_tool, promql_metric_names


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool (Debian package ``prometheus``)."""
    return find_tool("promtool")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Path of docker-compose (Debian package ``docker-compose``), which validates compose files offline."""
    return find_tool("docker-compose")


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of helm; the pinned build in the cache wins over one on PATH."""
    return find_tool("helm", prefer_cache=True)


@pytest.fixture(scope="session")
def undeclared_metrics() -> Callable[[str], list[str]]:
    """``undeclared_metrics(expr)``: the metric names in ``expr`` that connector/metrics.py does not declare."""
    declared = declared_metric_names()

    def check(expr: str) -> list[str]:
        return sorted(promql_metric_names(expr) - declared)

    return check
