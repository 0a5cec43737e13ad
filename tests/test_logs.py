"""Log formats: json for containers, one readable text line for a terminal; secrets masked in both."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from connector import logs
from connector.config import load_settings
from connector.errors import ConfigError


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _emit(stream: io.StringIO, log_format: str) -> str:
    logs.setup("INFO", stream, log_format)
    logs.get_logger("sink.test").warning(
        "Batch delivery failed.", workspace="eu-brand", attempt=3, detail="bad key tok-ABCD-1234 here", ok=None
    )
    return stream.getvalue()


def test_text_is_one_readable_line_with_fields_and_no_secret() -> None:
    logs.register_secrets(["tok-ABCD-1234"])
    line = _emit(io.StringIO(), "text")
    assert line.count("\n") == 1
    assert " WARNING connector.sink.test Batch delivery failed. workspace=eu-brand attempt=3 " in line
    assert 'detail="bad key *** here" ok=null' in line
    assert "tok-ABCD-1234" not in line


def test_json_is_the_container_format() -> None:
    logs.register_secrets(["tok-ABCD-1234"])
    line = orjson.loads(_emit(io.StringIO(), "json"))
    assert line["level"] == "warning"
    assert line["message"] == "Batch delivery failed."
    assert line["attempt"] == 3
    assert line["detail"] == "bad key *** here"


def test_auto_is_text_on_a_terminal_and_json_otherwise() -> None:
    assert _emit(_Terminal(), "auto").split(" ")[1] == "WARNING"
    assert orjson.loads(_emit(io.StringIO(), "auto"))["level"] == "warning"


def _fail() -> None:
    raise RuntimeError("boom")


def test_text_keeps_a_traceback_after_the_line() -> None:
    stream = io.StringIO()
    logs.setup("INFO", stream, "text")
    try:
        _fail()
    except RuntimeError:
        logs.get_logger("x").exception("Failed.", step="commit")
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("connector.x Failed. step=commit")
    assert rest[-1] == "RuntimeError: boom"


def test_log_format_setting_takes_any_case_and_names_itself_when_wrong() -> None:
    assert load_settings({"LOG_FORMAT": "TEXT"}, role="none").service.log_format == "text"
    assert load_settings({}, role="none").service.log_format == "auto"
    with pytest.raises(ConfigError, match="LOG_FORMAT: must be one of auto, json, text"):
        load_settings({"LOG_FORMAT": "pretty"}, role="none")
