""".github/workflows/ci.yml: passes actionlint, runs exactly `make test`, pins every action by commit SHA."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import ROOT, TOOL_TIMEOUT_SECONDS, find_tool, run_tool

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
# owner/repo@<40 hex> # vX.Y.Z: the SHA is what runs, the comment says which release it is.
PINNED = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$")


@pytest.fixture(scope="session")
def actionlint() -> str:
    """Path of actionlint (go install, by scripts/install-test-tools)."""
    return find_tool("actionlint", prefer_cache=True)


def _steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def test_actionlint_finds_nothing(actionlint: str) -> None:
    """actionlint (syntax, expressions, action inputs, shellcheck where installed) reports no finding."""
    run_tool([actionlint, "-no-color", "-oneline", str(WORKFLOW)])


def test_actionlint_reports_a_broken_workflow(actionlint: str, tmp_path: Path) -> None:
    """The check can fail: the same workflow with an undefined expression is reported, with the line."""
    broken = tmp_path / "ci.yml"
    text = WORKFLOW.read_text(encoding="utf-8").replace("run: .ci/run", "run: .ci/run ${{ github.no_such_property }}")
    broken.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [actionlint, "-no-color", "-oneline", str(broken)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no_such_property" in done.stdout


def test_ci_runs_the_readme_command() -> None:
    """The workflow's only command is .ci/run, and .ci/run runs exactly `make test`."""
    commands = [step["run"].strip() for step in _steps() if "run" in step]
    assert commands == [".ci/run"]
    script = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert script[-1] == "make test"


def test_actions_are_pinned_by_commit_sha() -> None:
    """Every `uses:` is a full 40-hex commit SHA with its release in a comment (tags can be moved)."""
    uses = [line for line in WORKFLOW.read_text(encoding="utf-8").splitlines() if re.match(r"^\s*-?\s*uses:", line)]
    assert uses
    assert [line for line in uses if not PINNED.match(line)] == []


def test_python_and_java_versions() -> None:
    """Python 3.11 (the project's floor) and Java 17 (the local Kafka broker's)."""
    inputs = {step["uses"].split("@")[0]: step.get("with", {}) for step in _steps() if "uses" in step}
    assert inputs["actions/setup-python"]["python-version"] == "3.11"
    assert inputs["actions/setup-java"]["java-version"] == "17"
