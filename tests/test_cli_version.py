"""`cio-connector --version`: the installed distribution's version, the one pyproject.toml declares."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

import connector
from connector.cli import main

ROOT = Path(__file__).resolve().parents[1]
DECLARED = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def test_version_prints_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    """One line on stdout, exit 0, the version from the package metadata."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code in (0, None)
    out, err = capsys.readouterr()
    assert out == f"cio-connector {version('cio-connector')}\n"
    assert err == ""


def test_metadata_code_and_pyproject_agree() -> None:
    """--version, the build_info metric and webhook events (connector.__version__) say the same thing."""
    assert version("cio-connector") == DECLARED == connector.__version__


def test_console_script_version() -> None:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).parent / "cio-connector"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"cio-connector {DECLARED}\n", "")
