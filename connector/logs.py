"""Structured JSON-lines logging; nothing else configures logging.

One line per event of interest: a constant message and facts as fields::

    log.warning("Batch delivery failed.", workspace="eu-brand", attempt=3, status=503)

Secret values registered with ``register_secrets`` are masked in every line as a last line of defence;
the first line is that no code logs them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson

_secrets: set[str] = set()


def register_secrets(values: list[str]) -> None:
    """Mask these values (API keys, signing keys, passwords) wherever they would appear in a log line."""
    _secrets.update(v for v in values if len(v) >= 4)


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON object: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        text = orjson.dumps(line, default=str).decode()
        for secret in _secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


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


def setup(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every log line, as JSON, to stderr (or ``stream``) at ``level``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every reconnect attempt at error level with a traceback; keep its warnings only.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
