"""The fake-cio command: argument parsing, and a real process serving until Ctrl-C."""

from __future__ import annotations

import argparse
import base64
import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from connector.fake_cio.cli import DEFAULT_WORKSPACE, add_arguments, parse_workspace, run
from connector.fake_cio.state import Workspace


def parse(*argv: str) -> argparse.Namespace:
    """Parse fake-cio arguments."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults() -> None:
    """Without flags the fake listens on 127.0.0.1:7701 (US) and :7702 (EU) with no faults."""
    args = parse()
    assert (args.host, args.us_port, args.eu_port, args.workspace) == ("127.0.0.1", 7701, 7702, [])
    assert (args.error_ratio, args.reset_ratio, args.latency_ms, args.rate_limit) == (0.0, 0.0, 0.0, None)
    assert args.ignore_stale_identifies is False
    demo = Workspace("demo", "demo-site", "demo-key", "us", "demo-app-key", 1)
    assert demo == DEFAULT_WORKSPACE


def test_parse_workspace() -> None:
    """NAME:SITE_ID:API_KEY:REGION[:APP_KEY] gives a workspace."""
    assert parse_workspace("a:s:k:eu", 4) == Workspace("a", "s", "k", "eu", None, 4)
    assert parse_workspace("a:s:k:us:app", 5) == Workspace("a", "s", "k", "us", "app", 5)


@pytest.mark.parametrize("spec", ["a:s:k", "a:s:k:mars", "a::k:us", "a:s:k:us:app:extra"])
def test_parse_workspace_rejects(spec: str) -> None:
    """Malformed workspace specs raise ValueError naming the spec."""
    with pytest.raises(ValueError, match="--workspace"):
        parse_workspace(spec, 1)


@pytest.mark.parametrize("argv", [("--workspace", "bad"), ("--error-ratio", "2")])
def test_run_bad_arguments_exit_2(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad workspaces or fault values exit 2 with a one-line message, without listening."""
    assert run(parse(*argv)) == 2
    assert capsys.readouterr().err.startswith("fake-cio: ")


def test_process_serves_until_interrupted() -> None:
    """The command prints its URLs, serves the demo workspace and exits 0 on Ctrl-C."""
    command = [sys.executable, "-m", "connector.fake_cio.cli", "--us-port", "0", "--eu-port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(4)]
            assert lines[3] == "press Ctrl-C to stop\n"
            us_url = lines[0].split()[-1]
            assert lines[1].split()[-1].startswith("http://127.0.0.1:")
            token = base64.b64encode(b"demo-site:demo-key").decode()
            url = f"{us_url}/api/v1/accounts/region"
            request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})  # noqa: S310 - local http
            with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - a local http URL
                assert json.load(resp) == {"url": us_url, "region": "us", "environment_id": 1}
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_ignore_stale_identifies_flag_switches_the_behaviour_on() -> None:
    """``--ignore-stale-identifies`` shows in the fake's faults (off by default: see test_defaults)."""
    command = [sys.executable, "-m", "connector.fake_cio.cli", "--us-port", "0", "--eu-port", "0"]
    with subprocess.Popen(
        [*command, "--ignore-stale-identifies"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            us_url = proc.stdout.readline().split()[-1]
            with urllib.request.urlopen(f"{us_url}/_fake/faults", timeout=5) as resp:  # noqa: S310 - local http
                assert json.load(resp)["ignore_stale_identifies"] is True
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
