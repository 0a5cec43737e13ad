"""pytest-timeout: every test has a time limit, and a hung test fails by itself while the run goes on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HUNG_TESTS = """
import asyncio


async def test_waits_for_an_event_nobody_sets() -> None:
    await asyncio.Event().wait()


def test_after_the_hung_one() -> None:
    pass
"""


def test_every_test_has_a_default_limit(request: pytest.FixtureRequest) -> None:
    """pyproject sets a default limit (signal method: the hung test fails, the session carries on)."""
    assert float(request.config.getini("timeout")) >= 60
    assert request.config.getini("timeout_method") == "signal"


def test_a_hung_test_fails_and_the_run_goes_on(tmp_path: Path) -> None:
    """With the project's configuration (limit shortened to 3 s), a never-ending await fails as a timeout."""
    (tmp_path / "test_hung.py").write_text(HUNG_TESTS, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)),
            *("-p", "no:cacheprovider", "-o", "timeout=3", "-q", str(tmp_path / "test_hung.py")),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Timeout (>3.0s)" in done.stdout, done.stdout
    assert "1 failed, 1 passed" in done.stdout, done.stdout
