"""The live loop of ``cio-connector top``: scrape ``/metrics`` and ``/readyz`` every interval, redraw, read keys.

Plain ANSI and the standard library: a redraw is cursor-home, the lines (each clearing its line's rest),
then clear-to-end, on the terminal's alternate screen so the shell's screen comes back on exit. Keys are
read in cbreak mode (Ctrl-C still interrupts). When stdout is not a terminal, frames are printed one after
another without escape codes. ``q`` or Ctrl-C ends with exit 0; an instance unreachable at the first
scrape is a one-line error (exit 1); later failed scrapes are shown on the screen while retrying.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import shutil
import sys
import termios
import time
import tty
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any, TextIO
from urllib.parse import urlsplit

import orjson

from connector.errors import ConnectorError
from connector.top.scrape import Snapshot, parse
from connector.top.view import Frame, render

DEFAULT_URL = "http://127.0.0.1:9464"  # CONNECTOR_METRICS_PORT's default
MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0


class TopError(ConnectorError):
    """``top`` cannot start: a bad argument or an instance that does not answer; ``str()`` is the line."""


def check_url(url: str) -> str:
    """The ops server's base URL without a trailing slash; TopError naming --url when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when not a number in range
    except ValueError:
        raise TopError(f"--url: not a valid URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TopError(f"--url: must be http://host:port (got {url!r})")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise TopError(f"--url: give the ops server's address only, like http://host:{port or 9464}")
    return url.rstrip("/")


def check_interval(text: str) -> float:
    """Seconds between scrapes; TopError naming --interval when not a number in [0.1, 3600]."""
    try:
        value = float(text)
    except ValueError:
        raise TopError(f"--interval: must be a number of seconds (got {text!r})") from None
    if not math.isfinite(value) or not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise TopError(f"--interval: must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds (got {text!r})")
    return value


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    """Status and body; a 4xx/5xx answer is returned, not raised (/readyz answers 503 with its report)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked (http/https)
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def scrape(base: str, timeout: float) -> tuple[Snapshot, Mapping[str, Any] | None]:
    """One scrape of /metrics (required) and /readyz (its report, or None); TopError saying why not."""
    try:
        status, body = _get(f"{base}/metrics", timeout)
    except (OSError, urllib.error.URLError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise TopError(f"cannot reach {base}/metrics: {reason}") from None
    if status != 200:
        raise TopError(f"{base}/metrics answered {status}; is this a cio-connector ops port?")
    try:
        snapshot = parse(body.decode("utf-8", "replace"), time.monotonic())
    except ValueError as exc:
        raise TopError(f"{base}/metrics: {exc}; is this a cio-connector ops port?") from None
    readiness: Mapping[str, Any] | None = None
    with contextlib.suppress(OSError, urllib.error.URLError, orjson.JSONDecodeError):
        _, ready_body = _get(f"{base}/readyz", timeout)
        decoded = orjson.loads(ready_body)
        if isinstance(decoded, dict):
            readiness = decoded
    return snapshot, readiness


@contextlib.contextmanager
def _screen(out: TextIO, keys: int | None) -> Iterator[None]:
    """Alternate screen, hidden cursor and cbreak keys while inside; everything restored on the way out."""
    saved = termios.tcgetattr(keys) if keys is not None else None
    if keys is not None:
        tty.setcbreak(keys)
    if out.isatty():
        out.write("\x1b[?1049h\x1b[?25l")
        out.flush()
    try:
        yield
    finally:
        if out.isatty():
            out.write("\x1b[?25h\x1b[?1049l")
            out.flush()
        if keys is not None and saved is not None:
            termios.tcsetattr(keys, termios.TCSADRAIN, saved)


def _draw(out: TextIO, lines: list[str]) -> None:
    if not out.isatty():
        out.write("\n".join(lines) + "\n\n")
        out.flush()
        return
    try:  # the terminal's own size: COLUMNS/LINES inherited from a parent shell may be stale
        size = os.get_terminal_size(out.fileno())
    except OSError:
        size = shutil.get_terminal_size()
    shown = [line[: size.columns] for line in lines[: size.lines]]
    out.write("\x1b[H" + "".join(f"{line}\x1b[K\r\n" for line in shown[:-1]) + f"{shown[-1]}\x1b[K\x1b[J")
    out.flush()


def _wait_for_quit(keys: int | None, seconds: float) -> bool:
    """Wait ``seconds`` (or until a key); True when q was pressed."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if keys is None:
            time.sleep(left)
            return False
        readable, _, _ = select.select([keys], [], [], left)
        if readable and os.read(keys, 32).lower().startswith(b"q"):
            return True
    return False


def run_top(url: str, interval: float, out: TextIO | None = None) -> int:
    """Show the live view until q or Ctrl-C (exit 0); TopError when the first scrape fails."""
    out = out or sys.stdout
    timeout = min(5.0, max(1.0, interval))
    snapshot, readiness = scrape(url, timeout)  # fail fast, before taking over the terminal
    keys = sys.stdin.fileno() if sys.stdin.isatty() else None
    before: Snapshot | None = None
    problem: str | None = None
    try:
        with _screen(out, keys):
            while True:
                _draw(out, render(Frame(url, interval, snapshot, before, readiness, problem)))
                if _wait_for_quit(keys, interval):
                    return 0
                try:
                    latest, readiness = scrape(url, timeout)
                except TopError as exc:
                    problem = str(exc)
                    continue
                before, snapshot, problem = snapshot, latest, None
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # piped into `head` and the reader left: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())  # so the interpreter's final flush does not complain either
        return 0
