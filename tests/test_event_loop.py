"""CONNECTOR_EVENT_LOOP: auto uses uvloop only when installed, uvloop insists (exit 2 when missing)."""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path

import pytest

from connector.config import load_settings
from connector.errors import ConfigError
from connector.event_loop import loop_factory, run
from tests.integration.harness import run_cli

BASE_ENV = {"CIO_SITE_ID": "site", "CIO_API_KEY": "key", "CIO_REGION": "us", "CONNECTOR_INPUT_TOPICS": "t"}


class CountingLoops:
    """Stands in for the uvloop module: makes standard loops and counts them."""

    def __init__(self) -> None:
        self.made = 0

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        self.made += 1
        return asyncio.SelectorEventLoop()


def install_uvloop(monkeypatch: pytest.MonkeyPatch) -> CountingLoops:
    loops = CountingLoops()
    module = types.ModuleType("uvloop")
    module.new_event_loop = loops.new_event_loop  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uvloop", module)
    return loops


def remove_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # a None entry makes `import uvloop` raise ImportError


async def answer() -> int:
    await asyncio.sleep(0)
    return 42


def test_default_is_auto() -> None:
    assert load_settings(BASE_ENV).service.event_loop == "auto"


def test_auto_runs_on_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    loops = install_uvloop(monkeypatch)
    assert run(answer(), "auto") == 42
    assert loops.made == 1


def test_asyncio_never_uses_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    loops = install_uvloop(monkeypatch)
    assert loop_factory("asyncio") is None
    assert run(answer(), "asyncio") == 42
    assert loops.made == 0


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    remove_uvloop(monkeypatch)
    assert loop_factory("auto") is None
    assert run(answer(), "auto") == 42


def test_uvloop_required_but_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    remove_uvloop(monkeypatch)
    with pytest.raises(ConfigError, match=r"^CONNECTOR_EVENT_LOOP: uvloop is not installed"):
        loop_factory("uvloop")


def test_unknown_event_loop_is_rejected() -> None:
    with pytest.raises(ConfigError, match="CONNECTOR_EVENT_LOOP"):
        load_settings({**BASE_ENV, "CONNECTOR_EVENT_LOOP": "trio"})


def test_sink_exits_2_naming_the_setting_when_uvloop_is_missing(tmp_path: Path) -> None:
    """The real command line: one line on stderr, exit 2, before any connection is attempted."""
    absent = tmp_path / "uvloop"
    absent.mkdir()
    (absent / "__init__.py").write_text("raise ImportError('uvloop is absent in this test')\n")
    root = Path(__file__).resolve().parent.parent
    env = {**BASE_ENV, "CONNECTOR_EVENT_LOOP": "uvloop", "PYTHONPATH": f"{tmp_path}:{root}"}
    result = run_cli(env, "sink")
    assert result.returncode == 2, result.stderr
    assert "CONNECTOR_EVENT_LOOP: uvloop is not installed" in result.stderr
    assert "Traceback" not in result.stderr
