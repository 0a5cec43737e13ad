"""Structured logging, as JSON lines (containers) or readable text lines (a terminal); nothing else
configures logging.

One line per event of interest: a constant message and facts as fields::

    log.warning("Batch delivery failed.", workspace="eu-brand", attempt=3, status=503)

The text form of that line::

    2025-01-01T12:00:00.123Z WARNING connector.sink.delivery Batch delivery failed. workspace=eu-brand attempt=3 status=503

Secret values registered with ``register_secrets`` are masked in every line as a last line of defence;
the first line is that no code logs them.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson

from connector.log_sampling import LogSampler

_secrets: set[str] = set()


def register_secrets(values: list[str]) -> None:
    """Mask these values (API keys, signing keys, passwords) wherever they would appear in a log line."""
    _secrets.update(v for v in values if len(v) >= 4)


def _mask(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``: for command output, as for log lines."""
    return _mask(text)


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON object: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _mask(orjson.dumps(line, default=str).decode())


_BARE = re.compile(r"[^\s\"'=]+")  # a string value shown without quotes


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return value if _BARE.fullmatch(value) else orjson.dumps(value).decode()
    if isinstance(value, bool) or value is None:
        return orjson.dumps(value).decode()
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, default=str).decode()


class TextFormatter(logging.Formatter):
    """Renders a record as one readable line: time, level, logger, message, then ``key=value`` fields.

    Strings with spaces, quotes or ``=`` are JSON-quoted so the line still splits unambiguously; a
    traceback follows on its own lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), f"{record.levelname:<7}", record.name, record.getMessage()]
        fields = getattr(record, "fields", None)
        if fields:
            parts.extend(f"{key}={_text_value(value)}" for key, value in fields.items())
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return _mask(text)


class Logger:
    """A thin wrapper so call sites pass fields as keyword arguments."""

    __slots__ = ("_logger",)

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, message: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, message, extra={"fields": fields}, exc_info=exc_info, stacklevel=3)

    def debug(self, message: str, **fields: Any) -> None:
        """Log at debug level (the only level that may carry person identifiers)."""
        self._log(logging.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        """Log at info level."""
        self._log(logging.INFO, message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        """Log at warning level."""
        self._log(logging.WARNING, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        """Log at error level."""
        self._log(logging.ERROR, message, fields)

    def exception(self, message: str, **fields: Any) -> None:
        """Log at error level with the current exception's traceback."""
        self._log(logging.ERROR, message, fields, exc_info=True)

    def is_debug(self) -> bool:
        """Whether debug lines are written (guard building expensive fields)."""
        return self._logger.isEnabledFor(logging.DEBUG)


def get_logger(name: str) -> Logger:
    """A logger under the ``connector`` namespace."""
    return Logger(f"connector.{name}" if not name.startswith("connector") else name)


def choose_formatter(log_format: str, stream: TextIO) -> logging.Formatter:
    """``text`` or ``json``; ``auto`` is text when ``stream`` is a terminal (a person reads it), else json."""
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        log_format = "text" if isatty is not None and isatty() else "json"
    return TextFormatter() if log_format == "text" else JsonFormatter()


def setup(level: str = "INFO", stream: TextIO | None = None, log_format: str = "auto") -> None:
    """Send every log line to stderr (or ``stream``) at ``level``, as ``log_format`` (json, text or auto)."""
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(choose_formatter(log_format, out))
    root = logging.getLogger()
    handler.addFilter(LibraryLogSampler())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every reconnect attempt at error level with a traceback; keep its warnings only.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class LibraryLogSampler(logging.Filter):
    """Repeated lines of aiokafka, sampled per message template: the first ``burst`` in each window are
    written, the rest counted; the counts are written as one summary line once the window has passed
    (with the next line of any logger, so at the latest with the shutdown lines).

    Why: while a broker is away aiokafka logs every reconnect and metadata attempt at error level, every
    ``retry_backoff_ms`` (100 ms) per client: measured 4,000 lines in 35 s for one ``run`` process, which
    buried the connector's own lines. Installed on the handler, because a logger's filters do not see
    the records of its child loggers (``aiokafka.consumer.fetcher``, ...).
    """

    def __init__(
        self,
        prefix: str = "aiokafka",
        burst: int = 5,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._prefix = prefix
        self._clock = clock
        self._sampler = LogSampler(burst, window_seconds, clock())
        self._next_summary = clock() + window_seconds

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        if now >= self._next_summary:
            self._next_summary = now + self._sampler.window_seconds
            summary = self._sampler.summary(now)
            if summary is not None:
                get_logger("logs").warning(
                    "Repeated Kafka client lines not logged one by one.",
                    seconds=round(summary.seconds),
                    suppressed=summary.suppressed,
                )
        if not record.name.startswith(self._prefix):
            return True
        return self._sampler.admit(f"{record.name}: {record.msg}", now)
