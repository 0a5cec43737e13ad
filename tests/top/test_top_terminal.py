"""`cio-connector top` in a real terminal (tmux): it draws the instance's rows, and q or Ctrl-C quits with 0.

The instance is the real ops server (``connector.server``) on 127.0.0.1 over a Metrics registry that a
background task keeps counting, so rates appear after the second scrape. Every wait is on what the
terminal shows or on the pane's process having exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from connector.metrics import Metrics
from connector.server import Readiness, make_ops_app, start_site
from tests.integration.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 60.0  # generous: the machine is shared


@pytest.fixture
async def instance() -> AsyncIterator[str]:
    """An ops server with a sink's metrics moving; yields its base URL."""
    metrics, readiness = Metrics(), Readiness()
    readiness.add("workspace:demo", lambda: (True, "ok"))
    readiness.add("workspace:other", lambda: (False, "Track API key rejected (401)"))
    metrics.workspace_ready.labels("demo").set(1)
    metrics.workspace_ready.labels("other").set(0)
    metrics.concurrency_limit.labels("demo").set(16)
    metrics.in_flight_requests.labels("demo").set(3)
    metrics.consumer_lag.labels("events", "0").set(4321)

    async def traffic() -> None:
        while True:
            metrics.records_consumed.labels("events").inc(10)
            metrics.operations.labels("demo", "delivered").inc(10)
            metrics.dead_letters.labels("none", "not_json").inc(1)
            await asyncio.sleep(0.02)

    port = free_port()
    runner = await start_site(make_ops_app(metrics, readiness), "127.0.0.1", port)
    moving = asyncio.create_task(traffic())
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        moving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await moving
        await runner.cleanup()


Tmux = Callable[..., str]


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    """``tmux(*args)`` on a server of this test's own (its own socket), killed afterwards."""
    binary = shutil.which("tmux")
    if binary is None:
        pytest.fail("tmux is missing: run scripts/install-test-tools")
    socket = f"cio-top-test-{os.getpid()}-{time.monotonic_ns()}"

    def run(*args: str) -> str:
        done = subprocess.run(
            [binary, "-L", socket, "-f", "/dev/null", *args], capture_output=True, text=True, check=True, timeout=30
        )
        return done.stdout

    try:
        yield run
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            run("kill-server")


async def start_top(tmux: Tmux, url: str, status_file: Path) -> None:
    """Run top in the pane; its exit status goes to ``status_file`` when it ends.

    The status is written by the pane's shell rather than read from tmux's ``pane_dead_status``, which
    tmux 3.3 sometimes leaves empty. The shell catches SIGINT (a trap, not an ignore, so top still gets
    Ctrl-C with the default disposition) to outlive top and write the file.
    """
    command = (
        f"trap true INT; cd {ROOT} && {sys.executable} -m connector top --url {url} --interval 0.2; "
        f"echo $? > {status_file}.tmp && mv {status_file}.tmp {status_file}"
    )
    await asyncio.to_thread(tmux, "new-session", "-d", "-s", "top", "-x", "150", "-y", "50", command)


async def wait_for_screen(tmux: Tmux, condition: Callable[[str], bool], what: str) -> str:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        screen = await asyncio.to_thread(tmux, "capture-pane", "-p", "-t", "top")
        if condition(screen):
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")
        await asyncio.sleep(0.1)


async def wait_for_exit(tmux: Tmux, status_file: Path) -> int:
    """Top's exit status, once it has exited."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await asyncio.to_thread(status_file.exists):
        if time.monotonic() > deadline:
            screen = ""
            with contextlib.suppress(subprocess.CalledProcessError):
                screen = await asyncio.to_thread(tmux, "capture-pane", "-p", "-t", "top")
            raise AssertionError(f"top did not exit; the screen:\n{screen}")
        await asyncio.sleep(0.1)
    return int(await asyncio.to_thread(status_file.read_text))


def cells(screen: str, first: str) -> list[str]:
    for line in screen.splitlines():
        found = line.split()
        if found and found[0] == first:
            return found
    return []


def shows_the_instance(screen: str) -> bool:
    demo = cells(screen, "demo")
    return (
        cells(screen, "events-0") == ["events-0", "4321"]
        and cells(screen, "workspace:other")[:3] == ["workspace:other", "NOT", "READY"]
        and len(demo) == 9
        and demo[1] == "yes"
        and demo[5] == "3/16"
        and float(demo[2]) > 0  # operations per second: a rate from two scrapes
        and len(cells(screen, "none")) == 4
        and float(cells(screen, "none")[2]) > 0  # dead letters per second
    )


@pytest.mark.parametrize("key", ["q", "C-c"])
async def test_top_shows_the_instance_and_quits_cleanly(instance: str, tmux: Tmux, key: str, tmp_path: Path) -> None:
    status_file = tmp_path / "status"
    await start_top(tmux, instance, status_file)
    await wait_for_screen(tmux, lambda screen: _safe(shows_the_instance, screen), "the instance's rows with rates")
    await asyncio.to_thread(tmux, "send-keys", "-t", "top", key)
    assert await wait_for_exit(tmux, status_file) == 0


def _safe(condition: Callable[[str], bool], screen: str) -> bool:
    """A half-drawn screen (a rate still '…') is simply not there yet."""
    try:
        return condition(screen)
    except (ValueError, IndexError):
        return False


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


def test_an_unreachable_instance_is_one_line_and_exit_1() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_cli("top", "--url", url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"cio-connector: error: cannot reach {url}/metrics: ")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--interval", "0"], "--interval"),
        (["--interval", "soon"], "--interval"),
        (["--url", "ftp://127.0.0.1:9464"], "--url"),
        (["--url", "http://127.0.0.1:99999"], "--url"),
        (["--url", "http://127.0.0.1:9464/metrics"], "--url"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], names: str) -> None:
    result = run_cli("top", *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert names in result.stderr
