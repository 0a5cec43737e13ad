"""``cio-connector fake-cio``: run the fake Customer.io until Ctrl-C (or SIGTERM).

``add_arguments`` declares the flags on the subcommand's parser; ``run`` serves until stopped and
returns the exit code (2 for a bad ``--workspace``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Final

from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Faults, Workspace

DEFAULT_WORKSPACE: Final = Workspace("demo", "demo-site", "demo-key", "us", "demo-app-key", environment_id=1)
DEFAULT_MAX_RECORDED: Final = 100_000


def parse_workspace(spec: str, environment_id: int) -> Workspace:
    """``NAME:SITE_ID:API_KEY:REGION[:APP_KEY]`` → Workspace; ValueError if malformed."""
    parts = spec.split(":")
    if len(parts) not in (4, 5) or not all(parts):
        raise ValueError(f"--workspace {spec!r}: expected NAME:SITE_ID:API_KEY:REGION[:APP_KEY]")
    name, site_id, api_key, region = parts[:4]
    if region not in ("us", "eu"):
        raise ValueError(f"--workspace {spec!r}: region must be us or eu")
    app_key = parts[4] if len(parts) == 5 else None
    return Workspace(name, site_id, api_key, "us" if region == "us" else "eu", app_key, environment_id)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the fake's flags."""
    parser.add_argument(
        "--workspace",
        action="append",
        default=[],
        metavar="NAME:SITE_ID:API_KEY:REGION[:APP_KEY]",
        help="A workspace to serve (repeatable). Default: demo:demo-site:demo-key:us:demo-app-key.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
    parser.add_argument("--us-port", type=int, default=7701, help="Port of the US listener (default 7701).")
    parser.add_argument("--eu-port", type=int, default=7702, help="Port of the EU listener (default 7702).")
    parser.add_argument("--error-ratio", type=float, default=0.0, help="Share of requests answered 500/502/503.")
    parser.add_argument("--reset-ratio", type=float, default=0.0, help="Share of connections reset unanswered.")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="Delay added to every answer.")
    parser.add_argument("--rate-limit", type=float, default=None, help="Track requests/s per workspace (429 over).")
    parser.add_argument("--app-rate-limit", type=float, default=None, help="App API requests/s per workspace.")
    parser.add_argument(
        "--max-recorded",
        type=int,
        default=DEFAULT_MAX_RECORDED,
        help=f"Accepted operations kept for /_fake/operations, oldest dropped (default {DEFAULT_MAX_RECORDED}).",
    )
    parser.add_argument("--seed", type=int, default=None, help="Seed of the random faults.")
    parser.add_argument(
        "--ignore-stale-identifies",
        action="store_true",
        help="Answer 200 but ignore an identify older than the person's last update (reported, unconfirmed).",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 1 if it cannot listen, 2 on bad arguments."""
    try:
        workspaces = [parse_workspace(spec, i) for i, spec in enumerate(args.workspace, start=1)]
        fake = FakeCustomerIO(
            workspaces or [DEFAULT_WORKSPACE],
            args.host,
            args.us_port,
            args.eu_port,
            faults=Faults(),
            max_recorded=max(0, args.max_recorded),
            seed=args.seed,
        )
        fake.state.set_faults(
            error_ratio=args.error_ratio,
            reset_ratio=args.reset_ratio,
            latency_ms=args.latency_ms,
            rate_limit_per_second=args.rate_limit,
            app_rate_limit_per_second=args.app_rate_limit,
            ignore_stale_identifies=args.ignore_stale_identifies,
        )
    except ValueError as exc:
        print(f"fake-cio: {exc}", file=sys.stderr)
        return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(fake))
    except OSError as exc:  # the port is taken, the address is not local, …
        print(f"fake-cio: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(fake: FakeCustomerIO) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fake:
        print(f"fake Customer.io US (Track + App API): {fake.us_url}", flush=True)
        print(f"fake Customer.io EU (Track + App API): {fake.eu_url}", flush=True)
        for ws in fake.state.workspaces:
            print(f"  workspace {ws.name}: site id {ws.site_id}, region {ws.region}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        await stop.wait()


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m connector.fake_cio.cli", description=__doc__)
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
