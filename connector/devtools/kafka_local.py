"""Command line of the development broker (``scripts/kafka-local`` wraps it)::

    python -m connector.devtools.kafka_local start [--port N] [--data-dir D] [--foreground]
    python -m connector.devtools.kafka_local stop | status | fetch

One background broker per cache directory, remembered in a pid file. Exit codes: 0 done, 1 failed (one
line on stderr), 2 usage, 3 ``status``: not running. The jars are ``kafka_jars``, the broker process
``kafka_broker``; their public names are re-exported here for existing importers (``provide_broker`` …).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from connector.devtools.kafka_broker import (
    DEV_BROKER_PROPERTIES,
    HOW_TO_GET_A_BROKER,
    LocalKafka,
    broker_ready,
    docker_reachable,
    java_executable,
    java_major_version,
    provide_broker,
)
from connector.devtools.kafka_jars import KAFKA_VERSION, KafkaLocalError, _file_lock, cache_dir, fetch_jars

__all__ = [
    "DEV_BROKER_PROPERTIES",
    "HOW_TO_GET_A_BROKER",
    "KAFKA_VERSION",
    "KafkaLocalError",
    "LocalKafka",
    "broker_ready",
    "cache_dir",
    "docker_reachable",
    "fetch_jars",
    "java_executable",
    "java_major_version",
    "main",
    "provide_broker",
]

# ---------------------------------------------------------------------------------------------------
# Command line: one background broker per cache directory, remembered in a pid file.
# ---------------------------------------------------------------------------------------------------


def _state_path() -> Path:
    return cache_dir() / "kafka-local.json"


def _pid_path() -> Path:
    return cache_dir() / "kafka-local.pid"


def _is_broker(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}/cmdline")
    if not Path("/proc/self").exists():
        return True
    try:  # a recycled pid, or a zombie (empty command line), is not our broker
        return b"kafka.Kafka" in proc.read_bytes()
    except OSError:
        return False


def _running_state() -> dict[str, str] | None:
    try:
        state: dict[str, str] = json.loads(_state_path().read_text())
    except (OSError, ValueError):
        state = {}
    if state and _is_broker(int(state["pid"])):
        return state
    _clear_state()
    return None


def _clear_state() -> None:
    _pid_path().unlink(missing_ok=True)
    _state_path().unlink(missing_ok=True)


def _cmd_start(args: argparse.Namespace) -> int:
    with _file_lock(cache_dir() / "kafka-local.run.lock"):
        state = _running_state()
        if state is not None:
            print(f"kafka-local: already running (pid {state['pid']})", file=sys.stderr)
            print(state["bootstrap"], flush=True)
            return 0
        kafka = LocalKafka(port=args.port, data_dir=args.data_dir or cache_dir() / "kafka-local-data")
        bootstrap = kafka.start(detach=not args.foreground)
        state = {
            "pid": str(kafka.pid),
            "bootstrap": bootstrap,
            "data_dir": str(kafka.data_dir),
            "log": str(kafka.log_path),
        }
        _state_path().write_text(json.dumps(state) + "\n")
        _pid_path().write_text(f"{kafka.pid}\n")
    print(bootstrap, flush=True)
    if not args.foreground:
        return 0

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        code = kafka.wait()
    except KeyboardInterrupt:
        kafka.stop()
        return 0
    finally:
        _clear_state()
    print(f"kafka-local: broker exited with code {code}; see {kafka.log_path}", file=sys.stderr)
    return 1


def _cmd_stop(_args: argparse.Namespace) -> int:
    with _file_lock(cache_dir() / "kafka-local.run.lock"):
        state = _running_state()
        if state is None:
            print("kafka-local: not running", file=sys.stderr)
            return 0
        pid = int(state["pid"])
        for sig, wait_seconds in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait_seconds
            while _is_broker(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _is_broker(pid):
                _clear_state()
                return 0
    raise KafkaLocalError(f"broker pid {pid} did not exit")


def _cmd_status(_args: argparse.Namespace) -> int:
    state = _running_state()
    if state is None:
        print("kafka-local: not running", file=sys.stderr)
        return 3
    host, _, port = state["bootstrap"].rpartition(":")
    if not broker_ready(host, int(port)):
        raise KafkaLocalError(f"broker pid {state['pid']} runs but does not answer on {state['bootstrap']}")
    print(state["bootstrap"])
    return 0


def _cmd_fetch(_args: argparse.Namespace) -> int:
    print(fetch_jars())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``kafka-local`` command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="kafka-local", description=f"A local Apache Kafka {KAFKA_VERSION} broker.")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start the broker and print its bootstrap address")
    start.add_argument("--port", type=int, help="client port (default: a free one)")
    start.add_argument("--data-dir", type=Path, help="data directory (default: <cache>/kafka-local-data)")
    start.add_argument("--foreground", action="store_true", help="run until interrupted instead of detaching")
    commands.add_parser("stop", help="stop the background broker")
    commands.add_parser("status", help="print the bootstrap address if the broker runs (exit 3 if not)")
    commands.add_parser("fetch", help="only resolve and cache the jars (CI warm-up)")
    args = parser.parse_args(argv)
    handlers = {"start": _cmd_start, "stop": _cmd_stop, "status": _cmd_status, "fetch": _cmd_fetch}
    try:
        return handlers[args.command](args)
    except KafkaLocalError as exc:
        print(f"kafka-local: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
