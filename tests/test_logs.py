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


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_repeated_kafka_client_lines_are_sampled_and_counted() -> None:
    """A broker away makes aiokafka repeat the same error every 100 ms: the first 5 per template are
    written, the rest counted in one summary line after the window; the connector's lines all pass."""
    stream, clock = io.StringIO(), _Clock()
    logs.setup("INFO", stream, "json")
    [handler] = logging.getLogger().handlers
    assert [type(f) for f in handler.filters] == [logs.LibraryLogSampler]  # what setup() installs
    handler.filters[:] = [logs.LibraryLogSampler(burst=5, window_seconds=60, clock=clock)]
    for attempt in range(300):
        clock.now += 0.1
        logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", 1, f"refused {attempt}")
        logging.getLogger("aiokafka.consumer.fetcher").error("Failed fetch messages from %s: %s", 1, "not ready")
        if attempt % 100 == 0:
            logs.get_logger("webhook").warning("Webhook not stored in Kafka; answering 503.")
    clock.now += 31
    logs.get_logger("app").info("Shutting down.")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert sum(line["logger"] == "aiokafka" for line in lines) == 5
    assert sum(line["logger"] == "aiokafka.consumer.fetcher" for line in lines) == 5
    assert sum(line["logger"] == "connector.webhook" for line in lines) == 3
    [summary] = [line for line in lines if line["logger"] == "connector.logs"]
    assert summary["suppressed"] == {
        "aiokafka: Unable connect to node with id %s: %s": 295,
        "aiokafka.consumer.fetcher: Failed fetch messages from %s: %s": 295,
    }
    assert lines[-1]["message"] == "Shutting down."


def test_a_new_window_admits_kafka_client_lines_again() -> None:
    """Sampling bounds the rate, it does not silence a problem that goes on: each window writes its burst."""
    stream, clock = io.StringIO(), _Clock()
    logs.setup("INFO", stream, "json")
    [handler] = logging.getLogger().handlers
    handler.filters[:] = [logs.LibraryLogSampler(burst=2, window_seconds=60, clock=clock)]
    for _ in range(3):
        for _ in range(10):
            logging.getLogger("aiokafka.cluster").error("Topic %s not found in cluster metadata", "dlq")
        clock.now += 61
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["aiokafka.cluster"] * 2 + (
        ["connector.logs"] + ["aiokafka.cluster"] * 2
    ) * 2
    assert [line["suppressed"] for line in lines if "suppressed" in line] == [
        {"aiokafka.cluster: Topic %s not found in cluster metadata": 8}
    ] * 2
