"""The Hypothesis profiles of tests/conftest.py: under ``ci`` a slow machine cannot fail a property test.

The issue this guards against: ``test_check_operation_never_raises`` failed ``make test`` with
``FailedHealthCheck`` (input generation too slow) while another process was using the machine.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck

ROOT = Path(__file__).resolve().parents[1]
# Long enough per draw that ten draws exceed Hypothesis' one-second budget under its stock deadline.
SLOW_DRAW_SECONDS = 0.15


@st.composite
def slowly_drawn(draw: st.DrawFn) -> int:
    """An integer whose generation takes as long as it would on a machine busy with other work."""
    time.sleep(SLOW_DRAW_SECONDS)  # stands in for a starved CPU; not synchronization
    return draw(st.integers())


def _run_property_with_slow_generation(profile: settings) -> int:
    """Run a trivial property over ``slowly_drawn`` with ``profile``; the number of examples it saw."""
    seen: list[int] = []

    @settings(profile, max_examples=10, database=None)
    @given(slowly_drawn())
    def prop(value: int) -> None:
        seen.append(value)

    prop()
    return len(seen)


def test_ci_profile_is_reproducible_and_has_no_wall_time_checks() -> None:
    """ci: derandomized, no database, no deadline, too_slow suppressed; the count-based checks stay on."""
    ci = settings.get_profile("ci")
    assert ci.derandomize is True
    assert ci.database is None
    assert ci.deadline is None
    assert HealthCheck.too_slow in ci.suppress_health_check
    assert HealthCheck.filter_too_much not in ci.suppress_health_check


def test_slow_generation_fails_the_stock_profile_but_not_ci() -> None:
    """The same slow strategy: FailedHealthCheck under Hypothesis' defaults, every example run under ci."""
    with pytest.raises(FailedHealthCheck):
        _run_property_with_slow_generation(settings.get_profile("default"))
    assert _run_property_with_slow_generation(settings.get_profile("ci")) == 10


def test_dev_profile_explores_and_has_no_deadline() -> None:
    """dev: random inputs (so local runs explore), no deadline (so a busy laptop does not fail tests)."""
    dev = settings.get_profile("dev")
    assert dev.derandomize is False
    assert dev.deadline is None


def test_importing_the_conftest_again_changes_nothing() -> None:
    """Test modules import ``tests.conftest`` too: that second execution must not load or alter a profile."""

    def state() -> tuple[str | None, ...]:  # settings compare by identity; their reprs list every value
        profiles = (settings.default, settings.get_profile("ci"), settings.get_profile("dev"))
        return (settings.get_current_profile_name(), *map(repr, profiles))

    before = state()
    importlib.reload(importlib.import_module("tests.conftest"))
    assert state() == before


def _pytest_header(extra_env: dict[str, str], *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "HYPOTHESIS_PROFILE"}} | extra_env
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-v", "-p", "no:cacheprovider", *args, __file__],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("env", "args", "profile"),
    [
        ({"CI": "true"}, (), "ci"),
        ({}, (), "dev"),
        ({"CI": "true", "HYPOTHESIS_PROFILE": "dev"}, (), "dev"),
    ],
    ids=["CI=true", "local", "HYPOTHESIS_PROFILE"],
)
def test_profile_selection(env: dict[str, str], args: tuple[str, ...], profile: str) -> None:
    """pytest's header names the profile: ci under CI=true (GitHub Actions), dev locally, else as asked."""
    assert f"hypothesis profile '{profile}'" in _pytest_header(env, *args)


BAD_TEST = """
from hypothesis import HealthCheck, given, settings, strategies as st

@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers())
def test_replaces_the_profile_list(value: int) -> None:
    pass
"""


def test_a_settings_override_that_brings_back_too_slow_is_refused(tmp_path: Path) -> None:
    """A test whose own suppress list drops too_slow fails collection under ci, naming the test."""
    (tmp_path / "test_bad.py").write_text(BAD_TEST, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "HYPOTHESIS_PROFILE"}}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])
    command = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "--collect-only"]
    done = subprocess.run(
        [*command, "--hypothesis-profile=ci", str(tmp_path / "test_bad.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    assert "test_replaces_the_profile_list" in done.stderr + done.stdout
    assert "too_slow" in done.stderr + done.stdout
