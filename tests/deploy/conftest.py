"""Fixtures of the deployment tests: the external tools (failing, never skipping, when one is missing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.deploy.deploy_support import (
    declared_metric_names,
    find_tool,
    prometheus3_tool,
    prometheus_major,
    promql_metric_names,
)

# Debian's promtool is 2.x (2.42 on bookworm); Prometheus 3 changed PromQL and rule parsing (UTF-8 names,
# left-open range selectors, removed functions), and users run either.
PROMETHEUS_MAJORS = {"prometheus2": 2, "prometheus3": 3}


@pytest.fixture(scope="session", params=sorted(PROMETHEUS_MAJORS))
def promtool(request: pytest.FixtureRequest) -> str:
    """Path of promtool: Debian's (package ``prometheus``), then Prometheus 3's; each test runs with both."""
    tool = find_tool("promtool") if request.param == "prometheus2" else prometheus3_tool("promtool")
    assert prometheus_major(tool) == PROMETHEUS_MAJORS[request.param], f"{tool} is not {request.param}"
    return tool


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
